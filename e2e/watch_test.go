package e2e

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestKernel_WatchNeverReadingRSS: a Watch client that never reads does
// not make dcosd buffer the events it is not taking. The same ~32 MB of
// events (tasks with 64 KiB environments, on an agent that never runs
// them) are produced twice, without and then with such a watcher open;
// the kernel's RSS must not grow much more the second time. (Before the
// watch fan-out it grew by ~190 MB for 68 MB of events.)
func TestKernel_WatchNeverReadingRSS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opTok, agentTok := newToken(), newToken()
	tokens := e.writeTokens(e.path("tokens.json"),
		tokenEntry{Token: opTok, Name: "ops", Role: "operator"},
		tokenEntry{Token: agentTok, Name: "agents", Role: "agent"},
	)
	k := e.startKernel(tokens, opTok, "--heartbeat-timeout", "5m")
	op := e.op()
	if _, err := e.agentClient(agentTok).RegisterAgent(ctx(t), connect.NewRequest(&pb.RegisterAgentRequest{Hostname: "never-runs",
		Resources: &pb.Resources{Cpus: 1000, MemBytes: 1 << 40}})); err != nil {
		t.Fatal(err)
	}
	alloc := allocateOne(t, op, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1000, MemBytes: 1 << 30}})
	env := map[string]string{"BIG": strings.Repeat("x", 64<<10)}
	produce := func(n int) {
		for range n {
			launch(t, op, &pb.LaunchRequest{AllocationId: alloc.GetId(), Command: "true", Env: env,
				Resources: &pb.Resources{Cpus: 0.001, MemBytes: 1}})
		}
	}
	const n = 500 // 32 MB of events
	pid := k.cmd.Process.Pid
	produce(50) // warm up
	r0 := mustStatusBytes(t, pid, "VmRSS")
	produce(n)
	r1 := mustStatusBytes(t, pid, "VmRSS")

	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := op.Watch(wctx, connect.NewRequest(&pb.WatchRequest{AfterRevision: listAgents(t, op).GetRevision()}))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	produce(n)
	r2 := mustStatusBytes(t, pid, "VmRSS")
	without, with := r1-r0, r2-r1
	t.Logf("kernel RSS %d MiB; +%d MiB for %d MiB of events without a stuck watcher, +%d MiB with one", r0>>20, without>>20, n*64>>10, with>>20)
	slack := int64(48 << 20) // the kernel's 16 MiB queue for it, and noise
	if raceEnabled {
		slack *= 4 // the race detector multiplies memory use (616 MiB "without")
	}
	if with > without+slack {
		t.Errorf("a watcher that never reads grew the kernel's RSS by %d MiB, against %d MiB without it", with>>20, without>>20)
	}
}
