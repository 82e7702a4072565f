package framework

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestElector_OneLeaderThenTakeover(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	ctx := testCtx(t)
	c := k.client(t, fwToken)
	if _, err := c.Leader(ctx, &pb.LeaderRequest{Election: "svc"}); err != nil && Code(err) != connect.CodeNotFound {
		t.Fatal(err)
	}

	var mu sync.Mutex
	active := map[string]int64{} // candidate → epoch while leading
	var epochs []int64
	overlap := false
	lead := func(name string) func(context.Context, *pb.Fence) {
		return func(lctx context.Context, f *pb.Fence) {
			mu.Lock()
			if len(active) > 0 {
				overlap = true
			}
			active[name] = f.GetEpoch()
			epochs = append(epochs, f.GetEpoch())
			mu.Unlock()
			<-lctx.Done()
			mu.Lock()
			delete(active, name)
			mu.Unlock()
		}
	}
	run := func(name string) (context.CancelFunc, chan error) {
		e := c.NewElector(ElectionConfig{Name: "svc", Candidate: name, TTL: time.Second, Address: name + ":1"})
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- e.Run(rctx, lead(name)) }()
		return cancel, done
	}
	cancelA, doneA := run("a")
	eventually(t, "a to lead", func() bool { mu.Lock(); defer mu.Unlock(); return active["a"] > 0 })
	cancelB, doneB := run("b")
	defer func() { cancelB(); <-doneB }()
	time.Sleep(700 * time.Millisecond) // b campaigns and loses at least twice
	mu.Lock()
	if len(active) != 1 || active["a"] == 0 {
		t.Fatalf("leaders %v, want a alone", active)
	}
	first := active["a"]
	mu.Unlock()
	l, err := c.NewElector(ElectionConfig{Name: "svc"}).Leader(ctx)
	if err != nil || l.GetHolder() != "a" || l.GetEpoch() != first || l.GetAddress() != "a:1" {
		t.Fatalf("Leader = %v, %v; want a at epoch %d", l, err, first)
	}

	// The leader stops: it resigns and b takes over with a greater epoch.
	cancelA()
	if err := <-doneA; err != nil {
		t.Fatalf("a's Run: %v", err)
	}
	eventually(t, "b to lead", func() bool { mu.Lock(); defer mu.Unlock(); return active["b"] > 0 })
	mu.Lock()
	defer mu.Unlock()
	if overlap {
		t.Fatal("two replicas led at once")
	}
	if active["b"] <= first {
		t.Fatalf("b leads with epoch %d, not greater than a's %d", active["b"], first)
	}
}

func TestElector_DeposedLeaderCannotWrite(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	ctx := testCtx(t)
	c := k.client(t, fwToken)
	ttl := durationpb.New(time.Second)
	a, err := c.Campaign(ctx, &pb.CampaignRequest{Election: "x", Candidate: "a", Ttl: ttl})
	if err != nil || !a.GetElected() {
		t.Fatalf("a's campaign: %v %v", a, err)
	}
	if b, err := c.Campaign(ctx, &pb.CampaignRequest{Election: "x", Candidate: "b", Ttl: ttl}); err != nil || b.GetElected() || b.GetLeader().GetHolder() != "a" {
		t.Fatalf("b's campaign while a leads: %v %v", b, err)
	}
	fa := c.Fenced(&pb.Fence{Election: "x", Epoch: a.GetLeader().GetEpoch()})
	if _, err := fa.StatePut(ctx, &pb.StatePutRequest{Key: "k", Value: []byte("a")}); err != nil {
		t.Fatalf("the leader's fenced write: %v", err)
	}
	if _, err := c.Resign(ctx, &pb.ResignRequest{Election: "x", Candidate: "a", Epoch: a.GetLeader().GetEpoch()}); err != nil {
		t.Fatal(err)
	}
	b, err := c.Campaign(ctx, &pb.CampaignRequest{Election: "x", Candidate: "b", Ttl: ttl})
	if err != nil || !b.GetElected() || b.GetLeader().GetEpoch() <= a.GetLeader().GetEpoch() {
		t.Fatalf("b's campaign after a resigned: %v %v", b, err)
	}
	for name, call := range map[string]func() error{
		"StatePut": func() error {
			_, err := fa.StatePut(ctx, &pb.StatePutRequest{Key: "k", Value: []byte("stale")})
			return err
		},
		"StateDelete": func() error { _, err := fa.StateDelete(ctx, &pb.StateDeleteRequest{Key: "k"}); return err },
		"Allocate": func() error {
			_, err := fa.Allocate(ctx, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}})
			return err
		},
	} {
		if err := call(); !errors.Is(err, ErrDeposed) || Code(err) != connect.CodeFailedPrecondition {
			t.Errorf("%s with a deposed fence: %v, want ErrDeposed", name, err)
		}
	}
	g, err := c.StateGet(ctx, &pb.StateGetRequest{Key: "k"})
	if err != nil || string(g.GetEntry().GetValue()) != "a" {
		t.Fatalf("state after the deposed writes: %v %v", g, err)
	}
}

func TestClient_State(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	ctx := testCtx(t)
	c := k.client(t, fwToken)
	cache := NewCache(c)
	var mu sync.Mutex
	var changed []*pb.StateEntry
	defer cache.Subscribe(func(ev *pb.Event) {
		if ev.GetKind() == pb.EventKind_EVENT_KIND_STATE_CHANGED {
			mu.Lock()
			changed = append(changed, ev.GetState())
			mu.Unlock()
		}
	})()
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cache.Run(cctx) }()
	defer func() { cancel(); <-done }()
	if err := cache.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	zero := int64(0)
	p, err := c.StatePut(ctx, &pb.StatePutRequest{Key: "svc/a", Value: []byte("1"), ExpectedRevision: &zero})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StatePut(ctx, &pb.StatePutRequest{Key: "svc/a", Value: []byte("2"), ExpectedRevision: &zero}); Code(err) != connect.CodeAborted {
		t.Fatalf("create of an existing key: %v, want Aborted", err)
	}
	rev := p.GetRevision()
	if _, err := c.StatePut(ctx, &pb.StatePutRequest{Key: "svc/a", Value: []byte("2"), ExpectedRevision: &rev}); err != nil {
		t.Fatalf("CAS at the right revision: %v", err)
	}
	if _, err := c.StatePut(ctx, &pb.StatePutRequest{Key: "svc/b", Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	l, err := c.StateList(ctx, &pb.StateListRequest{Prefix: "svc/"})
	if err != nil || len(l.GetEntries()) != 2 || l.GetEntries()[0].GetKey() != "svc/a" || string(l.GetEntries()[0].GetValue()) != "2" {
		t.Fatalf("list: %v %v", l, err)
	}
	if _, err := c.StateDelete(ctx, &pb.StateDeleteRequest{Key: "svc/a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StateGet(ctx, &pb.StateGetRequest{Key: "svc/a"}); Code(err) != connect.CodeNotFound {
		t.Fatalf("get of a deleted key: %v, want NotFound", err)
	}
	if _, err := c.StatePut(ctx, &pb.StatePutRequest{Key: "has space", Value: []byte("x")}); Code(err) != connect.CodeInvalidArgument {
		t.Fatalf("bad key: %v, want InvalidArgument", err)
	}
	// The cache's subscribers see the state's changes (4 writes, 1 delete).
	eventually(t, "STATE_CHANGED events", func() bool { mu.Lock(); defer mu.Unlock(); return len(changed) == 4 })
	mu.Lock()
	defer mu.Unlock()
	if last := changed[3]; last.GetKey() != "svc/a" || !last.GetDeleted() || len(last.GetValue()) != 0 {
		t.Fatalf("last STATE_CHANGED: %v", last)
	}
}

func TestElector_LosesLeadershipWhenItCannotRenew(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	ctx := testCtx(t)
	wc := newWatchControl()
	cut, err := New(Config{Endpoints: []string{k.URL}, Token: fwToken, HTTPClient: wc.client(), Timeout: 2 * time.Second,
		Retry: Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Attempts: 2}})
	if err != nil {
		t.Fatal(err)
	}
	fences := make(chan *pb.Fence, 1)
	lost := make(chan struct{})
	// Renewals are bounded by the lease, not by Timeout; a short Timeout
	// only made every campaign of a loaded machine (-race, CI) time out
	// before it was elected (a 60 s "never elected" in CI).
	e := cut.NewElector(ElectionConfig{Name: "p", Candidate: "a", TTL: time.Second})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- e.Run(rctx, func(lctx context.Context, f *pb.Fence) {
			fences <- f
			<-lctx.Done()
			close(lost)
			<-rctx.Done()
		})
	}()
	defer func() { cancel(); <-done }()
	var fa *pb.Fence
	select {
	case fa = <-fences:
	case <-ctx.Done():
		t.Fatal("never elected")
	}
	wc.blockAll.Store(true) // a partition: a can no longer renew
	select {
	case <-lost:
	case <-ctx.Done():
		t.Fatal("leadership was not given up when renewals failed")
	}
	// Another replica wins after a's lease; a's fence is then deposed.
	c := k.client(t, fwToken)
	var b *pb.CampaignResponse
	eventually(t, "b to win", func() bool {
		b, err = c.Campaign(ctx, &pb.CampaignRequest{Election: "p", Candidate: "b", Ttl: durationpb.New(time.Second)})
		return err == nil && b.GetElected()
	})
	if b.GetLeader().GetEpoch() <= fa.GetEpoch() {
		t.Fatalf("b's epoch %d <= a's %d", b.GetLeader().GetEpoch(), fa.GetEpoch())
	}
	if _, err := c.Fenced(fa).StatePut(ctx, &pb.StatePutRequest{Key: "k", Value: []byte("late")}); !errors.Is(err, ErrDeposed) {
		t.Fatalf("a's late write: %v, want ErrDeposed", err)
	}
}
