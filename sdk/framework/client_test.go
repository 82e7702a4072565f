package framework

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// countingTransport counts the requests it carries.
type countingTransport struct {
	n    atomic.Int64
	next http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

func countingClient() (*http.Client, *countingTransport) {
	ct := &countingTransport{next: HTTPClient().Transport}
	return &http.Client{Transport: ct}, ct
}

// deadURL is a loopback address nothing listens on.
func deadURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestNew_BadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no endpoints":   {},
		"empty endpoint": {Endpoints: []string{" "}},
		"bad scheme":     {Endpoints: []string{"ftp://x"}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "endpoints") {
				t.Fatalf("New(%+v) = %v, want an error naming endpoints", cfg, err)
			}
		})
	}
}

func TestClient_CallsAndCodes(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	ctx := testCtx(t)
	hc, ct := countingClient()
	c, err := New(Config{Endpoints: []string{k.URL}, Token: fwToken, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Allocate(ctx, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.GetAllocations()) != 1 {
		t.Fatalf("allocate: %v", r)
	}
	l, err := c.ListAllocations(ctx, &pb.ListAllocationsRequest{})
	if err != nil || len(l.GetAllocations()) != 1 || l.GetRevision() < r.GetRevision() {
		t.Fatalf("list: %v %v", l, err)
	}

	// A refused request is not retried and keeps its code and message.
	before := ct.n.Load()
	_, err = c.Allocate(ctx, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: -1, MemBytes: 1}})
	var ce *connect.Error
	if Code(err) != connect.CodeInvalidArgument || !errors.As(err, &ce) || !strings.Contains(err.Error(), "resources.cpus") {
		t.Fatalf("bad allocate: %v (code %v)", err, Code(err))
	}
	if n := ct.n.Load() - before; n != 1 {
		t.Fatalf("InvalidArgument sent %d times, want 1", n)
	}
	// ResourceExhausted that is not the rate limit (an oversized request)
	// is not retried either.
	before = ct.n.Load()
	_, err = c.Allocate(ctx, &pb.AllocateRequest{Role: strings.Repeat("x", api.MaxRequestBytes+1), Resources: &pb.Resources{Cpus: 1, MemBytes: 1}})
	if Code(err) != connect.CodeResourceExhausted {
		t.Fatalf("oversized: %v", err)
	}
	if n := ct.n.Load() - before; n != 1 {
		t.Fatalf("oversized request sent %d times, want 1", n)
	}
	// Another framework's principal sees nothing of ours.
	other := k.client(t, fwBToken)
	if l, err := other.ListAllocations(ctx, &pb.ListAllocationsRequest{}); err != nil || len(l.GetAllocations()) != 0 {
		t.Fatalf("other framework lists %v %v", l, err)
	}
	if _, err := other.RegisterAgent(ctx, &pb.RegisterAgentRequest{}); Code(err) != connect.CodePermissionDenied {
		t.Fatalf("framework registers an agent: %v", err)
	}
}

func TestClient_FencedClonesRequest(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	ctx := testCtx(t)
	c := k.client(t, fwToken)
	f := c.Fenced(&pb.Fence{Election: "x", Epoch: 3})
	req := &pb.RevokeRequest{Id: "a-doesnotexist"}
	orig := proto.Clone(req)
	_, err := f.Revoke(ctx, req)
	if !proto.Equal(req, orig) {
		t.Fatalf("Fenced mutated the request: %v", req)
	}
	if err == nil {
		t.Fatal("revoke of an unknown id succeeded")
	}
	got := fenced(f, req, func(m *pb.RevokeRequest, fe *pb.Fence) { m.Fence = fe })
	if got == req || got.GetFence().GetEpoch() != 3 || got.GetFence().GetElection() != "x" {
		t.Fatalf("fenced request %v", got)
	}
	if fenced(c, req, func(m *pb.RevokeRequest, fe *pb.Fence) { m.Fence = fe }) != req {
		t.Fatal("an unfenced client copied the request")
	}
}

func TestErrDeposed(t *testing.T) {
	dep := classify(connect.NewError(connect.CodeFailedPrecondition, errors.New("deposed: epoch 4 < 5")))
	if !errors.Is(dep, ErrDeposed) || Code(dep) != connect.CodeFailedPrecondition {
		t.Fatalf("deposed error %v: Is=%v code=%v", dep, errors.Is(dep, ErrDeposed), Code(dep))
	}
	var ce *connect.Error
	if !errors.As(dep, &ce) || !strings.Contains(dep.Error(), "deposed: epoch 4 < 5") {
		t.Fatalf("deposed error lost its connect error: %v", dep)
	}
	other := classify(connect.NewError(connect.CodeFailedPrecondition, errors.New("volume in use")))
	if errors.Is(other, ErrDeposed) {
		t.Fatal("another FailedPrecondition matches ErrDeposed")
	}
}

func TestClient_FailoverAndGiveUp(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	ctx := testCtx(t)
	fast := Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond, Factor: 2, Attempts: 3}
	c, err := New(Config{Endpoints: []string{deadURL(t), k.URL}, Token: fwToken, Retry: fast})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListTasks(ctx, &pb.ListTasksRequest{}); err != nil {
		t.Fatalf("no failover to the live kernel: %v", err)
	}
	hc, ct := countingClient()
	dead, err := New(Config{Endpoints: []string{deadURL(t)}, Token: fwToken, Retry: fast, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	_, err = dead.ListTasks(ctx, &pb.ListTasksRequest{})
	if Code(err) != connect.CodeUnavailable {
		t.Fatalf("dead kernel: %v", err)
	}
	if n := ct.n.Load(); n != 3 {
		t.Fatalf("tried %d times, want Attempts=3", n)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := dead.ListTasks(cctx, &pb.ListTasksRequest{}); Code(err) != connect.CodeCanceled {
		t.Fatalf("cancelled call: %v (%v)", err, Code(err))
	}
}

func TestClient_RetriesRateLimit(t *testing.T) {
	t.Parallel()
	k := startKernel(t, map[kernel.Role]api.RateLimit{kernel.RoleFramework: {Rate: 20, Burst: 1}})
	ctx := testCtx(t)
	hc, ct := countingClient()
	c, err := New(Config{Endpoints: []string{k.URL}, Token: fwToken, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := c.ListAllocations(ctx, &pb.ListAllocationsRequest{}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if ct.n.Load() <= 5 {
		t.Fatalf("5 calls at burst 1 made %d requests: the rate limit was never hit", ct.n.Load())
	}
	// Without retries the same burst is refused with the door's message.
	once, _ := New(Config{Endpoints: []string{k.URL}, Token: fwToken, Retry: Backoff{Attempts: 1}})
	var last error
	for range 5 {
		if _, err := once.ListAllocations(ctx, &pb.ListAllocationsRequest{}); err != nil {
			last = err
		}
	}
	if ok, _, wait := retryable(last); !ok || wait <= 0 || Code(last) != connect.CodeResourceExhausted {
		t.Fatalf("rate-limited error %v: retryable=%v wait=%v", last, ok, wait)
	}
}
