package framework

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/store"
	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

const (
	opToken    = "operator-token-0123456789"
	fwToken    = "framework-a-token-0123456"
	fwBToken   = "framework-b-token-0123456"
	agentToken = "agent-token-0123456789abc"
)

var testTokens = []api.TokenEntry{
	{Token: opToken, Name: "ops", Role: "operator"},
	{Token: fwToken, Name: "fw-a", Role: "framework"},
	{Token: fwBToken, Name: "fw-b", Role: "framework"},
	{Token: agentToken, Name: "agents", Role: "agent"},
}

// testKernel is a real kernel on an embedded etcd behind the API door.
type testKernel struct {
	URL   string
	Store *store.Etcd
	srv   *httptest.Server
}

// startKernel runs a kernel for the test; limits nil means the door's
// defaults.
func startKernel(t testing.TB, limits map[kernel.Role]api.RateLimit) *testKernel {
	t.Helper()
	return startKernelWith(t, limits, nil)
}

// startKernelWith is startKernel with the kernel's config adjusted by tune.
func startKernelWith(t testing.TB, limits map[kernel.Role]api.RateLimit, tune func(*kernel.Config)) *testKernel {
	t.Helper()
	e, err := store.StartEmbedded(store.EmbeddedConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	st := store.New(e.Client(), "")
	cfg := kernel.Config{Store: st, HeartbeatTimeout: time.Hour}
	if tune != nil {
		tune(&cfg)
	}
	k, err := kernel.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { k.Run(ctx); close(done) }()
	tokens, err := api.NewTokens(testTokens)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(api.NewHandler(k, api.Config{Tokens: tokens, RateLimits: limits}))
	srv.EnableHTTP2 = true
	srv.Start()
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close(); cancel(); <-done })
	return &testKernel{URL: srv.URL, Store: st, srv: srv}
}

// client returns an SDK client of token for k.
func (k *testKernel) client(t testing.TB, token string) *Client {
	t.Helper()
	c, err := New(Config{Endpoints: []string{k.URL}, Token: token, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// registerAgent joins a fake agent (an agent-token client: the real
// syscall path) with room for many small allocations.
func (k *testKernel) registerAgent(t testing.TB) (agent *Client, id string) {
	t.Helper()
	agent = k.client(t, agentToken)
	r, err := agent.RegisterAgent(context.Background(), &pb.RegisterAgentRequest{Hostname: "node-1",
		Resources: &pb.Resources{Cpus: 10000, MemBytes: 1 << 50, DiskBytes: 1 << 50}})
	if err != nil {
		t.Fatal(err)
	}
	return agent, r.GetAgentId()
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
