package store

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dcos-kernel/dcos/kernel"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestAudit_CompactRoundTrip: records stored after the first of their
// batch leave out what follows from their predecessor, and come back
// whole; records that do not follow (a gap, another chain, an empty
// kernel after a named one) are stored whole.
func TestAudit_CompactRoundTrip(t *testing.T) {
	t0, t1 := &timestamppb.Timestamp{Seconds: 1700000000, Nanos: 5}, &timestamppb.Timestamp{Seconds: 1700000000, Nanos: 6}
	a := &pb.AuditRecord{Seq: 7, Time: t0, Principal: "ops", Call: "Launch", Kernel: "https://k1:7070", PrevHash: []byte("h6"), Hash: []byte("h7")}
	b := &pb.AuditRecord{Seq: 8, Time: t0, Principal: "ops", Call: "Revoke", Kernel: "https://k1:7070", PrevHash: []byte("h7"), Hash: []byte("h8")}
	c := &pb.AuditRecord{Seq: 9, Time: t1, Principal: "fw", Call: "Allocate", Kernel: "https://k2:7070", PrevHash: []byte("h8"), Hash: []byte("h9")}
	d := &pb.AuditRecord{Seq: 10, Call: "Allocate", PrevHash: []byte("h9"), Hash: []byte("h10")}  // no kernel nor time after set ones
	e := &pb.AuditRecord{Seq: 12, Call: "Allocate", PrevHash: []byte("h11"), Hash: []byte("h12")} // a gap
	in := []*pb.AuditRecord{a, b, c, d, e}
	stored := []*pb.AuditRecord{a}
	for i := 1; i < len(in); i++ {
		r := &pb.AuditRecord{}
		if err := proto.Unmarshal(kernel.AppendAuditRecord(nil, in[i], compactOmit(in[i-1], in[i])), r); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, r)
	}
	if sb, bb := proto.Size(stored[1]), proto.Size(b); sb >= bb*3/5 {
		t.Errorf("a chained record of its predecessor's time is stored in %d bytes of %d", sb, bb)
	}
	if stored[1].GetTime() != nil || stored[2].GetTime() == nil {
		t.Errorf("a time is left out only when it is the predecessor's: stored %v, %v", stored[1].GetTime(), stored[2].GetTime())
	}
	for _, i := range []int{3, 4} {
		if !proto.Equal(stored[i], in[i]) {
			t.Errorf("record %d should be stored whole: %v", in[i].GetSeq(), stored[i])
		}
	}
	var out []*pb.AuditRecord
	for _, r := range stored {
		r = proto.Clone(r).(*pb.AuditRecord)
		if n := len(out); n > 0 {
			expandAudit(out[n-1], r)
		}
		out = append(out, r)
	}
	for i := range in {
		if !proto.Equal(out[i], in[i]) {
			t.Errorf("record %d came back as %v, want %v", in[i].GetSeq(), out[i], in[i])
		}
	}
}
