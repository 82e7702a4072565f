package store

import (
	"bytes"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// chain numbers recs from seq and chains them after prev, as the kernel's
// loop does.
func chain(seq uint64, prev []byte, recs ...*pb.AuditRecord) []*pb.AuditRecord {
	for _, r := range recs {
		r.Seq, r.PrevHash = seq, prev
		r.Hash = kernel.AuditHash(r)
		seq, prev = seq+1, r.Hash
	}
	return recs
}

// batchValue is what Commit writes for recs: the value of their key.
func batchValue(t *testing.T, recs []*pb.AuditRecord) []byte {
	t.Helper()
	ops, err := (&Etcd{}).auditOps(&kernel.Changes{Audit: recs})
	if err != nil || len(ops) != 1 {
		t.Fatalf("auditOps: %d ops, %v", len(ops), err)
	}
	return ops[0].ValueBytes()
}

// TestAudit_CompactRoundTrip: a batch's records leave out what follows
// from, or repeats, their predecessor, and keep only a tag of their hash
// but the last; they come back whole, with whole hashes. Records that do
// not follow (a gap) or have an empty field after a set one are stored
// whole.
func TestAudit_CompactRoundTrip(t *testing.T) {
	t0, t1 := &timestamppb.Timestamp{Seconds: 1700000000, Nanos: 5}, &timestamppb.Timestamp{Seconds: 1700000000, Nanos: 6}
	mk := func(tm *timestamppb.Timestamp, principal, role, call, code string, targets ...string) *pb.AuditRecord {
		return &pb.AuditRecord{Time: tm, Principal: principal, Role: role, Call: call, Code: code, Targets: targets, Kernel: "https://k1:7070"}
	}
	in := chain(7, bytes.Repeat([]byte{6}, 32),
		mk(t0, "fwA", "framework", "StatePut", "ok", "bench/1"),
		mk(t0, "fwA", "framework", "StatePut", "ok", "bench/2"), // all but its target repeats
		mk(t1, "ops", "operator", "Launch", "permission_denied", "a-1"),
		mk(t1, "", "", "Launch", "unauthenticated"), // empty after set: whole
		mk(t1, "fwB", "framework", "Revoke", "ok", "a-2"),
	)
	gap := chain(20, in[4].GetHash(), mk(t1, "fwB", "framework", "Revoke", "ok", "a-3"))
	in = append(in, gap...)
	var whole int
	for _, r := range in {
		whole += proto.Size(r)
	}
	v := batchValue(t, in)
	if len(v) >= whole*3/5 {
		t.Errorf("the batch is stored in %d bytes, its records are %d", len(v), whole)
	}
	out := (&Etcd{}).decodeAudit(&mvccpb.KeyValue{Key: []byte("audit/00000000000000000007"), Value: v})
	if len(out) != len(in) {
		t.Fatalf("decoded %d records of %d", len(out), len(in))
	}
	for i := range in {
		if !proto.Equal(out[i], in[i]) {
			t.Errorf("record %d came back as %v, want %v", in[i].GetSeq(), out[i], in[i])
		}
	}
}

// TestAudit_TagNamesTheAlteredRecord: a record edited in the stored bytes
// keeps its hash tag, which no longer matches, so that verification names
// it, not the batch's last record.
func TestAudit_TagNamesTheAlteredRecord(t *testing.T) {
	tm := timestamppb.Now()
	var in []*pb.AuditRecord
	for _, k := range []string{"k1", "k2", "k3", "k4"} {
		in = append(in, &pb.AuditRecord{Time: tm, Principal: "fwA", Role: "framework", Call: "StatePut", Code: "ok", Targets: []string{k}})
	}
	in = chain(1, nil, in...)
	v := batchValue(t, in)
	edited := bytes.Replace(v, []byte("k2"), []byte("kX"), 1)
	if bytes.Equal(edited, v) {
		t.Fatal("target k2 not found in the stored bytes")
	}
	out := (&Etcd{}).decodeAudit(&mvccpb.KeyValue{Key: []byte("audit/00000000000000000001"), Value: edited})
	if got := out[0].GetHash(); !bytes.Equal(got, in[0].GetHash()) {
		t.Errorf("record 1 (untouched) hash %x, want %x", got, in[0].GetHash())
	}
	if r := out[1]; len(r.GetHash()) != kernel.AuditHashTag || bytes.Equal(kernel.AuditHash(r)[:kernel.AuditHashTag], r.GetHash()) || !strings.Contains(strings.Join(r.GetTargets(), ","), "kX") {
		t.Errorf("record 2 (edited) came back with hash %x and targets %v: want its stored tag, which its content no longer matches", r.GetHash(), r.GetTargets())
	}
}
