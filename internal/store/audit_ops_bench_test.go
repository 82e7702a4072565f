package store

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// BenchmarkAuditOps is the store's work for one batch of 32 audited
// StatePut calls' records (auditOps: compaction and encoding), which
// the kernel's loop waits for.
func BenchmarkAuditOps(b *testing.B) {
	tm := timestamppb.Now()
	var recs []*pb.AuditRecord
	for i := range 32 {
		recs = append(recs, &pb.AuditRecord{Time: tm, Principal: "fwA", Role: "framework", Call: "StatePut", Code: "ok", Targets: []string{fmt.Sprintf("bench/%d", i)}})
	}
	recs = chain(1, nil, recs...)
	s, c := &Etcd{}, &kernel.Changes{Audit: recs}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.auditOps(c); err != nil {
			b.Fatal(err)
		}
	}
}
