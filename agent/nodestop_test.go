package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// nodeNet is a net driver that keeps the contract's rule for RemoveNode:
// it refuses with ErrConflict while containers hold addresses. It gives
// every container the test process's own network namespace (the exec
// driver joins it; the task's network is not what these tests look at),
// and records RemoveNode's answers and the agent goroutines alive during
// each call.
type nodeNet struct {
	mu         sync.Mutex
	containers map[string]contract.NetworkStatus
	removes    []error  // RemoveNode's answers, in order
	busy       []string // agent goroutines seen during a RemoveNode
}

var _ contract.NetDriver = (*nodeNet)(nil)

func newNodeNet() *nodeNet { return &nodeNet{containers: map[string]contract.NetworkStatus{}} }

func (n *nodeNet) Setup(_ context.Context, req contract.NetworkRequest) (*contract.NetworkStatus, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.containers[req.ContainerID]; ok {
		return nil, fmt.Errorf("setup %s: %w", req.ContainerID, contract.ErrConflict)
	}
	ip := netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + len(n.containers))})
	st := contract.NetworkStatus{ContainerID: req.ContainerID, Mode: req.Mode, Netns: "/proc/self/ns/net", Interface: "eth0",
		IP: ip, Env: map[string]string{contract.TaskIPEnv: ip.String()}}
	n.containers[req.ContainerID] = st
	return &st, nil
}

func (n *nodeNet) Teardown(_ context.Context, id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.containers, id)
	return nil
}

func (n *nodeNet) Status(_ context.Context, id string) (*contract.NetworkStatus, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	st, ok := n.containers[id]
	if !ok {
		return nil, fmt.Errorf("container %q: %w", id, contract.ErrTaskNotFound)
	}
	return &st, nil
}

func (n *nodeNet) Recover(_ context.Context, sts []contract.NetworkStatus) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, st := range sts {
		n.containers[st.ContainerID] = st
	}
	return nil
}

func (n *nodeNet) ConfigureNode(context.Context, contract.NodeConfig) error { return nil }

func (n *nodeNet) GC(context.Context, []string) ([]string, error) { return nil, nil }

func (n *nodeNet) RemoveNode(context.Context) error {
	buf := make([]byte, 1<<20)
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if (strings.Contains(g, "agent.(*Agent)") || strings.Contains(g, "agent.(*reportQueue)")) && !strings.Contains(g, "agent.(*Agent).removeNode") {
			n.mu.Lock()
			n.busy = append(n.busy, g)
			n.mu.Unlock()
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var err error
	if len(n.containers) > 0 {
		err = fmt.Errorf("remove node: %d containers hold addresses: %w", len(n.containers), contract.ErrConflict)
	}
	n.removes = append(n.removes, err)
	return err
}

// answers returns RemoveNode's answers and the agent goroutines it saw.
func (n *nodeNet) answers() ([]error, []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]error(nil), n.removes...), append([]string(nil), n.busy...)
}

// netPlugins is testPlugins with a net driver named "test-net".
type netPlugins struct {
	*testPlugins
	net contract.NetDriver
}

func (p *netPlugins) Net(name string) (contract.NetDriver, error) {
	if name != "test-net" {
		return nil, fmt.Errorf("no net driver %q", name)
	}
	return p.net, nil
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startNetAgent starts an agent on dataDir whose net driver (named by
// network, "" for none) is nd, logging to log too, and waits for its
// first registration.
func startNetAgent(t *testing.T, k *fakeKernel, url, dataDir, network string, nd *nodeNet, log io.Writer) *runningAgent {
	t.Helper()
	plugins := newTestPlugins(t, dataDir)
	a, err := New(Config{
		KernelURL: url, Token: "agent-token", DataDir: dataDir, KillGrace: 2 * time.Second,
		Logger:  slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), log), &slog.HandlerOptions{Level: slog.LevelDebug})),
		Plugins: &netPlugins{testPlugins: plugins, net: nd},
		Network: network,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningAgent{Agent: a, dataDir: dataDir, plugins: plugins, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx); close(r.done) }()
	t.Cleanup(func() { r.stop(t) })
	select {
	case <-a.Registered():
	case <-time.After(waitTimeout):
		t.Fatal("Registered() not closed after start")
	}
	return r
}

// TestAgent_StopRemovesNodeNetwork: a clean stop asks the net driver to
// remove the node's network once the agent's goroutines have ended; with a
// bridge task still running the driver refuses, the agent says why and
// the task keeps running for the next agent, whose stop, once the task
// ended, removes the network. An agent without a net driver asks nothing.
func TestAgent_StopRemovesNodeNetwork(t *testing.T) {
	// Not parallel: RemoveNode looks for the goroutines of any agent in
	// the package.
	k, url := startFakeKernel(t)
	dataDir := t.TempDir()

	var log1 lockedBuffer
	nd1 := newNodeNet()
	a1 := startNetAgent(t, k, url, dataDir, "test-net", nd1, &log1)
	id := a1.ID()
	task := newTask("t-br", id, pending, "sleep", "300")
	task.Network = netBridge
	k.pushTask(task)
	run := k.waitReport(t, "t-br", running)
	if run.GetIp() == "" {
		t.Fatalf("RUNNING report %v without the task's address", run)
	}
	a1.stop(t)
	removes, busy := nd1.answers()
	if len(removes) != 1 || !errors.Is(removes[0], contract.ErrConflict) {
		t.Fatalf("RemoveNode answers %v, want one ErrConflict", removes)
	}
	if len(busy) > 0 {
		t.Errorf("agent goroutines still ran during RemoveNode:\n%s", strings.Join(busy, "\n\n"))
	}
	if want := "keeping the node network: 1 bridge tasks still run"; !strings.Contains(log1.String(), want) {
		t.Errorf("log does not say %q:\n%s", want, log1.String())
	}
	if err := syscall.Kill(int(run.GetPid()), 0); err != nil {
		t.Fatalf("the bridge task did not survive its agent: %v", err)
	}

	// The next agent recovers the task's network, and removes the node's
	// once the task ended.
	var log2 lockedBuffer
	nd2 := newNodeNet()
	t2 := newTask("t-br", id, running, "sleep", "300")
	t2.Network = netBridge
	k.setExpected(t2)
	a2 := startNetAgent(t, k, url, dataDir, "test-net", nd2, &log2)
	if st, err := nd2.Status(context.Background(), "t-br"); err != nil || st.IP.String() != run.GetIp() {
		t.Fatalf("recovered network of t-br = %+v, %v; want address %s", st, err, run.GetIp())
	}
	kill := newTask("t-br", id, killed, "sleep")
	kill.Network = netBridge
	k.pushTask(kill)
	k.waitReport(t, "t-br", killed)
	a2.stop(t)
	if removes, busy := nd2.answers(); len(removes) != 1 || removes[0] != nil || len(busy) > 0 {
		t.Errorf("RemoveNode answers %v (agent goroutines alive: %d), want one nil", removes, len(busy))
	}
	if !strings.Contains(log2.String(), "node network removed") {
		t.Errorf("log does not say the node network was removed:\n%s", log2.String())
	}

	// Without a net driver configured, the agent asks for nothing.
	nd3 := newNodeNet()
	startNetAgent(t, k, url, t.TempDir(), "", nd3, io.Discard).stop(t)
	if removes, _ := nd3.answers(); len(removes) != 0 {
		t.Errorf("an agent without a net driver called RemoveNode: %v", removes)
	}
}
