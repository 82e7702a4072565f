package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/dcos-kernel/dcos/kernel"
)

// A standby kernel keeps the durable state warm so that it can take over
// without reading the whole state from etcd: a Follower loads it once,
// then applies every put and delete under the store's prefix from etcd's
// watch, decoded as Load decodes (decodeKV). Load on a store with the
// follower (WithFollower) then costs a revision check and the assembly
// of a kernel.State from objects already decoded.

// warmWait bounds how long Load waits for its follower to apply the
// store's current revision before it reads the whole state instead: a
// follower that is caught up needs milliseconds.
const warmWait = time.Second

// ErrNotWarm is returned by Follower.State while the follower has no
// state: it is loading, reloading after a compaction, or stopped.
var ErrNotWarm = errors.New("store follower: no warm state (loading, or stopped)")

// Follower keeps the state under a store's prefix decoded in memory by
// following etcd's watch; see Follow. It is safe for concurrent use.
type Follower struct {
	s      *Etcd
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	loaded  bool // entries and rev hold a state (false before the first load, after a compaction and once stopped)
	entries map[string]*entry
	keys    []string      // entries' keys in order, and keys deleted since the last assemble
	added   []string      // keys put since the last assemble, in any order
	rev     int64         // the revision entries are at
	changed chan struct{} // closed and replaced when rev or loaded changes
}

// entry is one key of the state: its value and, until State hands the
// object out, the object decoded from it.
type entry struct {
	raw    []byte
	modRev int64
	rec    record
	owned  bool // rec holds an object of ours, never handed out
}

// follows numbers the followers' watch streams (see Etcd.Events: each
// watch of ours has a gRPC stream of its own).
var follows atomic.Uint64

// Follow starts a follower of s's prefix, which runs until ctx ends or
// Stop is called. It loads the state once, then applies the watch from
// the next revision. On a compaction that outruns the watch it loads
// again; while etcd is unreachable it retries with backoff, logging the
// failure once and the recovery once.
func (s *Etcd) Follow(ctx context.Context, log *slog.Logger) *Follower {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	f := newFollower(s, log, cancel)
	go f.run(ctx)
	return f
}

func newFollower(s *Etcd, log *slog.Logger, cancel context.CancelFunc) *Follower {
	return &Follower{s: s, log: log, cancel: cancel, done: make(chan struct{}), changed: make(chan struct{})}
}

// WithFollower makes Load return f's state (see Load); fenced stores made
// from s share f. It returns s; call it before s is shared.
func (s *Etcd) WithFollower(f *Follower) *Etcd {
	s.warm = f
	return s
}

// Stop ends the follower and drops its state; State then returns
// ErrNotWarm. It waits for the follower's goroutine. Idempotent.
func (f *Follower) Stop() {
	f.cancel()
	<-f.done
}

// State returns a kernel.State that reflects at least the store's
// current revision at the time of the call: it asks etcd for that
// revision (a linearizable read of one key), waits, bounded by ctx, until
// the follower has applied it, and assembles a State from the follower's
// objects. When the follower has not reached it within syncGrace (the
// newest revisions may be writes outside the prefix, which its watch
// never sees), it writes a marker key under the prefix (syncKey) and
// waits for that write instead: the watch delivers every revision under
// the prefix in order. (etcd's progress notifications would spare the
// write, but before etcd 3.4.24 and 3.5.8 one can overtake the events
// it covers.)
//
// The caller owns the State and its objects (kernel.Restore may mutate
// them): objects the follower decoded are handed out once and never
// touched by it again; later calls decode the kept values afresh. It
// returns ErrNotWarm while the follower has no state, etcd's error if
// the revision cannot be read or the marker written, or ctx's error.
func (f *Follower) State(ctx context.Context) (*kernel.State, error) {
	if !f.isLoaded() {
		return nil, ErrNotWarm
	}
	resp, err := f.s.cli.Get(ctx, f.s.syncKey(), clientv3.WithCountOnly())
	if err != nil {
		return nil, fmt.Errorf("store follower: current revision: %w", err)
	}
	want := resp.Header.Revision
	grace := time.NewTimer(syncGrace)
	defer grace.Stop()
	for {
		f.mu.Lock()
		changed := f.changed
		f.mu.Unlock()
		if st, ok, err := f.stateAt(want); ok {
			return st, err
		}
		select {
		case <-changed:
		case <-grace.C:
			put, err := f.s.cli.Put(ctx, f.s.syncKey(), strconv.FormatInt(want, 10))
			if err != nil {
				return nil, fmt.Errorf("store follower: sync marker: %w", err)
			}
			want = put.Header.Revision
		case <-ctx.Done():
			return nil, fmt.Errorf("store follower: revision %d not applied (at %d): %w", want, f.revision(), ctx.Err())
		}
	}
}

// syncGrace is how long State waits for the follower to reach etcd's
// revision before it writes its marker: events under the prefix in
// flight arrive within it, and a revision outside the prefix never does.
const syncGrace = 20 * time.Millisecond

// syncKey is the marker State writes to learn when its follower has
// caught up: <prefix>kernel/warm-sync.
func (s *Etcd) syncKey() string { return s.prefix + "kernel/warm-sync" }

// stateAt assembles the state if the follower has applied rev (ok), or
// fails with ErrNotWarm if it has no state.
func (f *Follower) stateAt(rev int64) (st *kernel.State, ok bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.loaded {
		return nil, true, ErrNotWarm
	}
	if f.rev < rev {
		return nil, false, nil
	}
	st, err = f.assemble()
	return st, true, err
}

// stopped reports whether the follower has ended (Stop, or its ctx).
func (f *Follower) stopped() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

func (f *Follower) isLoaded() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.loaded
}

func (f *Follower) revision() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rev
}

// assemble builds a State from the entries, in key order as Load does;
// f.mu is held.
func (f *Follower) assemble() (*kernel.State, error) {
	f.mergeKeys()
	st := &kernel.State{Revision: f.rev}
	for _, k := range f.keys {
		e := f.entries[k]
		r := e.rec
		if e.owned {
			e.owned, e.rec = false, record{} // the caller owns it now
		} else {
			var err error
			if r, err = f.s.decodeKV([]byte(k), e.raw, e.modRev); err != nil {
				return nil, fmt.Errorf("store follower %s: %w", k, err)
			}
		}
		r.addTo(st)
	}
	return st, nil
}

// mergeKeys brings f.keys to the entries' keys in order: the keys added
// since the last call are sorted and merged in, deleted ones dropped (a
// sort of the few new keys rather than of all); f.mu is held.
func (f *Follower) mergeKeys() {
	if len(f.added) == 0 && len(f.keys) == len(f.entries) {
		return
	}
	slices.Sort(f.added)
	merged := make([]string, 0, len(f.entries))
	keep := func(k string) {
		if _, ok := f.entries[k]; ok && (len(merged) == 0 || merged[len(merged)-1] != k) {
			merged = append(merged, k)
		}
	}
	i, j := 0, 0
	for i < len(f.keys) || j < len(f.added) {
		if j == len(f.added) || (i < len(f.keys) && f.keys[i] <= f.added[j]) {
			keep(f.keys[i])
			i++
		} else {
			keep(f.added[j])
			j++
		}
	}
	f.keys, f.added = merged, nil
}

// signal wakes State's waiters; f.mu is held.
func (f *Follower) signal() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *Follower) run(ctx context.Context) {
	defer close(f.done)
	defer func() {
		f.mu.Lock()
		f.loaded, f.entries, f.keys, f.added = false, nil, nil, nil
		f.signal()
		f.mu.Unlock()
	}()
	const minBackoff, maxBackoff = 100 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	failing := false
	for ctx.Err() == nil {
		progressed, err := f.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			backoff = minBackoff
			if failing {
				f.log.Info("warm state: following the store again", "revision", f.revision())
				failing = false
			}
		}
		if err == nil {
			continue // reloaded after a compaction: watch again at once
		}
		if !failing {
			f.log.Warn("warm state: following the store failed; retrying with backoff (a takeover meanwhile reads the whole state)", "err", err)
			failing = true
		}
		sleepFor(ctx, backoff)
		backoff = min(2*backoff, maxBackoff)
	}
}

func sleepFor(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// follow loads the state if the follower has none, then applies the
// watch until it fails. It returns a nil error after a compaction, once
// reloaded; progressed reports whether anything was loaded or applied.
func (f *Follower) follow(ctx context.Context) (progressed bool, err error) {
	f.mu.Lock()
	loaded, rev := f.loaded, f.rev
	f.mu.Unlock()
	if !loaded {
		if rev, err = f.load(ctx); err != nil {
			return false, err
		}
		progressed = true
	}
	wctx := metadata.AppendToOutgoingContext(ctx, "dcos-warm-follow", strconv.FormatUint(follows.Add(1), 10))
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(wctx))
	defer cancel()
	for wr := range f.s.cli.Watch(wctx, f.s.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if wr.CompactRevision != 0 || errors.Is(wr.Err(), rpctypes.ErrCompacted) {
			f.log.Info("warm state: etcd compacted past the follower's revision; loading the whole state again", "revision", rev, "compacted", wr.CompactRevision)
			f.mu.Lock()
			f.loaded = false
			f.signal()
			f.mu.Unlock()
			if _, err := f.load(ctx); err != nil {
				return progressed, err
			}
			return true, nil
		}
		if err := wr.Err(); err != nil {
			return progressed, fmt.Errorf("store follower: watch: %w", err)
		}
		if len(wr.Events) == 0 {
			// Progress notifications are none of ours (we request
			// none, and before etcd 3.4.24 and 3.5.8 their revision
			// could overtake events still to come).
			continue
		}
		f.apply(wr.Events)
		rev = wr.Events[len(wr.Events)-1].Kv.ModRevision
		progressed = true
	}
	if err := ctx.Err(); err != nil {
		return progressed, err
	}
	return progressed, errors.New("store follower: watch closed")
}

// apply applies one watch response's events, whole revisions, at once.
func (f *Follower) apply(evs []*clientv3.Event) {
	type change struct {
		key string
		e   *entry // nil: deleted
	}
	// Decode outside the lock: State's callers wait for the revision,
	// not for the decode.
	changes := make([]change, 0, len(evs))
	for _, ev := range evs {
		key := string(ev.Kv.Key)
		if ev.Type == clientv3.EventTypeDelete {
			changes = append(changes, change{key: key})
			continue
		}
		r, err := f.s.decodeKV(ev.Kv.Key, ev.Kv.Value, ev.Kv.ModRevision)
		if err == nil && r.field == fieldNone {
			continue // events, blobs, the election, …
		}
		// A value that does not decode is kept raw: State decodes it
		// again and fails as Load would.
		changes = append(changes, change{key: key, e: &entry{raw: ev.Kv.Value, modRev: ev.Kv.ModRevision, rec: r, owned: err == nil}})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range changes {
		if c.e == nil {
			delete(f.entries, c.key)
			continue
		}
		if _, ok := f.entries[c.key]; !ok {
			f.added = append(f.added, c.key)
		}
		f.entries[c.key] = c.e
	}
	if rev := evs[len(evs)-1].Kv.ModRevision; rev > f.rev {
		f.rev = rev
	}
	f.signal()
}

// load reads the whole state as Load does and replaces the follower's.
func (f *Follower) load(ctx context.Context) (int64, error) {
	kvs, rev, err := f.s.rangeState(ctx)
	if err != nil {
		return 0, fmt.Errorf("store follower: load: %w", err)
	}
	entries := make(map[string]*entry, len(kvs))
	keys := make([]string, 0, len(kvs)) // in key order, as etcd returns them
	for _, kv := range kvs {
		r, err := f.s.decodeKV(kv.Key, kv.Value, kv.ModRevision)
		if err == nil && r.field == fieldNone {
			continue
		}
		entries[string(kv.Key)] = &entry{raw: kv.Value, modRev: kv.ModRevision, rec: r, owned: err == nil}
		keys = append(keys, string(kv.Key))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries, f.keys, f.added, f.rev, f.loaded = entries, keys, nil, rev, true
	f.signal()
	return rev, nil
}
