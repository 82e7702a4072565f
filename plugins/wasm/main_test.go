package wasm

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

var (
	// goGuest is the path of testdata/goguest built for wasip1 by TestMain.
	goGuest string
	// cacheDir is a compilation cache shared by the tests' hosts, so each
	// module is compiled once per run.
	cacheDir string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "dcos-wasm-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	goGuest = filepath.Join(dir, "goguest.wasm")
	cacheDir = filepath.Join(dir, "cache")
	// The Go build cache makes this fast after the first run.
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", goGuest, "./testdata/goguest")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building testdata/goguest: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newHost(t testing.TB, cfg HostConfig) *Host {
	t.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = cacheDir
	}
	h, err := NewHost(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return h
}

func load(t testing.TB, h *Host, name, path string) *Policy {
	t.Helper()
	p, err := h.Load(context.Background(), name, readFile(t, path))
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// records is an slog.Handler that keeps what it is given.
type records struct {
	level slog.Level
	mu    sync.Mutex
	recs  []string
}

func (r *records) Enabled(_ context.Context, l slog.Level) bool { return l >= r.level }

func (r *records) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", rec.Level, rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	r.mu.Lock()
	r.recs = append(r.recs, b.String())
	r.mu.Unlock()
	return nil
}

func (r *records) WithAttrs(as []slog.Attr) slog.Handler { return &withAttrs{r, as} }
func (r *records) WithGroup(string) slog.Handler         { return r }

func (r *records) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.recs...)
}

type withAttrs struct {
	*records
	as []slog.Attr
}

func (w *withAttrs) Handle(ctx context.Context, rec slog.Record) error {
	rec.AddAttrs(w.as...)
	return w.records.Handle(ctx, rec)
}

// mib is cpus in millicores and memory in MiB.
func mib(mcpu, memMiB int64) kernel.Resources {
	return kernel.Resources{MilliCPU: mcpu, Mem: memMiB << 20}
}

func eq(label, v string) *pb.Constraint {
	return &pb.Constraint{Op: pb.Constraint_OP_EQUALS, Label: label, Values: []string{v}}
}

// handSnapshot is a small cluster exercising every constraint operator,
// shared groups, a request that can never fit and one that fits only later.
func handSnapshot() *kernel.Snapshot {
	return &kernel.Snapshot{
		Seed: 7,
		Agents: []kernel.AgentInfo{
			{ID: "a0", Labels: map[string]string{"zone": "a", "rack": "r1"}, Total: mib(4000, 4096), Free: mib(1000, 1024)},
			{ID: "a1", Labels: map[string]string{"zone": "b", "rack": "r2"}, Total: mib(4000, 4096), Free: mib(4000, 4096)},
			{ID: "a2", Labels: map[string]string{"zone": "c"}, Total: mib(2000, 2048), Free: mib(2000, 2048)},
			{ID: "a3", Total: mib(8000, 8192), Free: mib(500, 512)},
		},
		Requests: []kernel.Request{
			{ID: "x-1", RequestID: "x", Role: "web", Priority: 5, Resources: mib(1000, 1024)},                                    // a0
			{ID: "x-2", RequestID: "x", Role: "web", Priority: 5, Resources: mib(1000, 1024)},                                    // a1
			{ID: "y-1", RequestID: "y", Role: "batch", Resources: mib(500, 256), Constraints: []*pb.Constraint{eq("zone", "c")}}, // a2
			{ID: "z-1", RequestID: "z", Resources: mib(500, 256), Constraints: []*pb.Constraint{
				{Op: pb.Constraint_OP_NOT_EQUALS, Label: "zone", Values: []string{"b"}}}}, // a2 (a0 is full)
			{ID: "w-1", RequestID: "w", Resources: mib(100, 64), Constraints: []*pb.Constraint{
				{Op: pb.Constraint_OP_IN, Label: "rack", Values: []string{"r9", "r2"}}}}, // a1
			{ID: "big-1", RequestID: "big", Resources: mib(16000, 64)},                                                     // never
			{ID: "later-1", RequestID: "later", Resources: mib(7000, 64)},                                                  // not now (a3 total)
			{ID: "nozone-1", RequestID: "nozone", Resources: mib(100, 64), Constraints: []*pb.Constraint{eq("zone", "q")}}, // never
			{ID: "last-1", RequestID: "last", Resources: mib(400, 400)},                                                    // a1
		},
		Roles: []kernel.RoleInfo{{Name: "batch", Weight: 1}, {Name: "web", Weight: 2, Usage: mib(3000, 3072)}},
		Allocations: []kernel.Granted{
			{ID: "g-1", Agent: 0, Role: "web", Priority: 1, Resources: mib(3000, 3072)},
		},
	}
}

// checkDecision fails t unless every placement in d is one the kernel's
// validation accepts: indices in range, each request once, constraints
// met, and capacity summed over the decision.
func checkDecision(t *testing.T, s *kernel.Snapshot, d *kernel.Decision) {
	t.Helper()
	free := make([]kernel.Resources, len(s.Agents))
	for i, a := range s.Agents {
		free[i] = a.Free
	}
	placed := map[int]bool{}
	for _, pl := range d.Placements {
		if pl.Request < 0 || pl.Request >= len(s.Requests) || pl.Agent < 0 || pl.Agent >= len(s.Agents) || placed[pl.Request] {
			t.Fatalf("bad placement %+v", pl)
		}
		r := s.Requests[pl.Request]
		if !kernel.Matches(s.Agents[pl.Agent].Labels, r.Constraints) {
			t.Fatalf("placement %+v violates constraints", pl)
		}
		if !free[pl.Agent].Fits(r.Resources) {
			t.Fatalf("placement %+v over-commits agent %d", pl, pl.Agent)
		}
		free[pl.Agent] = free[pl.Agent].Sub(r.Resources)
		placed[pl.Request] = true
	}
}

func notEq(label, v string) *pb.Constraint {
	return &pb.Constraint{Op: pb.Constraint_OP_NOT_EQUALS, Label: label, Values: []string{v}}
}

func in(label string, vs ...string) *pb.Constraint {
	return &pb.Constraint{Op: pb.Constraint_OP_IN, Label: label, Values: vs}
}
