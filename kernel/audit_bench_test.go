package kernel_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// BenchmarkAudit_Throughput measures syscall throughput with the audit
// trail off and on, in the same run: 64 concurrent callers each
// StatePut one of their keys again and again (a mutating call of
// constant cost, group-committed to a real embedded etcd). "on" passes
// each call's AuditCall as the API layer does, so the record is built,
// chained and written in the batch's transaction. The figure that
// matters is the ratio of on's ns/op to off's (docs/benchmarks.md).
func BenchmarkAudit_Throughput(b *testing.B) {
	for _, mode := range []string{"off", "on"} {
		b.Run(mode, func(b *testing.B) {
			e := newEnv(b)
			k, err := kernel.New(context.Background(), kernel.Config{Store: e.store, HeartbeatTimeout: time.Hour, NoAudit: mode == "off"})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { k.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			var caller atomic.Int64
			value := make([]byte, 256)
			b.SetParallelism(32) // 64 callers on 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb_ *testing.PB) {
				key := fmt.Sprintf("bench/%d", caller.Add(1))
				for pb_.Next() {
					cctx := context.Background()
					if mode == "on" {
						cctx = kernel.WithAudit(cctx, kernel.NewAuditCall(fwA, "StatePut", key))
					}
					if _, err := k.StatePut(cctx, fwA, &pb.StatePutRequest{Key: key, Value: value}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
