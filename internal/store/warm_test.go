package store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"google.golang.org/protobuf/proto"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// stateEqual reports how got differs from want ("" if it does not):
// revision, sequence, policy state, and every list object by object
// (proto.Equal), both lists sorted by their keys.
func stateEqual(got, want *kernel.State) string {
	if got.Revision != want.Revision || got.Seq != want.Seq {
		return fmt.Sprintf("revision %d seq %d, want revision %d seq %d", got.Revision, got.Seq, want.Revision, want.Seq)
	}
	if fmt.Sprint(got.Policies) != fmt.Sprint(want.Policies) {
		return fmt.Sprintf("policies %+v, want %+v", got.Policies, want.Policies)
	}
	lists := []struct {
		name      string
		got, want []proto.Message
		key       func(proto.Message) string
	}{
		{"agents", msgs(got.Agents), msgs(want.Agents), func(m proto.Message) string { return m.(*pb.Agent).GetId() }},
		{"allocations", msgs(got.Allocations), msgs(want.Allocations), func(m proto.Message) string { return m.(*pb.Allocation).GetId() }},
		{"tasks", msgs(got.Tasks), msgs(want.Tasks), func(m proto.Message) string { return m.(*pb.Task).GetId() }},
		{"volumes", msgs(got.Volumes), msgs(want.Volumes), func(m proto.Message) string { return m.(*pb.Volume).GetName() }},
		{"destroyed volumes", msgs(got.DestroyedVolumes), msgs(want.DestroyedVolumes), func(m proto.Message) string { return m.(*pb.Volume).GetName() }},
		{"elections", msgs(got.Elections), msgs(want.Elections), func(m proto.Message) string {
			l := m.(*pb.Leadership)
			return l.GetOwner() + "\x00" + l.GetElection()
		}},
		{"state entries", msgs(got.StateEntries), msgs(want.StateEntries), func(m proto.Message) string {
			e := m.(*pb.StateEntry)
			return e.GetOwner() + "\x00" + e.GetKey()
		}},
		{"roles", msgs(got.Roles), msgs(want.Roles), func(m proto.Message) string { return m.(*pb.Role).GetName() }},
	}
	for _, l := range lists {
		if len(l.got) != len(l.want) {
			return fmt.Sprintf("%d %s, want %d", len(l.got), l.name, len(l.want))
		}
		byKey := func(a, b proto.Message) int { return cmpString(l.key(a), l.key(b)) }
		slices.SortFunc(l.got, byKey)
		slices.SortFunc(l.want, byKey)
		for i := range l.got {
			if !proto.Equal(l.got[i], l.want[i]) {
				return fmt.Sprintf("%s[%d] = %v, want %v", l.name, i, l.got[i], l.want[i])
			}
		}
	}
	return ""
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func msgs[M proto.Message](ms []M) []proto.Message {
	out := make([]proto.Message, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}

// commits are writes of every kind the kernel makes, deletes included;
// each is one Commit.
func commits() []*kernel.Changes {
	res := func(cpus float64) *pb.Resources { return &pb.Resources{Cpus: cpus, MemBytes: 1 << 30} }
	return []*kernel.Changes{
		{
			Agents: map[string]*pb.Agent{
				"agent-1": {Id: "agent-1", Hostname: "h1", Total: res(8), Subnet: "10.1.1.0/24", Labels: map[string]string{"rack": "a"}},
				"agent-2": {Id: "agent-2", Hostname: "h2", Total: res(4), Subnet: "10.1.2.0/24"},
			},
			Allocations: map[string]*pb.Allocation{
				"a-1": {Id: "a-1", Owner: "fw", Role: "web", AgentId: "agent-1", State: pb.AllocationState_ALLOCATION_STATE_GRANTED, Resources: res(1)},
				"a-2": {Id: "a-2", Owner: "fw", Role: "web", State: pb.AllocationState_ALLOCATION_STATE_PENDING, Resources: res(2)},
			},
			Tasks:   map[string]*pb.Task{"t-1": {Id: "t-1", Command: "sleep 1"}},
			Volumes: map[string]*pb.Volume{"data": {Name: "data", Role: "db", AgentId: "agent-1", SizeBytes: 1 << 20}},
			Events:  []*pb.Event{{Kind: pb.EventKind_EVENT_KIND_AGENT_REGISTERED}},
			Seq:     3,
		},
		{
			Elections: map[kernel.ElectionKey]*pb.Leadership{{Owner: "fw", Name: "primary"}: {Owner: "fw", Election: "primary", Holder: "x", Epoch: 1}},
			State: map[kernel.StateKey]*pb.StateEntry{
				{Owner: "fw", Key: "cfg/a"}: {Owner: "fw", Key: "cfg/a", Value: []byte("1")},
				{Owner: "fw/2", Key: "b"}:   {Owner: "fw/2", Key: "b", Value: []byte("2")},
			},
			Roles:    map[string]*pb.Role{"web": {Name: "web", Weight: 2, Quota: res(10)}, "a/b": {Name: "a/b", Weight: 1}},
			Policies: &kernel.PolicyState{Active: "drf", Previous: []string{"fifo"}},
			Events:   []*pb.Event{{Kind: pb.EventKind_EVENT_KIND_STATE_CHANGED}},
		},
		{
			// Updates and deletes.
			Agents:           map[string]*pb.Agent{"agent-2": {Id: "agent-2", Hostname: "h2", Total: res(6), Subnet: "10.1.2.0/24"}},
			Allocations:      map[string]*pb.Allocation{"a-2": nil, "a-3": {Id: "a-3", Owner: "fw2", AgentId: "agent-2", State: pb.AllocationState_ALLOCATION_STATE_GRANTED, Resources: res(1)}},
			Tasks:            map[string]*pb.Task{"t-1": nil, "t-2": {Id: "t-2", Command: "true"}},
			Volumes:          map[string]*pb.Volume{"data": nil},
			DestroyedVolumes: map[string]*pb.Volume{"data": {Name: "data", AgentId: "agent-1"}},
			State:            map[kernel.StateKey]*pb.StateEntry{{Owner: "fw", Key: "cfg/a"}: {Owner: "fw", Key: "cfg/a", Value: []byte("3")}, {Owner: "fw/2", Key: "b"}: nil},
			Roles:            map[string]*pb.Role{"a/b": nil},
			Seq:              7,
		},
		{
			Elections: map[kernel.ElectionKey]*pb.Leadership{{Owner: "fw", Name: "primary"}: {Owner: "fw", Election: "primary", Holder: "y", Epoch: 2}},
			Agents:    map[string]*pb.Agent{"agent-1": nil},
			Seq:       9,
		},
	}
}

// syncBuffer is a log destination safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestFollower_StateMatchesLoad: after each commit of every kind of
// write, and after a write outside the prefix (which the follower's watch
// never sees: State writes its marker and waits for it), the follower's
// State equals a fresh Load at the same revision; a second State, after the first one's
// objects were restored into a table (which mutates them), still does.
func TestFollower_StateMatchesLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, e := startStore(t)
	f := s.Follow(ctx, quietLog())
	defer f.Stop()
	waitWarm(t, ctx, f)
	check := func(step string) {
		t.Helper()
		got, err := f.State(ctx)
		if err != nil {
			t.Fatalf("%s: State: %v", step, err)
		}
		want, err := s.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// In Load's order (its keys'), which stateEqual does not check.
		order := func(st *kernel.State) string {
			var ids []string
			for _, a := range st.Allocations {
				ids = append(ids, a.GetId())
			}
			for _, e := range st.StateEntries {
				ids = append(ids, e.GetOwner()+"/"+e.GetKey())
			}
			for _, r := range st.Roles {
				ids = append(ids, r.GetName())
			}
			return strings.Join(ids, " ")
		}
		if g, w := order(got), order(want); g != w {
			t.Fatalf("%s: follower's order %q, Load's %q", step, g, w)
		}
		if d := stateEqual(got, want); d != "" {
			t.Fatalf("%s: follower's state differs from Load: %s", step, d)
		}
		// The caller owns what State returns: a table restored from it
		// mutates its objects, which must not reach the follower.
		kernel.Restore(got, time.Now())
		for _, a := range got.Agents {
			a.Hostname = "mutated"
		}
		again, err := f.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := stateEqual(again, want); d != "" {
			t.Fatalf("%s: second State differs from Load: %s", step, d)
		}
	}
	check("empty")
	for i, c := range commits() {
		if _, err := s.Commit(ctx, c); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("commit %d", i))
	}
	// A write outside the prefix raises etcd's revision, not the
	// follower's events.
	resp, err := e.Client().Put(ctx, "/elsewhere/x", "1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision < resp.Header.Revision {
		t.Fatalf("State after a write elsewhere: revision %d, want at least %d", got.Revision, resp.Header.Revision)
	}
	if m, err := e.Client().Get(ctx, s.syncKey()); err != nil || len(m.Kvs) != 1 || m.Kvs[0].ModRevision <= resp.Header.Revision {
		t.Fatalf("State after a write elsewhere did not write its marker after it: %v, %v", m, err)
	}
	check("write elsewhere")
}

// waitWarm waits until f has loaded.
func waitWarm(t *testing.T, ctx context.Context, f *Follower) {
	t.Helper()
	for {
		f.mu.Lock()
		loaded := f.loaded
		f.mu.Unlock()
		if loaded {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("the follower never loaded")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestFollower_CompactionOutrunsWatch: a follower whose watch starts
// behind a compaction (it loaded, then etcd moved on and compacted past
// its revision) loads again and ends equal to Load, the writes and
// deletes made meanwhile included.
func TestFollower_CompactionOutrunsWatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, _ := startStore(t)
	cs := commits()
	if _, err := s.Commit(ctx, cs[0]); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	var logged syncBuffer
	f := newFollower(s, slog.New(slog.NewTextHandler(&logged, nil)), stop)
	old, err := f.load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var rev int64
	for _, c := range cs[1:] {
		if rev, err = s.Commit(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	go f.run(rctx)
	defer f.Stop()
	var got *kernel.State
	for got == nil {
		// ErrNotWarm while it loads again.
		if got, err = f.State(ctx); err != nil && err != ErrNotWarm {
			t.Fatal(err)
		}
		sleepFor(ctx, 10*time.Millisecond)
	}
	if !strings.Contains(logged.String(), "compacted past the follower's revision") {
		t.Errorf("the follower did not say it reloaded after the compaction; its log:\n%s", logged.String())
	}
	want, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision <= old {
		t.Fatalf("State at revision %d, the follower's first load was at %d", got.Revision, old)
	}
	if d := stateEqual(got, want); d != "" {
		t.Fatalf("after the compaction, the follower's state differs from Load: %s", d)
	}
}

// TestEtcd_LoadWarm: a fenced store made from a store with a follower
// loads from it (a delete made straight to etcd, which a stale state
// would miss, is seen); once the follower has stopped, Load reads the
// whole state from etcd.
func TestEtcd_LoadWarm(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, e := startStore(t)
	for _, c := range commits()[:2] {
		if _, err := s.Commit(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	warm := New(e.Client(), "")
	f := warm.Follow(ctx, quietLog())
	warm.WithFollower(f)
	waitWarm(t, ctx, f)
	fenced := warm.Fenced("k", 1)
	if fenced.warm != f {
		t.Fatal("Fenced dropped the follower")
	}
	if _, err := e.Client().Delete(ctx, s.key("allocations", "a-1")); err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"warm", "stopped"} {
		got, err := fenced.Load(ctx)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		want, err := s.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := stateEqual(got, want); d != "" {
			t.Fatalf("%s: Load differs: %s", step, d)
		}
		if len(got.Allocations) != 1 {
			t.Fatalf("%s: %d allocations, want 1 (a-1 was deleted)", step, len(got.Allocations))
		}
		f.Stop()
		if _, err := f.State(ctx); err != ErrNotWarm {
			t.Fatalf("State of a stopped follower: %v, want ErrNotWarm", err)
		}
	}
}

// TestFollower_RestoreWhileFollowing: tables are restored from the
// follower's states while commits keep arriving (for the race detector:
// the follower never touches an object it handed out).
func TestFollower_RestoreWhileFollowing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, _ := startStore(t)
	f := s.Follow(ctx, quietLog())
	defer f.Stop()
	waitWarm(t, ctx, f)
	done := make(chan error, 1)
	go func() {
		for i := range 50 {
			id := fmt.Sprintf("agent-%d", i%5)
			if _, err := s.Commit(ctx, &kernel.Changes{Agents: map[string]*pb.Agent{id: {Id: id, Hostname: fmt.Sprint(i)}}}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for n := 0; ; n++ {
		st, err := f.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tb := kernel.Restore(st, time.Now())
		for _, a := range st.Agents {
			a.Hostname = "mine"
		}
		_ = tb
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			st, err := f.State(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want, err := s.Load(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if d := stateEqual(st, want); d != "" {
				t.Fatalf("after %d restores: %s", n, d)
			}
			return
		default:
		}
	}
}

// BenchmarkLoad_ColdVsWarm: Load of 10,000 agents and 10,000 allocations
// read from etcd (cold) against a follower's State: the first one after
// a load hands out the objects it decoded (handoff), later ones decode
// its kept values (decode); clone measures proto.Clone of the same
// objects, the alternative to decoding.
func BenchmarkLoad_ColdVsWarm(b *testing.B) {
	ctx := context.Background()
	e, err := StartEmbedded(EmbeddedConfig{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	s := New(e.Client(), "")
	const n, batch = 10_000, 500
	for i := 0; i < n; i += batch {
		c := &kernel.Changes{Agents: map[string]*pb.Agent{}, Allocations: map[string]*pb.Allocation{}}
		for j := i; j < i+batch; j++ {
			aid := fmt.Sprintf("agent-%05d", j)
			c.Agents[aid] = &pb.Agent{Id: aid, Hostname: "host-" + aid, Subnet: fmt.Sprintf("10.%d.%d.0/24", j/256, j%256),
				Total: &pb.Resources{Cpus: 32, MemBytes: 128 << 30, DiskBytes: 1 << 40, Ports: 1000}, Labels: map[string]string{"rack": fmt.Sprint(j % 40), "zone": "z1"}}
			id := fmt.Sprintf("alloc-%05d", j)
			c.Allocations[id] = &pb.Allocation{Id: id, RequestId: "r" + id, Owner: "fw", Role: "web", AgentId: aid, State: pb.AllocationState_ALLOCATION_STATE_GRANTED,
				Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 30}}
		}
		if _, err := s.Commit(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	check := func(st *kernel.State) {
		if len(st.Agents) != n || len(st.Allocations) != n {
			b.Fatalf("loaded %d agents, %d allocations", len(st.Agents), len(st.Allocations))
		}
	}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			st, err := s.Load(ctx)
			if err != nil {
				b.Fatal(err)
			}
			check(st)
		}
	})
	f := s.Follow(ctx, quietLog())
	defer f.Stop()
	for f.revision() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	b.Run("warm/handoff", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			f.mu.Lock()
			for k, e := range f.entries {
				if !e.owned {
					e.rec, _ = s.decodeKV([]byte(k), e.raw, e.modRev)
					e.owned = true
				}
			}
			f.mu.Unlock()
			b.StartTimer()
			st, err := f.State(ctx)
			if err != nil {
				b.Fatal(err)
			}
			check(st)
		}
	})
	b.Run("warm/decode", func(b *testing.B) {
		for b.Loop() {
			st, err := f.State(ctx)
			if err != nil {
				b.Fatal(err)
			}
			check(st)
		}
	})
	st, err := s.Load(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("clone", func(b *testing.B) {
		for b.Loop() {
			for _, a := range st.Agents {
				proto.Clone(a)
			}
			for _, a := range st.Allocations {
				proto.Clone(a)
			}
		}
	})
}

// startEtcdAt starts an etcd member in this process with its data in dir,
// serving clients at client and peers at peer (host:port on loopback).
func startEtcdAt(t *testing.T, dir, client, peer string) *embed.Etcd {
	t.Helper()
	ec := embed.NewConfig()
	ec.Dir = dir
	ec.LogLevel = "fatal"
	ec.TickMs, ec.ElectionMs = 10, 100
	cu, pu := url.URL{Scheme: "http", Host: client}, url.URL{Scheme: "http", Host: peer}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	e, err := embed.StartEtcd(ec)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		t.Fatal("etcd not ready after 30s")
	}
	return e
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestFollower_EtcdRestart: while etcd is down, State fails (it never
// answers a stale state); once etcd is back on the same data, the
// follower follows again and its State equals Load, with the writes made
// after the restart; it said it failed at most once.
func TestFollower_EtcdRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir, client, peer := filepath.Join(t.TempDir(), "etcd"), freeAddr(t), freeAddr(t)
	e := startEtcdAt(t, dir, client, peer)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + client}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	s := New(cli, "")
	cs := commits()
	if _, err := s.Commit(ctx, cs[0]); err != nil {
		t.Fatal(err)
	}
	var logged syncBuffer
	f := s.Follow(ctx, slog.New(slog.NewTextHandler(&logged, nil)))
	defer f.Stop()
	waitWarm(t, ctx, f)
	if _, err := f.State(ctx); err != nil {
		t.Fatal(err)
	}
	e.Close()
	sctx, scancel := context.WithTimeout(ctx, 500*time.Millisecond)
	if st, err := f.State(sctx); err == nil {
		t.Errorf("State with etcd down answered a state at revision %d", st.Revision)
	}
	scancel()
	sleepFor(ctx, time.Second) // let the follower notice
	e = startEtcdAt(t, dir, client, peer)
	t.Cleanup(e.Close) // after the follower and the client: a watch open holds Close 5 s
	for _, c := range cs[1:] {
		if _, err := s.Commit(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := f.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := stateEqual(got, want); d != "" {
		t.Fatalf("after etcd restarted: %s", d)
	}
	if n := strings.Count(logged.String(), "following the store failed"); n > 1 {
		t.Errorf("the follower said %d times that following failed, want at most once; its log:\n%s", n, logged.String())
	}
}
