package kernel_test

import (
	"bytes"
	"math"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// wantAudit is what proto.Marshal (deterministic) makes of r without the
// fields omit names: the reference AppendAuditRecord must match.
func wantAudit(t testing.TB, r *pb.AuditRecord, omit kernel.AuditOmit) []byte {
	c := proto.Clone(r).(*pb.AuditRecord)
	if omit&kernel.OmitSeq != 0 {
		c.Seq = 0
	}
	if omit&kernel.OmitTime != 0 {
		c.Time = nil
	}
	if omit&kernel.OmitKernel != 0 {
		c.Kernel = ""
	}
	if omit&kernel.OmitPrevHash != 0 {
		c.PrevHash = nil
	}
	if omit&kernel.OmitHash != 0 {
		c.Hash = nil
	}
	if omit&kernel.OmitPrincipal != 0 {
		c.Principal = ""
	}
	if omit&kernel.OmitRole != 0 {
		c.Role = ""
	}
	if omit&kernel.OmitCall != 0 {
		c.Call = ""
	}
	if omit&kernel.OmitCode != 0 {
		c.Code = ""
	}
	if omit&kernel.TagHash != 0 && len(c.Hash) > kernel.AuditHashTag {
		c.Hash = c.Hash[:kernel.AuditHashTag]
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	valid := true
	for _, s := range append([]string{c.GetPrincipal(), c.GetRole(), c.GetCall(), c.GetCode(), c.GetMessage(), c.GetKernel()}, c.GetTargets()...) {
		valid = valid && utf8.ValidString(s)
	}
	if err != nil && !valid {
		t.Skip("proto.Marshal refuses invalid UTF-8; AuditRecordOf never makes such a record")
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAppendAuditRecord(t *testing.T) {
	unknown := protowire.AppendTag(nil, 99, protowire.BytesType)
	unknown = protowire.AppendString(unknown, "from a newer kernel")
	withUnknown := &pb.AuditRecord{Seq: 3, Call: "Launch"}
	withUnknown.ProtoReflect().SetUnknown(unknown)
	tsUnknown := &pb.AuditRecord{Time: &timestamppb.Timestamp{Seconds: 5}}
	tsUnknown.Time.ProtoReflect().SetUnknown(unknown)
	records := []*pb.AuditRecord{
		{},
		{Seq: 1},
		{Seq: math.MaxUint64, Time: timestamppb.Now(), Principal: "ops", Role: "operator", Call: "StatePut",
			Targets: []string{"bench/1", "", "a-7"}, Code: "ok", Kernel: "https://k1:7070",
			PrevHash: bytes.Repeat([]byte{1}, 32), Hash: bytes.Repeat([]byte{2}, 32)},
		{Time: &timestamppb.Timestamp{}},                                 // set but empty: still encoded
		{Time: &timestamppb.Timestamp{Seconds: -62135596800, Nanos: -1}}, // negative values: 10-byte varints
		{Code: "permission_denied", Message: "token revoked: \u00e9\u00e9"},
		withUnknown,
		tsUnknown,
	}
	omits := []kernel.AuditOmit{0, kernel.OmitHash, kernel.OmitSeq | kernel.OmitPrevHash | kernel.OmitKernel,
		kernel.OmitTime, kernel.OmitSeq | kernel.OmitTime | kernel.OmitKernel | kernel.OmitPrevHash | kernel.OmitHash,
		kernel.OmitPrincipal | kernel.OmitRole | kernel.OmitCall | kernel.OmitCode | kernel.TagHash}
	for i, r := range records {
		for _, o := range omits {
			got := kernel.AppendAuditRecord([]byte("prefix"), r, o)
			want := append([]byte("prefix"), wantAudit(t, r, o)...)
			if !bytes.Equal(got, want) {
				t.Errorf("record %d omit %05b:\n got %x\nwant %x", i, o, got, want)
			}
		}
	}
}

// FuzzAppendAuditRecord: for any record, the hand-written encoding is
// proto.Marshal's, byte for byte (the chain hash depends on it).
func FuzzAppendAuditRecord(f *testing.F) {
	f.Add(uint64(1), int64(1700000000), int32(5), "ops", "operator", "Launch", "t-1", "", "ok", "", "https://k", []byte{1}, []byte{2}, uint16(0))
	f.Add(uint64(0), int64(-1), int32(-1), "", "", "", "", "x", "", "\xff", "", []byte(nil), []byte(nil), uint16(1023))
	f.Fuzz(func(t *testing.T, seq uint64, sec int64, nanos int32, principal, role, call, t1, t2, code, msg, kern string, prev, hash []byte, omit uint16) {
		r := &pb.AuditRecord{Seq: seq, Principal: principal, Role: role, Call: call, Code: code, Message: msg, Kernel: kern, PrevHash: prev, Hash: hash}
		if sec != 0 || nanos != 0 {
			r.Time = &timestamppb.Timestamp{Seconds: sec, Nanos: nanos}
		}
		if t1 != "" || t2 != "" {
			r.Targets = []string{t1, t2}
		}
		o := kernel.AuditOmit(omit)
		if got, want := kernel.AppendAuditRecord(nil, r, o), wantAudit(t, r, o); !bytes.Equal(got, want) {
			t.Fatalf("omit %05b:\n got %x\nwant %x", o, got, want)
		}
	})
}
