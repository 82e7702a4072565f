package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// The kernels of a cluster elect their leader through etcd: each runs a
// Candidacy, the first to campaign leads, and the others wait in line
// (etcd's concurrency.Election: keys <prefix>kernel/leader/<lease>, the
// oldest leads). A leader's commits are fenced on its election key
// (Etcd.Fenced with Candidacy.Key and Rev), so a kernel that lost the
// lead — its lease expired during a partition, or a standby revoked it
// after finding its process gone — writes nothing more, whatever it still
// believes. Each kernel also lists itself under <prefix>kernel/members/
// with the same lease, for ClusterInfo.

// DefaultLeaderLease is the TTL of a kernel's election lease: how long a
// leader cut off from etcd (or frozen) keeps the lead before a standby
// takes over. A crashed leader is replaced sooner (see WatchLeader).
const DefaultLeaderLease = 5 * time.Second

// Candidacy is one kernel's place in the kernel election. It is safe for
// concurrent use.
type Candidacy struct {
	cli    *clientv3.Client
	prefix string
	self   string
	sess   *concurrency.Session
	el     *concurrency.Election
	since  time.Time
}

// Member is a kernel of the cluster as it lists itself.
type Member struct {
	URL   string    `json:"url"`
	Since time.Time `json:"since"`
}

func (s *Etcd) leaderPrefix() string { return s.prefix + "kernel/leader" }
func (s *Etcd) membersPrefix() string {
	return s.prefix + "kernel/members/"
}

// Candidate starts a candidacy for the kernel reachable at self (its
// advertised URL) with a lease of ttl (rounded up to whole seconds; at
// least 1 s; etcd may raise it to its minimum): it creates the lease and
// lists the kernel as a member. It does not campaign yet.
func (s *Etcd) Candidate(ctx context.Context, self string, ttl time.Duration) (*Candidacy, error) {
	secs := int(math.Ceil(ttl.Seconds()))
	if secs < 1 {
		secs = 1
	}
	// The lease is granted under ctx, so that a store without quorum
	// fails the candidacy at ctx's end (the standby then says the store
	// is unreachable); the session's keep-alives must outlive ctx.
	lease, err := s.cli.Grant(ctx, int64(secs))
	if err != nil {
		return nil, fmt.Errorf("store candidate: %w", err)
	}
	sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(secs), concurrency.WithLease(lease.ID), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		s.cli.Revoke(ctx, lease.ID)
		return nil, fmt.Errorf("store candidate: %w", err)
	}
	c := &Candidacy{cli: s.cli, prefix: s.prefix, self: self, sess: sess, el: concurrency.NewElection(sess, s.leaderPrefix()), since: time.Now()}
	b, _ := json.Marshal(Member{URL: self, Since: c.since})
	if _, err := s.cli.Put(ctx, s.membersPrefix()+memberKey(self), string(b), clientv3.WithLease(sess.Lease())); err != nil {
		sess.Close()
		return nil, fmt.Errorf("store candidate: %w", err)
	}
	return c, nil
}

func memberKey(url string) string { return strings.NewReplacer("/", "_", ":", "_").Replace(url) }

// Campaign blocks until this kernel leads or ctx ends (then it withdraws).
func (c *Candidacy) Campaign(ctx context.Context) error {
	if err := c.el.Campaign(ctx, c.self); err != nil {
		return fmt.Errorf("store campaign: %w", err)
	}
	c.since = time.Now()
	b, _ := json.Marshal(Member{URL: c.self, Since: c.since})
	// Best effort: ClusterInfo's "since" of a leader is when it took over.
	c.cli.Put(ctx, c.prefix+"kernel/members/"+memberKey(c.self), string(b), clientv3.WithLease(c.sess.Lease()))
	return nil
}

// Key and Rev are the election key this kernel holds while it leads and
// its create revision: what its commits are fenced on.
func (c *Candidacy) Key() string { return c.el.Key() }
func (c *Candidacy) Rev() int64  { return c.el.Rev() }

// Done is closed when the candidacy's lease is gone (expired, revoked, or
// its keep-alives failed for a whole TTL): a leader has lost the lead.
func (c *Candidacy) Done() <-chan struct{} { return c.sess.Done() }

// Since is when the kernel became a candidate, or took the lead.
func (c *Candidacy) Since() time.Time { return c.since }

// Close resigns the lead if held and revokes the lease, so that a
// standby takes over at once (a clean stop); it waits at most 2 s.
func (c *Candidacy) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if c.el.Key() != "" {
		c.el.Resign(ctx)
	}
	c.sess.Close()
}

// LeaderInfo is who holds the kernel election.
type LeaderInfo struct {
	URL string
	// Key, Rev and Lease identify the holder's election key (its create
	// revision) and lease.
	Key   string
	Rev   int64
	Lease clientv3.LeaseID
}

// Leader returns the current leader; ok is false while nobody leads.
func (s *Etcd) Leader(ctx context.Context) (l LeaderInfo, ok bool, err error) {
	resp, err := s.cli.Get(ctx, s.leaderPrefix()+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return l, false, fmt.Errorf("store leader: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return l, false, nil
	}
	kv := resp.Kvs[0]
	return LeaderInfo{URL: string(kv.Value), Key: string(kv.Key), Rev: kv.CreateRevision, Lease: clientv3.LeaseID(kv.Lease)}, true, nil
}

// Members lists the kernels that are candidates now (their leases live),
// sorted by URL.
func (s *Etcd) Members(ctx context.Context) ([]Member, error) {
	resp, err := s.cli.Get(ctx, s.membersPrefix(), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("store members: %w", err)
	}
	out := make([]Member, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var m Member
		if json.Unmarshal(kv.Value, &m) == nil && m.URL != "" {
			out = append(out, m)
		}
	}
	return out, nil
}

// Depose ends the lead of l, as a standby does once it has found the
// leader's process gone: it revokes l's lease if l's key still exists
// with the same create revision (a new leader is never deposed by a
// stale LeaderInfo). The old leader's commits are fenced from then on.
// It reports whether it revoked.
func (s *Etcd) Depose(ctx context.Context, l LeaderInfo) (bool, error) {
	resp, err := s.cli.Get(ctx, l.Key)
	if err != nil {
		return false, fmt.Errorf("store depose: %w", err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != l.Rev {
		return false, nil
	}
	if _, err := s.cli.Revoke(ctx, l.Lease); err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return false, fmt.Errorf("store depose: %w", err)
		}
		return false, nil // already gone
	}
	return true, nil
}
