package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/agent"
	"github.com/dcos-kernel/dcos/drivers/execdriver"
	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/plugins/contract"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// syncBuffer is a bytes.Buffer safe for the agent's concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// execPlugins is the real exec driver, in process, whose supervisor is
// the test binary (agent_test.go's TestMain).
type execPlugins struct{ exec *execdriver.Driver }

func newExecPlugins(t *testing.T, dataDir string) *execPlugins {
	t.Helper()
	dir := filepath.Join(dataDir, "plugins", "driver-exec")
	d, err := execdriver.New(execdriver.Config{StateDir: dir, SupervisorCmd: []string{os.Args[0], "__agent_test_supervisor", dir}})
	if err != nil {
		t.Fatal(err)
	}
	return &execPlugins{exec: d}
}

func (p *execPlugins) Driver(name string) (contract.Driver, error) {
	if name == "exec" {
		return p.exec, nil
	}
	return nil, fmt.Errorf("no driver %q", name)
}
func (p *execPlugins) Isolator(name string) (contract.Isolator, error) {
	return nil, fmt.Errorf("no isolator %q", name)
}
func (p *execPlugins) Net(name string) (contract.NetDriver, error) {
	return nil, fmt.Errorf("no net driver %q", name)
}
func (p *execPlugins) Info() []*syscallsv1.PluginInfo {
	return []*syscallsv1.PluginInfo{{Name: "exec", Kind: "driver", Protocol: 1, Health: "healthy"}}
}

// within polls cond until it holds, failing after 30 s.
func within(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAgent_SecretEnv runs an agent against a real kernel: a task
// launched with a secret env value sees it in its environment (it writes
// it into its sandbox), while the value is in none of the agent's files
// outside the task's sandbox (checkpoints, the exec driver's state) and in
// none of its log lines; the plain env value, in the checkpointed handle,
// is the control that the grep finds what is there. A command health
// check runs without the secret.
func TestAgent_SecretEnv(t *testing.T) {
	const (
		secret = "agent-secret-4d1c9e77"
		plain  = "agent-plain-8b2a6f13"
	)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := kerneltest.Start(t, kerneltest.Options{Listener: ln, Kernel: func(c *kernel.Config) { c.HeartbeatInterval = 100 * time.Millisecond }})
	dataDir := t.TempDir()
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	plugins := newExecPlugins(t, dataDir)
	a, err := agent.New(agent.Config{KernelURL: srv.URL, Token: kerneltest.AgentToken, DataDir: dataDir, Logger: logger, Plugins: plugins, KillGrace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		plugins.exec.Close()
	})
	select {
	case <-a.Registered():
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not register")
	}

	fw := kclient.New(srv.URL, kerneltest.FrameworkToken)
	al, err := fw.Allocate(ctx, connect.NewRequest(&syscallsv1.AllocateRequest{Resources: &syscallsv1.Resources{Cpus: 0.1, MemBytes: 64 << 20}}))
	if err != nil {
		t.Fatal(err)
	}
	lr, err := fw.Launch(ctx, connect.NewRequest(&syscallsv1.LaunchRequest{
		AllocationId: al.Msg.GetAllocations()[0].GetId(),
		Command:      "sh", Args: []string{"-c", `printf %s "$DB_PASSWORD" > seen; exec sleep 300`},
		Env:       map[string]string{"PLAIN": plain},
		SecretEnv: map[string]string{"DB_PASSWORD": secret},
		// The check passes only when it does not see the secret.
		HealthCheck: &syscallsv1.HealthCheck{Command: &syscallsv1.CommandCheck{
			Command: "sh", Args: []string{"-c", `test -z "$DB_PASSWORD" && test "$PLAIN" = ` + plain}}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	id := lr.Msg.GetTask().GetId()
	var task *syscallsv1.Task
	within(t, "the task running and healthy", func() bool {
		r, err := fw.ListTasks(ctx, connect.NewRequest(&syscallsv1.ListTasksRequest{}))
		if err != nil || len(r.Msg.GetTasks()) != 1 {
			return false
		}
		task = r.Msg.GetTasks()[0]
		return task.GetState() == syscallsv1.TaskState_TASK_STATE_RUNNING && task.GetHealth() == syscallsv1.HealthState_HEALTH_STATE_HEALTHY
	})
	sandbox := task.GetSandbox()
	within(t, "the task to write what it sees", func() bool {
		b, _ := os.ReadFile(filepath.Join(sandbox, "seen"))
		return string(b) == secret
	})

	var sawPlain bool
	err = filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&fs.ModeSocket != 0 || strings.HasPrefix(path, sandbox+string(filepath.Separator)) {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil // a socket or fifo
		}
		// A checkpoint holds the handle and checks base64-encoded.
		var cp struct{ Handle, Checks []byte }
		if json.Unmarshal(b, &cp) == nil {
			b = bytes.Join([][]byte{b, cp.Handle, cp.Checks}, nil)
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("agent file %s holds the secret value", path)
		}
		sawPlain = sawPlain || bytes.Contains(b, []byte(plain))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !sawPlain {
		t.Error("control: the plain env value is in none of the agent's files (is the handle checkpointed?)")
	}
	if bytes.Contains(logs.Bytes(), []byte(secret)) {
		t.Error("the agent logged the secret value")
	}
	if !bytes.Contains(logs.Bytes(), []byte(id)) {
		t.Error("control: the agent logged nothing about the task")
	}

	// Another agent token may not read the task's secrets, and a task
	// without secret_env never asks.
	other := kclient.New(srv.URL, kerneltest.OperatorToken)
	if _, err := other.TaskSecrets(ctx, connect.NewRequest(&syscallsv1.TaskSecretsRequest{TaskId: id})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("TaskSecrets as an operator: %v; want PermissionDenied", err)
	}
}
