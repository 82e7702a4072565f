package kernel_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// clock is a kernel clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func wantCode(t *testing.T, err error, code kernel.Code, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v %q", code, msg)
	}
	if kernel.CodeOf(err) != code || !strings.Contains(err.Error(), msg) {
		t.Fatalf("error %v %q, want %v containing %q", kernel.CodeOf(err), err, code, msg)
	}
}

func campaign(t *testing.T, k *kernel.Kernel, p kernel.Principal, election, candidate string, ttl time.Duration) *pb.CampaignResponse {
	t.Helper()
	r, err := k.Campaign(context.Background(), p, &pb.CampaignRequest{Election: election, Candidate: candidate, Ttl: durationpb.New(ttl)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestKernel_Campaign(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	clk := newClock()
	k, stop := e.startWith(t, kernel.Config{Clock: clk.now})
	ctx := context.Background()
	type step struct {
		name      string
		do        func() // before the campaign (may be nil)
		candidate string
		elected   bool
		holder    string
		epoch     int64
	}
	run := func(k *kernel.Kernel, steps []step) {
		t.Helper()
		for _, s := range steps {
			if s.do != nil {
				s.do()
			}
			r := campaign(t, k, fwA, "web", s.candidate, 5*time.Second)
			if r.GetElected() != s.elected || r.GetLeader().GetHolder() != s.holder || r.GetLeader().GetEpoch() != s.epoch {
				t.Fatalf("%s: elected %v leader %v, want elected %v holder %q epoch %d", s.name, r.GetElected(), r.GetLeader(), s.elected, s.holder, s.epoch)
			}
		}
	}
	resign := func(k *kernel.Kernel, c string, epoch int64) func() {
		return func() {
			if _, err := k.Resign(ctx, fwA, &pb.ResignRequest{Election: "web", Candidate: c, Epoch: epoch}); err != nil {
				t.Fatal(err)
			}
		}
	}
	run(k, []step{
		{"first campaign wins", nil, "a", true, "a", 1},
		{"another loses", nil, "b", false, "a", 1},
		{"holder renews in the same epoch", func() { clk.add(4 * time.Second) }, "a", true, "a", 1},
		{"renewed lease still holds", func() { clk.add(4 * time.Second) }, "b", false, "a", 1},
		{"expired lease is won with a new epoch", func() { clk.add(2 * time.Second) }, "b", true, "b", 2},
		{"old holder's resign of its epoch does nothing", resign(k, "a", 1), "a", false, "b", 2},
		{"resign frees the election, the epoch goes on", resign(k, "b", 2), "a", true, "a", 3},
		{"a resign is idempotent", func() { resign(k, "b", 2)(); resign(k, "b", 2)() }, "a", true, "a", 3},
	})
	l, err := k.Leader(ctx, fwA, &pb.LeaderRequest{Election: "web"})
	if err != nil || l.GetLeader().GetHolder() != "a" || l.GetLeader().GetEpoch() != 3 || l.GetLeader().GetOwner() != "fw-a" {
		t.Fatalf("leader %v, %v", l, err)
	}
	if l, _ := k.Leader(ctx, fwA, &pb.LeaderRequest{}); l.GetLeader().GetEpoch() != 0 || l.GetLeader().GetElection() != "default" {
		t.Fatalf("an election nobody campaigned in: %v", l)
	}
	clk.add(6 * time.Second)
	if l, _ := k.Leader(ctx, fwA, &pb.LeaderRequest{Election: "web"}); l.GetLeader().GetHolder() != "" || l.GetLeader().GetEpoch() != 3 {
		t.Fatalf("leader after the lease lapsed: %v", l)
	}

	// The epochs go on across a restart. Renewals are not persisted, so
	// a restarted kernel gives the last holder its full ttl again (as
	// etcd renews leases on a leader change), even one whose lease had
	// lapsed in the old kernel's memory.
	stop()
	k, _ = e.startWith(t, kernel.Config{Clock: clk.now})
	run(k, []step{
		{"after a restart the last holder's lease runs again", nil, "b", false, "a", 3},
		{"once it lapses a new winner gets the next epoch", func() { clk.add(6 * time.Second) }, "b", true, "b", 4},
		{"the holder renews after a restart", nil, "b", true, "b", 4},
	})
}

func TestKernel_CampaignRestartKeepsHolder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	clk := newClock()
	k, stop := e.startWith(t, kernel.Config{Clock: clk.now})
	campaign(t, k, fwA, "", "a", time.Minute)
	stop()
	k, _ = e.startWith(t, kernel.Config{Clock: clk.now})
	if r := campaign(t, k, fwA, "", "b", time.Minute); r.GetElected() || r.GetLeader().GetHolder() != "a" || r.GetLeader().GetEpoch() != 1 {
		t.Fatalf("after a restart the lease must still hold: %v", r)
	}
	if r := campaign(t, k, fwA, "", "a", time.Minute); !r.GetElected() || r.GetLeader().GetEpoch() != 1 {
		t.Fatalf("renewal after a restart: %v", r)
	}
}

func TestKernel_CoordValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, _ := e.start(t)
	ctx := context.Background()
	long := strings.Repeat("x", 257)
	neg := int64(-1)
	tests := []struct {
		name  string
		call  func() error
		field string
	}{
		{"election name", func() error {
			_, err := k.Campaign(ctx, fwA, &pb.CampaignRequest{Election: "Web", Candidate: "a"})
			return err
		}, "election:"},
		{"candidate empty", func() error { _, err := k.Campaign(ctx, fwA, &pb.CampaignRequest{}); return err }, "candidate:"},
		{"candidate chars", func() error {
			_, err := k.Campaign(ctx, fwA, &pb.CampaignRequest{Candidate: "a b"})
			return err
		}, "candidate:"},
		{"ttl short", func() error {
			_, err := k.Campaign(ctx, fwA, &pb.CampaignRequest{Candidate: "a", Ttl: durationpb.New(time.Millisecond)})
			return err
		}, "ttl: must be between 1s and 5m0s, got 1ms"},
		{"address", func() error {
			_, err := k.Campaign(ctx, fwA, &pb.CampaignRequest{Candidate: "a", Address: long})
			return err
		}, "address:"},
		{"resign epoch", func() error {
			_, err := k.Resign(ctx, fwA, &pb.ResignRequest{Candidate: "a"})
			return err
		}, "epoch:"},
		{"key empty", func() error { _, err := k.StatePut(ctx, fwA, &pb.StatePutRequest{}); return err }, "key: required"},
		{"key space", func() error { _, err := k.StatePut(ctx, fwA, &pb.StatePutRequest{Key: "a b"}); return err }, "key:"},
		{"key long", func() error { _, err := k.StateGet(ctx, fwA, &pb.StateGetRequest{Key: long}); return err }, "key: at most 256"},
		{"value large", func() error {
			_, err := k.StatePut(ctx, fwA, &pb.StatePutRequest{Key: "k", Value: make([]byte, kernel.MaxStateValue+1)})
			return err
		}, "value: at most 262144"},
		{"expected negative", func() error {
			_, err := k.StateDelete(ctx, fwA, &pb.StateDeleteRequest{Key: "k", ExpectedRevision: &neg})
			return err
		}, "expected_revision:"},
		{"fence epoch", func() error {
			_, err := k.StatePut(ctx, fwA, &pb.StatePutRequest{Key: "k", Fence: &pb.Fence{}})
			return err
		}, "fence.epoch:"},
		{"fence election", func() error {
			_, err := k.Allocate(ctx, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1}, Fence: &pb.Fence{Election: "-x", Epoch: 1}})
			return err
		}, "fence.election:"},
		{"prefix", func() error { _, err := k.StateList(ctx, fwA, &pb.StateListRequest{Prefix: "a\x00"}); return err }, "prefix:"},
		{"too many labels", func() error {
			m := map[string]string{}
			for i := range kernel.MaxObjectLabels + 1 {
				m["l"+strings.Repeat("x", i)] = "v"
			}
			_, err := k.Allocate(ctx, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1}, Labels: m})
			return err
		}, "labels: at most 32"},
		{"label value", func() error {
			_, err := k.Launch(ctx, fwA, &pb.LaunchRequest{AllocationId: "a-1", Command: "true", Labels: map[string]string{"svc": long}})
			return err
		}, "labels[svc]: at most 256 bytes"},
		{"label key", func() error {
			_, err := k.Launch(ctx, fwA, &pb.LaunchRequest{AllocationId: "a-1", Command: "true", Labels: map[string]string{"-x": "v"}})
			return err
		}, "labels:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, tt.call(), kernel.InvalidArgument, tt.field)
		})
	}
}

func TestKernel_StateCAS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, _ := e.start(t)
	ctx := context.Background()
	const key = "specs/web"
	revs := map[string]int64{}
	exp := func(n int64) *int64 { return &n }
	// Each step's expected revision is a revision an earlier step recorded
	// (by name), or a literal when ref is "".
	tests := []struct {
		name    string
		del     bool
		ref     string
		lit     *int64
		value   string
		wantErr string // Aborted containing this ("" = success)
	}{
		{"create if absent", false, "", exp(0), "v1", ""},
		{"create again", false, "", exp(0), "v2", `state key "specs/web": revision %d, expected it absent`},
		{"swap on the current revision", false, "create if absent", nil, "v2", ""},
		{"swap on an old revision", false, "create if absent", nil, "v3", `state key "specs/web": revision %d, expected %d`},
		{"unconditional put", false, "", nil, "v3", ""},
		{"delete on an old revision", true, "swap on the current revision", nil, "", `revision %d, expected %d`},
		{"delete on the current revision", true, "unconditional put", nil, "", ""},
		{"delete an absent key", true, "", nil, "", ""},
		{"conditional delete of an absent key", true, "", exp(5), "", `state key "specs/web": absent, expected revision 5`},
		{"conditional put of an absent key", false, "", exp(3), "v4", `absent, expected revision 3`},
	}
	var cur int64
	for _, tt := range tests {
		want := tt.lit
		if tt.ref != "" {
			want = exp(revs[tt.ref])
		}
		var rev int64
		var err error
		if tt.del {
			var r *pb.StateDeleteResponse
			r, err = k.StateDelete(ctx, fwA, &pb.StateDeleteRequest{Key: key, ExpectedRevision: want})
			rev = r.GetRevision()
		} else {
			var r *pb.StatePutResponse
			r, err = k.StatePut(ctx, fwA, &pb.StatePutRequest{Key: key, Value: []byte(tt.value), ExpectedRevision: want})
			rev = r.GetRevision()
		}
		if tt.wantErr != "" {
			msg := tt.wantErr
			if strings.Contains(msg, "%d, expected %d") {
				msg = strings.Replace(strings.Replace(msg, "%d", itoa(cur), 1), "%d", itoa(*want), 1)
			} else {
				msg = strings.Replace(msg, "%d", itoa(cur), 1)
			}
			wantCode(t, err, kernel.Aborted, msg)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		revs[tt.name] = rev
		if tt.del {
			cur = 0
			if _, err := k.StateGet(ctx, fwA, &pb.StateGetRequest{Key: key}); kernel.CodeOf(err) != kernel.NotFound {
				t.Fatalf("%s: get after delete: %v", tt.name, err)
			}
			continue
		}
		cur = rev
		g, err := k.StateGet(ctx, fwA, &pb.StateGetRequest{Key: key})
		if err != nil || string(g.GetEntry().GetValue()) != tt.value || g.GetEntry().GetRevision() != rev || g.GetEntry().GetOwner() != "fw-a" {
			t.Fatalf("%s: get %v, %v; want %q at revision %d", tt.name, g, err, tt.value, rev)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestKernel_StateList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, _ := e.start(t)
	ctx := context.Background()
	for _, key := range []string{"specs/web", "a", "specs/db", "specs0", "specs/api"} {
		if _, err := k.StatePut(ctx, fwA, &pb.StatePutRequest{Key: key, Value: []byte("v-" + key)}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		prefix   string
		keysOnly bool
		want     []string
	}{
		{"", false, []string{"a", "specs/api", "specs/db", "specs/web", "specs0"}},
		{"specs/", false, []string{"specs/api", "specs/db", "specs/web"}},
		{"specs/", true, []string{"specs/api", "specs/db", "specs/web"}},
		{"zzz", false, nil},
	}
	for _, tt := range tests {
		r, err := k.StateList(ctx, fwA, &pb.StateListRequest{Prefix: tt.prefix, KeysOnly: tt.keysOnly})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range r.GetEntries() {
			got = append(got, e.GetKey())
			if e.GetRevision() == 0 || e.GetOwner() != "fw-a" || (len(e.GetValue()) > 0) == tt.keysOnly ||
				(!tt.keysOnly && string(e.GetValue()) != "v-"+e.GetKey()) {
				t.Fatalf("prefix %q keys_only %v: entry %v", tt.prefix, tt.keysOnly, e)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Fatalf("prefix %q: keys %q, want %q", tt.prefix, got, tt.want)
		}
	}
	// Another framework's list is its own: empty.
	if r, err := k.StateList(ctx, fwB, &pb.StateListRequest{}); err != nil || len(r.GetEntries()) != 0 {
		t.Fatalf("fw-b lists %v, %v", r, err)
	}
}

func TestKernel_CoordScoping(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, _ := e.start(t)
	ctx := context.Background()
	if _, err := k.StatePut(ctx, fwA, &pb.StatePutRequest{Key: "secret", Value: []byte("a's")}); err != nil {
		t.Fatal(err)
	}
	campaign(t, k, fwA, "", "a-1", time.Minute)
	calls := []struct {
		name string
		call func(p kernel.Principal) error
	}{
		{"get", func(p kernel.Principal) error {
			_, err := k.StateGet(ctx, p, &pb.StateGetRequest{Key: "secret", Owner: "fw-a"})
			return err
		}},
		{"put", func(p kernel.Principal) error {
			_, err := k.StatePut(ctx, p, &pb.StatePutRequest{Key: "secret", Value: []byte("x"), Owner: "fw-a"})
			return err
		}},
		{"delete", func(p kernel.Principal) error {
			_, err := k.StateDelete(ctx, p, &pb.StateDeleteRequest{Key: "other", Owner: "fw-a"})
			return err
		}},
		{"list", func(p kernel.Principal) error {
			_, err := k.StateList(ctx, p, &pb.StateListRequest{Owner: "fw-a"})
			return err
		}},
		{"campaign", func(p kernel.Principal) error {
			_, err := k.Campaign(ctx, p, &pb.CampaignRequest{Candidate: "x", Owner: "fw-a"})
			return err
		}},
		{"resign", func(p kernel.Principal) error {
			_, err := k.Resign(ctx, p, &pb.ResignRequest{Candidate: "x", Epoch: 9, Owner: "fw-a"})
			return err
		}},
		{"leader", func(p kernel.Principal) error {
			_, err := k.Leader(ctx, p, &pb.LeaderRequest{Owner: "fw-a"})
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			wantCode(t, c.call(fwB), kernel.PermissionDenied, `owner: a framework acts on its own elections and state only, not "fw-a"'s`)
			if err := c.call(ops); err != nil {
				t.Fatalf("operator with owner: %v", err)
			}
		})
	}
	// B's own namespace does not show A's.
	if _, err := k.StateGet(ctx, fwB, &pb.StateGetRequest{Key: "secret"}); kernel.CodeOf(err) != kernel.NotFound {
		t.Fatalf("fw-b reads its own key: %v", err)
	}
	if l, _ := k.Leader(ctx, fwB, &pb.LeaderRequest{}); l.GetLeader().GetEpoch() != 0 || l.GetLeader().GetOwner() != "fw-b" {
		t.Fatalf("fw-b's default election: %v", l)
	}
	// The operator wrote A's key above; A reads it.
	if g, err := k.StateGet(ctx, fwA, &pb.StateGetRequest{Key: "secret"}); err != nil || string(g.GetEntry().GetValue()) != "x" {
		t.Fatalf("fw-a reads %v, %v", g, err)
	}
	// An operator without owner acts on its own.
	if _, err := k.StateGet(ctx, ops, &pb.StateGetRequest{Key: "secret"}); kernel.CodeOf(err) != kernel.NotFound {
		t.Fatalf("operator without owner reads %v", err)
	}
}

func TestKernel_CoordEventsVisibility(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, _ := e.start(t)
	ctx := context.Background()
	after := k.Revision()
	putA, err := k.StatePut(ctx, fwA, &pb.StatePutRequest{Key: "k", Value: []byte("secret value")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.StatePut(ctx, fwB, &pb.StatePutRequest{Key: "k", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	campaign(t, k, fwA, "", "a", time.Minute)
	campaign(t, k, fwB, "", "b", time.Minute)
	req := &pb.WatchRequest{AfterRevision: after, Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_STATE_CHANGED, pb.EventKind_EVENT_KIND_LEADER_CHANGED}}
	owner := func(e *pb.Event) string {
		if e.GetState() != nil {
			return e.GetState().GetOwner()
		}
		return e.GetLeader().GetOwner()
	}
	tests := []struct {
		p      kernel.Principal
		n      int
		owners []string
	}{
		{ops, 4, []string{"fw-a", "fw-b", "fw-a", "fw-b"}},
		{fwA, 2, []string{"fw-a", "fw-a"}},
		{fwB, 2, []string{"fw-b", "fw-b"}},
	}
	for _, tt := range tests {
		evs := collect(t, k, tt.p, req, tt.n)
		var got []string
		for _, e := range evs {
			got = append(got, owner(e))
		}
		if !slices.Equal(got, tt.owners) {
			t.Fatalf("%s sees events of %q, want %q", tt.p.Name, got, tt.owners)
		}
		if s := evs[0].GetState(); tt.p != fwB && (s.GetKey() != "k" || s.GetRevision() != putA.GetRevision() || len(s.GetValue()) != 0) {
			t.Fatalf("STATE_CHANGED %v, want key k at revision %d without its value", s, putA.GetRevision())
		}
		if l := evs[len(evs)-1].GetLeader(); l.GetEpoch() != 1 || l.GetHolder() == "" {
			t.Fatalf("LEADER_CHANGED %v", l)
		}
	}
	// An agent token sees none of them.
	agent := kernel.Principal{Name: "agents", Role: kernel.RoleAgent}
	if _, err := k.StatePut(ctx, fwA, &pb.StatePutRequest{Key: "k2"}); err != nil {
		t.Fatal(err)
	}
	register(t, k, 1, 1<<20) // an event an agent does see, after the others
	evs := collect(t, k, agent, &pb.WatchRequest{AfterRevision: after}, 1)
	if evs[0].GetKind() != pb.EventKind_EVENT_KIND_AGENT_REGISTERED {
		t.Fatalf("an agent sees %v", evs[0])
	}
}

// world is what a fenced call must leave as it was.
type world struct {
	allocs []*pb.Allocation
	tasks  []*pb.Task
	state  []*pb.StateEntry
	leader *pb.Leadership
	rev    int64
}

func worldOf(t *testing.T, k *kernel.Kernel) world {
	t.Helper()
	ctx := context.Background()
	w := world{allocs: k.ListAllocations(ctx, ops, &pb.ListAllocationsRequest{}).GetAllocations(),
		tasks: k.ListTasks(ctx, ops, &pb.ListTasksRequest{}).GetTasks(), rev: k.Revision()}
	slices.SortFunc(w.allocs, func(a, b *pb.Allocation) int { return strings.Compare(a.GetId(), b.GetId()) })
	slices.SortFunc(w.tasks, func(a, b *pb.Task) int { return strings.Compare(a.GetId(), b.GetId()) })
	sl, err := k.StateList(ctx, fwA, &pb.StateListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	w.state = sl.GetEntries()
	l, err := k.Leader(ctx, fwA, &pb.LeaderRequest{})
	if err != nil {
		t.Fatal(err)
	}
	w.leader = l.GetLeader()
	return w
}

func (w world) equal(o world) bool {
	eq := func(a, b proto.Message) bool { return proto.Equal(a, b) }
	return w.rev == o.rev && proto.Equal(w.leader, o.leader) &&
		slices.EqualFunc(w.allocs, o.allocs, func(a, b *pb.Allocation) bool { return eq(a, b) }) &&
		slices.EqualFunc(w.tasks, o.tasks, func(a, b *pb.Task) bool { return eq(a, b) }) &&
		slices.EqualFunc(w.state, o.state, func(a, b *pb.StateEntry) bool { return eq(a, b) })
}

func TestKernel_Fencing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	clk := newClock()
	k, _ := e.startWith(t, kernel.Config{Clock: clk.now})
	ctx := context.Background()
	register(t, k, 8, 8<<30)
	old := campaign(t, k, fwA, "", "a", time.Second).GetLeader().GetEpoch()
	fence := &pb.Fence{Epoch: old}
	// While it leads, its fenced calls go through.
	ar, err := k.Allocate(ctx, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}, Fence: fence,
		Labels: map[string]string{"service": "web"}})
	if err != nil {
		t.Fatal(err)
	}
	a := ar.GetAllocations()[0]
	lr, err := k.Launch(ctx, fwA, &pb.LaunchRequest{AllocationId: a.GetId(), Command: "sleep", Args: []string{"60"}, Fence: fence,
		Labels: map[string]string{"version": "1.2"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.StatePut(ctx, fwA, &pb.StatePutRequest{Key: "k", Value: []byte("v"), Fence: fence}); err != nil {
		t.Fatal(err)
	}
	// Labels are kept on the objects.
	if a.GetLabels()["service"] != "web" || lr.GetTask().GetLabels()["version"] != "1.2" {
		t.Fatalf("labels: allocation %v, task %v", a.GetLabels(), lr.GetTask().GetLabels())
	}
	// The lease lapses but nobody else won: the fence still holds.
	clk.add(2 * time.Second)
	if _, err := k.StatePut(ctx, fwA, &pb.StatePutRequest{Key: "k", Value: []byte("v2"), Fence: fence}); err != nil {
		t.Fatalf("a lapsed lease nobody else won: %v", err)
	}
	// Another replica wins: the old epoch is deposed.
	if r := campaign(t, k, fwA, "", "b", 5*time.Minute); !r.GetElected() || r.GetLeader().GetEpoch() != old+1 {
		t.Fatalf("b's campaign: %v", r)
	}
	calls := []struct {
		name string
		call func(f *pb.Fence) error
	}{
		{"allocate", func(f *pb.Fence) error {
			_, err := k.Allocate(ctx, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}, Fence: f})
			return err
		}},
		{"launch", func(f *pb.Fence) error {
			_, err := k.Launch(ctx, fwA, &pb.LaunchRequest{AllocationId: a.GetId(), Command: "true", Fence: f})
			return err
		}},
		{"revoke", func(f *pb.Fence) error {
			_, err := k.Revoke(ctx, fwA, &pb.RevokeRequest{Id: a.GetId(), Fence: f})
			return err
		}},
		{"revoke all", func(f *pb.Fence) error {
			_, err := k.Revoke(ctx, fwA, &pb.RevokeRequest{All: true, Fence: f})
			return err
		}},
		{"state put", func(f *pb.Fence) error {
			_, err := k.StatePut(ctx, fwA, &pb.StatePutRequest{Key: "k", Value: []byte("deposed"), Fence: f})
			return err
		}},
		{"state delete", func(f *pb.Fence) error {
			_, err := k.StateDelete(ctx, fwA, &pb.StateDeleteRequest{Key: "k", Fence: f})
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			before := worldOf(t, k)
			wantCode(t, c.call(&pb.Fence{Epoch: 1}), kernel.FailedPrecondition, "deposed: epoch 1 < 2")
			wantCode(t, c.call(&pb.Fence{Epoch: 7}), kernel.FailedPrecondition, `fence: election "default" has no epoch 7`)
			wantCode(t, c.call(&pb.Fence{Election: "other", Epoch: 1}), kernel.FailedPrecondition, `fence: election "other" has no epoch 1`)
			if after := worldOf(t, k); !before.equal(after) {
				t.Fatalf("a refused call changed something:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
	// The new leader's fence works.
	if _, err := k.StatePut(ctx, fwA, &pb.StatePutRequest{Key: "k", Value: []byte("new"), Fence: &pb.Fence{Epoch: 2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Revoke(ctx, fwA, &pb.RevokeRequest{All: true, Fence: &pb.Fence{Election: "default", Epoch: 2}}); err != nil {
		t.Fatal(err)
	}
}

func TestKernel_CoordSurvivesRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	clk := newClock()
	k, stop := e.startWith(t, kernel.Config{Clock: clk.now})
	ctx := context.Background()
	revs := map[string]int64{}
	for _, key := range []string{"x/1", "x/2", "y"} {
		r, err := k.StatePut(ctx, fwA, &pb.StatePutRequest{Key: key, Value: []byte(key)})
		if err != nil {
			t.Fatal(err)
		}
		revs[key] = r.GetRevision()
	}
	if _, err := k.StatePut(ctx, ops, &pb.StatePutRequest{Key: "y", Value: []byte("b's"), Owner: "team/b"}); err != nil {
		t.Fatal(err)
	}
	for range 3 { // epochs 1..3
		r := campaign(t, k, fwA, "web", "a", time.Minute)
		if _, err := k.Resign(ctx, fwA, &pb.ResignRequest{Election: "web", Candidate: "a", Epoch: r.GetLeader().GetEpoch()}); err != nil {
			t.Fatal(err)
		}
	}
	campaign(t, k, fwA, "db", "a", time.Minute)
	before := func() []*pb.StateEntry {
		l, _ := k.StateList(ctx, fwA, &pb.StateListRequest{})
		return l.GetEntries()
	}()
	stop()
	k, _ = e.startWith(t, kernel.Config{Clock: clk.now})
	after, err := k.StateList(ctx, fwA, &pb.StateListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(before, after.GetEntries(), func(a, b *pb.StateEntry) bool { return proto.Equal(a, b) }) {
		t.Fatalf("state after a restart %v, want %v", after.GetEntries(), before)
	}
	for key, rev := range revs {
		g, err := k.StateGet(ctx, fwA, &pb.StateGetRequest{Key: key})
		if err != nil || g.GetEntry().GetRevision() != rev || string(g.GetEntry().GetValue()) != key {
			t.Fatalf("%s after a restart: %v, %v; want revision %d", key, g, err, rev)
		}
	}
	if g, err := k.StateGet(ctx, ops, &pb.StateGetRequest{Key: "y", Owner: "team/b"}); err != nil || string(g.GetEntry().GetValue()) != "b's" {
		t.Fatalf("team/b's key after a restart: %v, %v", g, err)
	}
	if r := campaign(t, k, fwA, "web", "b", time.Minute); r.GetLeader().GetEpoch() != 4 {
		t.Fatalf("web after a restart: %v, want epoch 4", r)
	}
	if l, _ := k.Leader(ctx, fwA, &pb.LeaderRequest{Election: "db"}); l.GetLeader().GetHolder() != "a" || l.GetLeader().GetEpoch() != 1 {
		t.Fatalf("db after a restart: %v", l)
	}
}

// TestKernel_RenewalWritesNothing: a holder's renewal moves its lease in
// memory only (no store write, no revision), so idle framework replicas
// do not keep etcd busy; a changed address is written.
func TestKernel_RenewalWritesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	clk := newClock()
	k, _ := e.startWith(t, kernel.Config{Clock: clk.now})
	campaign(t, k, fwA, "", "a", time.Minute)
	rev := k.Revision()
	for range 3 {
		clk.add(30 * time.Second)
		if r := campaign(t, k, fwA, "", "a", time.Minute); !r.GetElected() || r.GetLeader().GetEpoch() != 1 {
			t.Fatalf("renewal: %v", r)
		}
	}
	if got := k.Revision(); got != rev {
		t.Fatalf("renewals moved the store revision from %d to %d", rev, got)
	}
	// 90 s after the win, the lease (1 min) still holds: renewals count.
	if r := campaign(t, k, fwA, "", "b", time.Minute); r.GetElected() {
		t.Fatalf("b won a renewed lease: %v", r)
	}
}
