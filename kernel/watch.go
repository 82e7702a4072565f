package kernel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Watch fan-out. The kernel keeps one store watch (the hub's, started by
// Run) and hands each revision's events to every subscriber in memory. A
// subscriber has a bounded queue; the hub never waits for one: a
// subscriber whose queue is full is ended with a resync error and resumes
// from the last revision it received. A subscriber from an older revision
// first replays the store's history up to the hub's position, then goes
// live, with neither a gap nor a duplicate (live events queue meanwhile).

// Defaults for Config's watch fields.
const (
	// DefaultWatchBuffer is how many events a Watch may have queued before
	// it is ended as fallen behind.
	DefaultWatchBuffer = 1024
	// DefaultWatchBufferBytes is how many bytes of events (protobuf size)
	// a Watch may have queued before it is ended as fallen behind.
	DefaultWatchBufferBytes = 16 << 20
	// DefaultWatchReplays bounds the history replays (one store watch
	// each) that run at once; more wait their turn.
	DefaultWatchReplays = 8
)

// EventHead is an optional interface of a Store: LastEvent returns the
// revision of the newest event in the log (0 if none) and the store
// revision at which it read it. The watch hub starts after at, and a
// replay of history ends at last. Without it, a replay from an old
// revision that has nothing newer to replay waits for the next event
// before it goes live.
type EventHead interface {
	LastEvent(ctx context.Context) (last, at int64, err error)
}

// WatchStats is a snapshot of the watch fan-out, for tests and metrics.
type WatchStats struct {
	// Subscribers is the number of open Watch calls.
	Subscribers int
	// Buffered is the number of events queued for them in total, and
	// BufferedBytes their protobuf size; each subscriber's share is
	// bounded by Config.WatchBuffer and WatchBufferBytes (or one
	// revision's events, when that alone is larger).
	Buffered      int
	BufferedBytes int
	// FellBehind counts the subscribers ended because their queue was full.
	FellBehind uint64
	// Revision is the last revision the hub has fanned out.
	Revision int64
}

// errReplayDone ends a history replay that reached the hub's position.
var errReplayDone = errors.New("replay done")

// hub owns the kernel's one store watch and its subscribers.
type hub struct {
	store   Store
	log     *slog.Logger
	bufCap  int           // events per subscriber
	bufMax  int           // bytes per subscriber
	replays chan struct{} // semaphore of history replays
	// applied, when set, waits until the kernel's read view has reached
	// a revision (view.waitFor), for at most viewWait: see awaitApplied.
	applied func(ctx context.Context, rev int64) bool

	ready chan struct{} // closed once last is known (Run started)
	mu    sync.Mutex
	last  int64 // the newest event revision fanned out (or the log's head)
	subs  map[*subscriber]struct{}
	ended error // set when the hub stopped; new subscribers get it
	fell  uint64
}

func newHub(store Store, log *slog.Logger, bufCap, bufMax, replays int) *hub {
	return &hub{store: store, log: log, bufCap: bufCap, bufMax: bufMax, replays: make(chan struct{}, replays),
		ready: make(chan struct{}), subs: map[*subscriber]struct{}{}}
}

// subscriber is one Watch call's queue. The hub pushes whole revisions
// (so that a subscriber ended mid-way has received complete revisions
// only); the Watch call pops them.
type subscriber struct {
	p     Principal
	mine  string // the agent an agent principal is bound to (see visible)
	req   *pb.WatchRequest
	kinds map[pb.EventKind]bool
	after int64 // revisions up to this one are not for this subscriber
	wake  chan struct{}

	mu     sync.Mutex
	queue  []batch
	queued int   // events in queue
	bytes  int   // their protobuf size
	end    error // why the hub ended it; the queue is dropped
	behind int   // events queued when it fell behind
}

type batch struct {
	rev   int64
	evs   []*pb.Event
	bytes int
}

// start reads the log's head and opens the hub to subscribers; it
// returns the revision the hub's store watch starts after.
func (h *hub) start(ctx context.Context, tableRev int64) (int64, error) {
	last, at, err := h.head(ctx, tableRev)
	if err != nil {
		return 0, fmt.Errorf("watch hub: %w", err)
	}
	h.mu.Lock()
	h.last = last
	h.mu.Unlock()
	close(h.ready)
	return at, nil
}

// run reads the log's head (retrying until the store answers), then
// follows the event log and fans it out until ctx ends; then every
// subscriber is ended Unavailable. A broken store watch resumes after the
// last revision fanned out; a compacted one (the hub was cut off longer
// than the store's history) ends every subscriber with a resync error.
func (h *hub) run(ctx context.Context, tableRev int64) {
	backoff := 50 * time.Millisecond
	pos, err := h.start(ctx, tableRev)
	for err != nil {
		h.log.Warn("watch hub: cannot read the event log's head; retrying", "in", backoff, "err", err)
		select {
		case <-ctx.Done():
			h.stop(errorf(Unavailable, "kernel is shutting down"))
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
		pos, err = h.start(ctx, tableRev)
	}
	backoff = 50 * time.Millisecond
	for {
		err := h.store.Events(ctx, pos, func(rev int64, evs []*pb.Event) error {
			h.awaitApplied(ctx, rev)
			h.deliver(rev, evs)
			pos, backoff = rev, 50*time.Millisecond
			return nil
		})
		if ctx.Err() != nil {
			h.stop(errorf(Unavailable, "kernel is shutting down"))
			return
		}
		var re *ResyncError
		if errors.As(err, &re) {
			h.log.Error("watch hub: store history compacted under it; every watch must resync", "after", pos, "err", err)
			last, at, herr := h.head(ctx, re.Current)
			if herr != nil {
				h.log.Error("watch hub: read the log head", "err", herr)
				last, at = re.Current, re.Current
			}
			h.resync(re, last)
			pos = at
			continue
		}
		h.log.Warn("watch hub: store watch broke; resuming", "after", pos, "in", backoff, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// head returns the newest event's revision and the revision it was read
// at (EventHead), or cur for both when the store cannot tell.
func (h *hub) head(ctx context.Context, cur int64) (last, at int64, err error) {
	if eh, ok := h.store.(EventHead); ok {
		return eh.LastEvent(ctx)
	}
	return cur, cur, nil
}

// viewWait bounds how long the hub holds a revision back for the read
// view (awaitApplied); the loop applies a batch right after its commit
// returns, so this is reached only if something is badly wrong.
const viewWait = 5 * time.Second

// awaitApplied holds revision rev back until the kernel's read view has
// it. The store's watch can report a commit before the loop has applied
// it to the view (etcd answers the watch and the transaction
// independently): a subscriber that reads right after an event must see
// the event's change — an event of revision R promises that reads are at
// R or later, as etcd's own watch does. (Without this a framework saw a
// spec's deletion, read the spec back and found it still there; nothing
// woke it again: the init sat idle with a removed service running.)
func (h *hub) awaitApplied(ctx context.Context, rev int64) {
	if h.applied == nil || h.applied(ctx, rev) || ctx.Err() != nil {
		return
	}
	h.log.Warn("watch hub: the read view has not reached a committed revision; delivering its events anyway", "revision", rev, "waited", viewWait)
}

// deliver fans one revision out. It never blocks on a subscriber.
func (h *hub) deliver(rev int64, evs []*pb.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if rev <= h.last {
		return // a resumed store watch repeating itself
	}
	h.last = rev
	var sizes []int // of evs, computed once for every subscriber
	for s := range h.subs {
		if rev <= s.after {
			continue
		}
		if sizes == nil {
			sizes = make([]int, len(evs))
			for i, e := range evs {
				sizes[i] = proto.Size(e)
			}
		}
		b := s.filter(rev, evs, sizes)
		if len(b.evs) == 0 {
			continue
		}
		if !s.push(b, h.bufCap, h.bufMax) {
			delete(h.subs, s)
			h.fell++
		}
	}
}

// filter returns the batch of the events of evs s may see (sharing evs
// when it may see them all); sizes are the events' sizes.
func (s *subscriber) filter(rev int64, evs []*pb.Event, sizes []int) batch {
	n, bytes := 0, 0
	for i, e := range evs {
		if visible(s.p, s.mine, s.req, s.kinds, e) {
			n, bytes = n+1, bytes+sizes[i]
		}
	}
	if n == len(evs) {
		return batch{rev, evs, bytes}
	}
	out := make([]*pb.Event, 0, n)
	for _, e := range evs {
		if visible(s.p, s.mine, s.req, s.kinds, e) {
			out = append(out, e)
		}
	}
	return batch{rev, out, bytes}
}

// push queues b, or ends s when its queue is full; it reports whether s
// is still live. One revision is queued whatever its size when the queue
// is empty, so that no revision is too large to ever deliver.
func (s *subscriber) push(b batch, limit, maxBytes int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.end != nil {
		return false
	}
	if s.queued > 0 && (s.queued+len(b.evs) > limit || s.bytes+b.bytes > maxBytes) {
		s.behind = s.queued
		s.end = errFellBehind
		s.queue, s.queued, s.bytes = nil, 0, 0
		s.notify()
		return false
	}
	s.queue = append(s.queue, b)
	s.queued += len(b.evs)
	s.bytes += b.bytes
	s.notify()
	return true
}

var errFellBehind = errors.New("fell behind")

func (s *subscriber) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// endWith ends s with err unless it has ended already.
func (s *subscriber) endWith(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.end == nil {
		s.end, s.queue, s.queued, s.bytes = err, nil, 0, 0
		s.notify()
	}
}

// ended reports whether the hub has ended s.
func (s *subscriber) ended() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.end != nil
}

// next waits for the next queued revision, the end of s, or ctx.
func (s *subscriber) next(ctx context.Context) (batch, error) {
	for {
		s.mu.Lock()
		if s.end != nil {
			err := s.end
			s.mu.Unlock()
			return batch{}, err
		}
		if len(s.queue) > 0 {
			b := s.queue[0]
			s.queue[0] = batch{}
			s.queue = s.queue[1:]
			s.queued -= len(b.evs)
			s.bytes -= b.bytes
			if len(s.queue) == 0 {
				s.queue = nil // let the backing array go
			}
			s.mu.Unlock()
			return b, nil
		}
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-ctx.Done():
			return batch{}, ctx.Err()
		}
	}
}

// subscribe adds a subscriber for revisions after after and returns the
// hub's position: history in (after, last] must be replayed from the
// store; the queue receives every revision after max(after, last).
func (h *hub) subscribe(ctx context.Context, s *subscriber, done <-chan struct{}) (last int64, err error) {
	select {
	case <-h.ready:
	case <-done:
		return 0, errorf(Unavailable, "kernel is not running")
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ended != nil {
		return 0, h.ended
	}
	s.wake = make(chan struct{}, 1)
	h.subs[s] = struct{}{}
	return h.last, nil
}

func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
	s.endWith(context.Canceled) // drop the queue
}

// stop ends every subscriber with err and refuses new ones.
func (h *hub) stop(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ended = err
	h.endAll(err)
}

// resync ends every subscriber with re (events may have been lost) and
// restarts the hub's position at last.
func (h *hub) resync(re *ResyncError, last int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = last
	h.endAll(&Error{Code: FailedPrecondition, Msg: re.Error(), Resync: re})
}

// endAll ends and forgets every subscriber. h.mu is held.
func (h *hub) endAll(err error) {
	for s := range h.subs {
		s.endWith(err)
		delete(h.subs, s)
	}
}

// revision is the last revision the hub has fanned out.
func (h *hub) revision() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

func (h *hub) stats() WatchStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := WatchStats{Subscribers: len(h.subs), FellBehind: h.fell, Revision: h.last}
	for s := range h.subs {
		s.mu.Lock()
		st.Buffered += s.queued
		st.BufferedBytes += s.bytes
		s.mu.Unlock()
	}
	return st
}

// WatchStats returns a snapshot of the watch fan-out.
func (k *Kernel) WatchStats() WatchStats { return k.hub.stats() }

// replay sends the history in (after, last] from the store. It stops
// early when the hub has ended s (the queue's end is reported next).
func (k *Kernel) replay(ctx context.Context, s *subscriber, after, last int64, send func(*pb.Event) error, sent *int64) error {
	select {
	case k.hub.replays <- struct{}{}:
		defer func() { <-k.hub.replays }()
	case <-ctx.Done():
		return ctx.Err()
	}
	err := k.cfg.Store.Events(ctx, after, func(rev int64, evs []*pb.Event) error {
		if rev > last || s.ended() {
			return errReplayDone
		}
		for _, e := range evs {
			if visible(s.p, s.mine, s.req, s.kinds, e) {
				if err := send(e); err != nil {
					return err
				}
			}
		}
		*sent = rev
		if rev == last {
			return errReplayDone
		}
		return nil
	})
	if errors.Is(err, errReplayDone) {
		return nil
	}
	return err
}

// watchEnd maps how a Watch ended to what it returns.
func watchEnd(ctx context.Context, err error) error {
	var re *ResyncError
	if errors.As(err, &re) {
		return &Error{Code: FailedPrecondition, Msg: re.Error(), Resync: re}
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}
