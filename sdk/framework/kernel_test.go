package framework

import (
	"context"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

const (
	opToken    = kerneltest.OperatorToken
	fwToken    = kerneltest.FrameworkToken
	fwBToken   = kerneltest.FrameworkBToken
	agentToken = kerneltest.AgentToken
)

// testKernel is a real kernel on an embedded etcd behind the API door.
type testKernel struct {
	*kerneltest.Server
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
	return &testKernel{kerneltest.Start(t, kerneltest.Options{
		Kernel: tune,
		API:    func(c *api.Config) { c.RateLimits = limits },
	})}
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
