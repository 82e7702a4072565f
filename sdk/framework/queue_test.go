package framework

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// runQueue runs q with workers until the test ends, and checks that Run
// returns and leaves no goroutine behind.
func runQueue(t *testing.T, q *Queue, workers int, r Reconciler) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx, workers, r) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return cancel
}

// eventually polls cond until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestQueue_Dedup(t *testing.T) {
	q := NewQueue(QueueConfig{})
	q.Add("a")
	q.Add("a")
	q.Add("b")
	q.Add("a")
	if q.Len() != 2 {
		t.Fatalf("Len = %d after adding a, a, b, a; want 2", q.Len())
	}
	var mu sync.Mutex
	runs := map[string]int{}
	runQueue(t, q, 2, ReconcileFunc(func(_ context.Context, key string) (time.Duration, error) {
		mu.Lock()
		runs[key]++
		mu.Unlock()
		return 0, nil
	}))
	eventually(t, "both keys reconciled", func() bool { mu.Lock(); defer mu.Unlock(); return runs["a"] == 1 && runs["b"] == 1 })
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if runs["a"] != 1 || runs["b"] != 1 {
		t.Fatalf("runs %v, want each key once", runs)
	}
}

func TestQueue_NoConcurrentReconcileOfAKey(t *testing.T) {
	q := NewQueue(QueueConfig{})
	var running, maxRunning, total atomic.Int64
	release := make(chan struct{})
	first := make(chan struct{}, 1)
	runQueue(t, q, 4, ReconcileFunc(func(ctx context.Context, key string) (time.Duration, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := maxRunning.Load(); n > m && !maxRunning.CompareAndSwap(m, n); m = maxRunning.Load() {
		}
		if total.Add(1) == 1 {
			first <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return 0, nil
	}))
	q.Add("k")
	<-first
	// Re-added while running: it must wait for the running reconcile.
	q.Add("k")
	q.Add("k")
	time.Sleep(20 * time.Millisecond)
	if total.Load() != 1 {
		t.Fatalf("key reconciled %d times while its first reconcile ran", total.Load())
	}
	close(release)
	eventually(t, "the re-added key to run again", func() bool { return total.Load() == 2 })
	time.Sleep(20 * time.Millisecond)
	if total.Load() != 2 || maxRunning.Load() != 1 {
		t.Fatalf("total %d (want 2: re-adds while running collapse into one), max concurrent %d (want 1)", total.Load(), maxRunning.Load())
	}
}

func TestQueue_BackoffAndReset(t *testing.T) {
	q := NewQueue(QueueConfig{BaseDelay: 10 * time.Millisecond, MaxDelay: 40 * time.Millisecond})
	for n, want := range map[int]time.Duration{1: 10 * time.Millisecond, 2: 20 * time.Millisecond, 3: 40 * time.Millisecond, 10: 40 * time.Millisecond} {
		if got := q.backoff(n); got != want {
			t.Errorf("backoff(%d) = %v, want %v", n, got, want)
		}
	}
	var mu sync.Mutex
	var calls []time.Time
	var seen []int                                           // the key's failure count when each reconcile began
	fail := map[int]bool{1: true, 2: true, 3: true, 5: true} // by call number
	runQueue(t, q, 1, ReconcileFunc(func(_ context.Context, key string) (time.Duration, error) {
		q.mu.Lock()
		f := q.failures[key]
		q.mu.Unlock()
		mu.Lock()
		defer mu.Unlock()
		calls, seen = append(calls, time.Now()), append(seen, f)
		if fail[len(calls)] {
			return 0, errors.New("boom")
		}
		return 0, nil
	}))
	q.Add("k")
	eventually(t, "the key to succeed after 3 failures", func() bool { mu.Lock(); defer mu.Unlock(); return len(calls) == 4 })
	q.Add("k") // fails once (call 5), then succeeds (call 6)
	eventually(t, "two more reconciles", func() bool { mu.Lock(); defer mu.Unlock(); return len(calls) == 6 })
	mu.Lock()
	defer mu.Unlock()
	for i, min := range []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond} {
		if gap := calls[i+1].Sub(calls[i]); gap < min {
			t.Errorf("retry %d came after %v, want at least %v", i+1, gap, min)
		}
	}
	if want := []int{0, 1, 2, 3, 0, 1}; !slices.Equal(seen, want) {
		t.Fatalf("failure counts at each reconcile %v, want %v (reset by the success)", seen, want)
	}
}

func TestQueue_AddAfterAndRequeueAfter(t *testing.T) {
	q := NewQueue(QueueConfig{})
	var mu sync.Mutex
	var times []time.Time
	start := time.Now()
	runQueue(t, q, 1, ReconcileFunc(func(context.Context, string) (time.Duration, error) {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		if len(times) == 1 {
			return 30 * time.Millisecond, nil // requeueAfter
		}
		return 0, nil
	}))
	q.AddAfter("k", 30*time.Millisecond)
	q.AddAfter("k", time.Hour) // a later AddAfter does not postpone the earlier
	if q.Len() != 0 {
		t.Fatalf("Len = %d while the key waits, want 0", q.Len())
	}
	eventually(t, "two reconciles", func() bool { mu.Lock(); defer mu.Unlock(); return len(times) == 2 })
	mu.Lock()
	defer mu.Unlock()
	if d := times[0].Sub(start); d < 30*time.Millisecond {
		t.Errorf("AddAfter(30ms) ran after %v", d)
	}
	if d := times[1].Sub(times[0]); d < 30*time.Millisecond {
		t.Errorf("requeueAfter 30ms ran again after %v", d)
	}
}

func TestQueue_RunReturnsWithNoGoroutineLeft(t *testing.T) {
	before := runtime.NumGoroutine()
	q := NewQueue(QueueConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- q.Run(ctx, 8, ReconcileFunc(func(ctx context.Context, _ string) (time.Duration, error) {
			close(started)
			<-ctx.Done() // a reconcile under way when ctx ends
			return 0, ctx.Err()
		}))
	}()
	q.Add("k")
	<-started
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	eventually(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

// TestQueue_MinInterval: with MinInterval, the reconciles of one key
// start at least MinInterval apart however often it is added, the adds
// in between fold into one reconcile, and the last add is never lost.
func TestQueue_MinInterval(t *testing.T) {
	const gap = 30 * time.Millisecond
	q := NewQueue(QueueConfig{MinInterval: gap})
	var mu sync.Mutex
	var starts []time.Time
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		q.Run(ctx, 4, ReconcileFunc(func(context.Context, string) (time.Duration, error) {
			mu.Lock()
			starts = append(starts, time.Now())
			mu.Unlock()
			time.Sleep(time.Millisecond)
			return 0, nil
		}))
		close(done)
	}()
	const adds = 200
	for range adds {
		q.Add("svc")
		time.Sleep(time.Millisecond)
	}
	lastAdd := time.Now()
	// The last add runs: a reconcile starts after it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(starts)
		last := time.Time{}
		if n > 0 {
			last = starts[n-1]
		}
		mu.Unlock()
		if last.After(lastAdd) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reconcile after the last add (%d reconciles)", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(starts); i++ {
		if d := starts[i].Sub(starts[i-1]); d < gap {
			t.Errorf("reconciles %d and %d started %v apart, want at least %v", i-1, i, d, gap)
		}
	}
	if len(starts) >= adds/2 {
		t.Errorf("%d reconciles for %d adds: the adds did not fold", len(starts), adds)
	}
}
