package store

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/storage/wal"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// etcd3 is a real 3-member etcd cluster in this process, on loopback.
type etcd3 struct {
	members []*embed.Etcd
	stop    []func() // stops a member (once)
	client  []string // client URL of each member
}

func startEtcd3(t *testing.T) *etcd3 {
	t.Helper()
	setWALSegment.Do(func() { wal.SegmentSizeBytes = walSegmentBytes })
	ports := freePorts(t, 6)
	var initial []string
	for i := range 3 {
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, ports[2*i+1]))
	}
	c := &etcd3{}
	for i := range 3 {
		ec := embed.NewConfig()
		ec.Name = fmt.Sprintf("m%d", i)
		ec.Dir = t.TempDir()
		ec.LogLevel = "fatal"
		ec.TickMs, ec.ElectionMs = 10, 100
		cu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i])}
		pu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])}
		ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
		ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
		ec.InitialCluster = strings.Join(initial, ",")
		ec.InitialClusterToken = "route-test"
		e, err := embed.StartEtcd(ec)
		if err != nil {
			t.Fatal(err)
		}
		stop := sync.OnceFunc(e.Close)
		t.Cleanup(stop)
		c.members = append(c.members, e)
		c.stop = append(c.stop, stop)
		c.client = append(c.client, cu.String())
	}
	for _, e := range c.members {
		select {
		case <-e.Server.ReadyNotify():
		case <-time.After(30 * time.Second):
			t.Fatal("etcd member not ready after 30s")
		}
	}
	return c
}

// freePorts returns n distinct free ports of 127.0.0.1.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// leader returns the index of the member that leads now (-1: none).
func (c *etcd3) leader() int {
	for i, e := range c.members {
		if e.Server == nil {
			continue
		}
		select {
		case <-e.Server.StopNotify():
			continue
		default:
		}
		if e.Server.Leader() == e.Server.MemberID() && e.Server.Leader() != 0 {
			return i
		}
	}
	return -1
}

// eventually polls cond every 20 ms for up to 30 s.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 30s: %s", what, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLeaderRoute_FollowsTheEtcdLeader: on a real 3-member cluster a
// store's commits go to the etcd leader's client once the route has found
// it; when leadership moves to another member the route follows it (the
// next commit's raft term gives it away); when the leader's member stops,
// commits go on through the base client (the cluster keeps quorum) and
// the route finds the new leader. Every commit lands, exactly once.
func TestLeaderRoute_FollowsTheEtcdLeader(t *testing.T) {
	c := startEtcd3(t)
	cfg := clientv3.Config{Endpoints: c.client, DialTimeout: 5 * time.Second, DialKeepAliveTime: 2 * time.Second, DialKeepAliveTimeout: 2 * time.Second}
	base, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	r := NewLeaderRoute(base, cfg)
	defer r.Close()
	s := New(base, "").WithLeaderRoute(r)
	ctx := context.Background()
	n := 0
	commit := func() error {
		id := fmt.Sprintf("a-%d", n+1)
		_, err := s.Commit(ctx, &kernel.Changes{Allocations: map[string]*pb.Allocation{id: {Id: id}}})
		if err == nil {
			n++
		}
		return err
	}
	// routed waits until commits go to the member that leads.
	routed := func(step string) int {
		t.Helper()
		li := -1
		eventually(t, step+": commits routed to the etcd leader", func() (bool, string) {
			if err := commit(); err != nil {
				return false, err.Error()
			}
			li = c.leader()
			if li < 0 {
				return false, "no member leads"
			}
			cli, via := r.kv()
			if got := r.Leader(); got != c.client[li] || !via || cli == base {
				return false, fmt.Sprintf("route at %q (leader's client: %v), leader at %s", got, via, c.client[li])
			}
			return true, ""
		})
		return li
	}

	li := routed("start")
	for range 20 {
		if err := commit(); err != nil {
			t.Fatal(err)
		}
	}

	// Leadership moves: the old leader now forwards; the route follows.
	to := (li + 1) % 3
	lc, err := clientv3.New(clientv3.Config{Endpoints: []string{c.client[li]}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lc.MoveLeader(ctx, uint64(c.members[to].Server.MemberID())); err != nil {
		lc.Close()
		t.Fatal(err)
	}
	lc.Close()
	if got := routed("after MoveLeader"); got != to {
		t.Fatalf("after MoveLeader to member %d, member %d leads", to, got)
	}

	// The leader's member stops: the two others elect a leader, and the
	// route drops the dead client for it.
	c.stop[to]()
	if got := routed("after the leader stopped"); got == to {
		t.Fatalf("the stopped member %d still leads", got)
	}

	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Allocations) != n {
		t.Fatalf("%d allocations in the store after %d successful commits", len(st.Allocations), n)
	}
}

// TestLeaderRoute_CloseFallsBack: after Close, commits go through the
// base client, and still land.
func TestLeaderRoute_CloseFallsBack(t *testing.T) {
	s, e := startStore(t)
	r := NewLeaderRoute(e.Client(), clientv3.Config{Endpoints: e.Client().Endpoints(), DialTimeout: 5 * time.Second})
	s.WithLeaderRoute(r)
	r.Close()
	if cli, via := r.kv(); via || cli != e.Client() {
		t.Fatal("a closed route still routes commits to a leader's client")
	}
	if got := r.Leader(); got != "" {
		t.Fatalf("closed route: Leader() = %q, want \"\"", got)
	}
	id := "a-1"
	if _, err := s.Commit(context.Background(), &kernel.Changes{Allocations: map[string]*pb.Allocation{id: {Id: id}}}); err != nil {
		t.Fatal(err)
	}
}
