package framework

import (
	"context"
	"sync"
	"time"
)

// Reconciler brings the world of one key to its desired state.
// Reconcile returns requeueAfter > 0 to be called again for key after
// that long (e.g. to poll), or an error to be retried with the key's
// exponential backoff. It must honour ctx.
type Reconciler interface {
	Reconcile(ctx context.Context, key string) (requeueAfter time.Duration, err error)
}

// ReconcileFunc is a function that is a Reconciler.
type ReconcileFunc func(ctx context.Context, key string) (time.Duration, error)

// Reconcile calls f.
func (f ReconcileFunc) Reconcile(ctx context.Context, key string) (time.Duration, error) {
	return f(ctx, key)
}

var _ Reconciler = ReconcileFunc(nil)

// QueueConfig configures a Queue.
type QueueConfig struct {
	// BaseDelay is the requeue delay after a key's first failure (default
	// 5ms); each further consecutive failure doubles it, up to MaxDelay
	// (default 1000s). A success resets the key's delay.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// MinInterval, when > 0, spaces the reconciles of one key: a key
	// added less than MinInterval after its last reconcile started waits
	// for the rest of it (adds meanwhile fold into that one). A key whose
	// reconcile costs O(its size) and whose events come in bursts (a
	// service of 1,000 instances starting) then costs at most one pass
	// per MinInterval instead of one per event. Zero: no spacing.
	MinInterval time.Duration
}

// Queue is a work queue of keys, in controller-runtime's shape: a key
// added several times before a worker takes it is reconciled once; a key
// is never reconciled by two workers at once (added while it is being
// reconciled, it runs again after); a key that failed is retried after a
// per-key exponential backoff. Keys are taken in the order they became
// ready. It is safe for concurrent use.
type Queue struct {
	cfg QueueConfig

	mu         sync.Mutex
	ready      []string        // keys to take, in order
	dirty      map[string]bool // keys added and not yet taken
	processing map[string]bool
	failures   map[string]int
	delayed    map[string]time.Time // earliest pending AddAfter per key
	lastStart  map[string]time.Time // with MinInterval: when a key's last reconcile started
	wake       chan struct{}        // closed and replaced when ready grows
}

// NewQueue returns an empty queue.
func NewQueue(cfg QueueConfig) *Queue {
	if cfg.BaseDelay <= 0 {
		cfg.BaseDelay = 5 * time.Millisecond
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = 1000 * time.Second
	}
	cfg.MaxDelay = max(cfg.MaxDelay, cfg.BaseDelay)
	return &Queue{cfg: cfg, dirty: map[string]bool{}, processing: map[string]bool{},
		failures: map[string]int{}, delayed: map[string]time.Time{}, lastStart: map[string]time.Time{}, wake: make(chan struct{})}
}

// Add queues key; a key already queued is not queued twice.
func (q *Queue) Add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(key)
}

func (q *Queue) addLocked(key string) {
	if q.dirty[key] {
		return
	}
	if s, ok := q.lastStart[key]; ok && !q.processing[key] {
		if wait := q.cfg.MinInterval - time.Since(s); wait > 0 {
			q.addAfterLocked(key, wait)
			return
		}
		delete(q.lastStart, key)
	}
	q.dirty[key] = true
	if q.processing[key] {
		return // queued again when its worker is done
	}
	q.ready = append(q.ready, key)
	close(q.wake)
	q.wake = make(chan struct{})
}

// AddAfter queues key after d (at once when d <= 0). Of several pending
// AddAfter of one key, the earliest wins.
func (q *Queue) AddAfter(key string, d time.Duration) {
	if d <= 0 {
		q.Add(key)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addAfterLocked(key, d)
}

// addAfterLocked is AddAfter with q.mu held and d > 0.
func (q *Queue) addAfterLocked(key string, d time.Duration) {
	at := time.Now().Add(d)
	if t, ok := q.delayed[key]; ok && !t.After(at) {
		return
	}
	q.delayed[key] = at
	time.AfterFunc(d, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		if t, ok := q.delayed[key]; !ok || !t.Equal(at) {
			return // superseded by an earlier one, which ran
		}
		delete(q.delayed, key)
		q.addLocked(key)
	})
}

// Len returns the number of keys ready to be taken (not those waiting for
// an AddAfter or being reconciled).
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.ready)
}

// Run reconciles keys with workers goroutines (at least 1) until ctx
// ends, then waits for the reconciles under way (their ctx is ctx) and
// returns nil; no goroutine of it is left. Keys still queued stay queued.
func (q *Queue) Run(ctx context.Context, workers int, r Reconciler) error {
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for {
				key, ok := q.take(ctx)
				if !ok {
					return
				}
				after, err := r.Reconcile(ctx, key)
				q.done(key, after, err)
			}
		})
	}
	wg.Wait()
	return nil
}

// take waits for a ready key and marks it processing.
func (q *Queue) take(ctx context.Context) (string, bool) {
	for {
		q.mu.Lock()
		if ctx.Err() != nil {
			q.mu.Unlock()
			return "", false
		}
		if len(q.ready) > 0 {
			key := q.ready[0]
			q.ready[0] = ""
			q.ready = q.ready[1:]
			delete(q.dirty, key)
			q.processing[key] = true
			if q.cfg.MinInterval > 0 {
				q.lastStart[key] = time.Now()
			}
			q.mu.Unlock()
			return key, true
		}
		wake := q.wake
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", false
		case <-wake:
		}
	}
}

// done ends key's reconcile: requeues it on error (with its backoff),
// after requeueAfter, or at once when it was added meanwhile.
func (q *Queue) done(key string, requeueAfter time.Duration, err error) {
	q.mu.Lock()
	delete(q.processing, key)
	if q.dirty[key] {
		q.dirty[key] = false // re-added while running: queue it now
		delete(q.dirty, key)
		q.addLocked(key)
	}
	var retry time.Duration
	if err != nil {
		q.failures[key]++
		retry = q.backoff(q.failures[key])
	} else {
		delete(q.failures, key)
		retry = requeueAfter
	}
	q.mu.Unlock()
	if retry > 0 {
		q.AddAfter(key, retry)
	}
}

// backoff is the delay after n consecutive failures.
func (q *Queue) backoff(n int) time.Duration {
	d := q.cfg.BaseDelay
	for i := 1; i < n && d < q.cfg.MaxDelay; i++ {
		d *= 2
	}
	return min(d, q.cfg.MaxDelay)
}
