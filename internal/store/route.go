package store

import (
	"context"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/connectivity"
)

// LeaderRoute sends a store's commits straight to the etcd leader.
//
// A clientv3 client of several members spreads its requests over them
// (round robin), and a write that reaches a follower is forwarded to the
// leader: one more network hop before raft even starts, and the answer
// waits until the follower has learnt of the commit and applied it. On a
// 3-member cluster that is two writes in three. A LeaderRoute keeps a
// second client, of the leader's endpoint alone, for Etcd.Commit; every
// other request (loads, watches, leases, elections) stays on the base
// client.
//
// Routing is a matter of speed, never of correctness: a commit is one
// etcd transaction whichever member receives it, fenced the same way.
// While no leader is known — before the first lookup, after an error on
// the leader's client, while its connection is not ready — commits go
// through the base client as before, and a lookup runs in the background
// (asking each member's Status which member leads). A lookup also runs
// when a commit's answer carries a raft term other than the one the
// leader was found in: an election took place, and the member may no
// longer lead. Lookups are at least lookupGap apart.
//
// A LeaderRoute is safe for concurrent use. Close it after the last
// commit, before the base client.
type LeaderRoute struct {
	base *clientv3.Client
	cfg  clientv3.Config

	mu        sync.Mutex
	pinned    *clientv3.Client // of ep alone; nil while no leader is known
	ep        string
	term      uint64 // raft term ep was found leading in
	looking   bool   // a lookup runs
	lastLook  time.Time
	closed    bool
	lookups   int // completed lookups, for tests
	retiring  []*clientv3.Client
	retireGap time.Duration
}

// lookupGap is the least time between two leader lookups: a cluster
// without a leader (or with a member that cannot be reached) is not
// asked more often than this.
const lookupGap = time.Second

// lookupTimeout bounds one lookup (every member's Status).
const lookupTimeout = 2 * time.Second

// NewLeaderRoute returns a route for commits on base, a client of every
// member of an etcd cluster; cfg is the configuration base was made with
// (its dial, keep-alive, TLS and credential settings are reused for the
// leader's client; its Endpoints are replaced). The first lookup starts
// at once. The caller keeps owning base.
func NewLeaderRoute(base *clientv3.Client, cfg clientv3.Config) *LeaderRoute {
	r := &LeaderRoute{base: base, cfg: cfg, retireGap: CommitTimeout + time.Second}
	r.mu.Lock()
	r.lookLocked()
	r.mu.Unlock()
	return r
}

// WithLeaderRoute makes s's commits (and those of the stores Fenced
// returns from it) go through r. It returns s; call it before s is
// shared.
func (s *Etcd) WithLeaderRoute(r *LeaderRoute) *Etcd {
	s.route = r
	return s
}

// Leader returns the endpoint commits go to now, "" while they go
// through the base client.
func (r *LeaderRoute) Leader() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pinned == nil {
		return ""
	}
	return r.ep
}

// Close closes the leader's client (and any it replaced). Commits after
// Close go through the base client.
func (r *LeaderRoute) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.pinned != nil {
		r.pinned.Close()
		r.pinned = nil
	}
	for _, c := range r.retiring {
		c.Close()
	}
	r.retiring = nil
	return nil
}

// kv returns the client a commit should use, and whether it is the
// leader's.
func (r *LeaderRoute) kv() (*clientv3.Client, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pinned != nil && r.pinned.ActiveConnection().GetState() == connectivity.Ready {
		return r.pinned, true
	}
	if r.pinned != nil {
		r.pinned.ActiveConnection().Connect() // leave idle, if it was
	}
	r.lookLocked()
	return r.base, false
}

// observe learns from a commit's outcome: an error on the leader's client
// drops it; an answer from another raft term starts a lookup.
func (r *LeaderRoute) observe(cli *clientv3.Client, h *etcdserverpb.ResponseHeader, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cli != r.pinned || r.pinned == nil {
		return
	}
	if err != nil {
		r.retireLocked()
		r.lookLocked()
		return
	}
	if h.GetRaftTerm() != r.term {
		r.lookLocked()
	}
}

// retireLocked stops using the leader's client; it is closed once any
// commit still on it has had its time.
func (r *LeaderRoute) retireLocked() {
	old := r.pinned
	r.pinned, r.ep, r.term = nil, "", 0
	if old == nil {
		return
	}
	r.retiring = append(r.retiring, old)
	time.AfterFunc(r.retireGap, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for i, c := range r.retiring {
			if c == old {
				r.retiring = append(r.retiring[:i], r.retiring[i+1:]...)
				c.Close()
				return
			}
		}
	})
}

// lookLocked starts a lookup unless one runs, the route is closed, or the
// last one was less than lookupGap ago.
func (r *LeaderRoute) lookLocked() {
	if r.looking || r.closed || time.Since(r.lastLook) < lookupGap {
		return
	}
	r.looking, r.lastLook = true, time.Now()
	go r.lookup()
}

// lookup asks the members which of them leads, and points the route at
// it.
func (r *LeaderRoute) lookup() {
	ep, term := r.findLeader()
	var cli *clientv3.Client
	r.mu.Lock()
	same := ep != "" && ep == r.ep && r.pinned != nil
	r.mu.Unlock()
	if ep != "" && !same {
		cfg := r.cfg
		cfg.Endpoints = []string{ep}
		cfg.Context = nil
		c, err := clientv3.New(cfg)
		if err == nil {
			cli = c
			cli.ActiveConnection().Connect()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.looking = false
	r.lookups++
	switch {
	case r.closed:
		if cli != nil {
			cli.Close()
		}
	case same:
		r.term = term
	case cli != nil:
		r.retireLocked()
		r.pinned, r.ep, r.term = cli, ep, term
	case ep == "":
		// No member says it leads (an election runs, or none answers):
		// commits go through the base client until a later lookup.
		r.retireLocked()
	}
}

// findLeader returns the endpoint of the member that says it leads, and
// the raft term it says so in; "" if none does.
func (r *LeaderRoute) findLeader() (string, uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	for _, ep := range r.base.Endpoints() {
		st, err := r.base.Status(ctx, ep)
		if err != nil {
			continue
		}
		if id := st.Header.GetMemberId(); id != 0 && id == st.Leader {
			return ep, st.Header.GetRaftTerm()
		}
	}
	return "", 0
}
