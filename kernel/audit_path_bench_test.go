package kernel

import (
	"testing"
	"time"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// BenchmarkAuditPerRecord is the trail's own work on the loop for one
// audited call: its record (auditOp), its place in the chain (auditChain)
// and its stored encoding, without the store.
func BenchmarkAuditPerRecord(b *testing.B) {
	k := &Kernel{}
	p := Principal{Name: "fwA", Role: RoleFramework}
	ev := []*pb.Event{{Kind: pb.EventKind_EVENT_KIND_STATE_CHANGED, State: &pb.StateEntry{Key: "bench/12"}}}
	now := time.Now()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		c := newChanges()
		for range 32 {
			o := &op{audit: NewAuditCall(p, "StatePut", "bench/12")}
			k.auditOp(o, c, ev, now)
		}
		k.auditChain(c)
		buf = buf[:0]
		for _, r := range c.Audit {
			buf = AppendAuditRecord(buf, r, OmitSeq|OmitPrevHash|OmitKernel|OmitTime)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*32), "ns/record")
}
