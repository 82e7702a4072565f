package store

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestEtcd_EventsMassCancel: many Events calls cancelled at the same
// moment do not stop a later one from receiving (each call has its own
// watch stream on the embedded etcd's in-process client), and their
// goroutines end.
func TestEtcd_EventsMassCancel(t *testing.T) {
	ctx := context.Background()
	s, _ := startStore(t)
	rev, err := s.Commit(ctx, &kernel.Changes{Events: []*pb.Event{{Kind: pb.EventKind_EVENT_KIND_TASK_STATE}}})
	if err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	for round := range 5 {
		wctx, cancel := context.WithCancel(ctx)
		var started, wg sync.WaitGroup
		for range 200 {
			started.Add(1)
			wg.Go(func() {
				once := sync.OnceFunc(started.Done)
				defer once()
				s.Events(wctx, rev-1, func(int64, []*pb.Event) error { once(); return nil })
			})
		}
		started.Wait()
		cancel()
		wg.Wait()
		// A fresh watcher still receives the next event.
		got := make(chan int64, 1)
		fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
		go s.Events(fctx, rev, func(r int64, _ []*pb.Event) error { got <- r; return context.Canceled })
		next, err := s.Commit(ctx, &kernel.Changes{Events: []*pb.Event{{Kind: pb.EventKind_EVENT_KIND_TASK_STATE}}})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-got:
			if r != next {
				t.Fatalf("round %d: fresh watcher got revision %d, want %d", round, r, next)
			}
		case <-fctx.Done():
			t.Fatalf("round %d: fresh watcher got nothing after 200 watches were cancelled", round)
		}
		fcancel()
		rev = next
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base+20 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base+20 {
		t.Errorf("%d goroutines after the watches ended, %d before", n, base)
	}
}
