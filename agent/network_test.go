package agent

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/plugins/contract"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestHostPortEnv(t *testing.T) {
	tk := &task{wantPorts: []*syscallsv1.PortMapping{
		{Name: "http", ContainerPort: 31000, HostPort: 31000, Protocol: "tcp"},
		{Name: "admin_ui", ContainerPort: 9000, HostPort: 9000, Protocol: "udp"},
	}}
	cfg := &contract.TaskConfig{}
	hostPortEnv(tk, cfg)
	want := map[string]string{"DCOS_PORT_HTTP": "31000", "DCOS_HOST_PORT_HTTP": "31000", "DCOS_PORT_ADMIN_UI": "9000", "DCOS_HOST_PORT_ADMIN_UI": "9000"}
	if len(cfg.Env) != len(want) {
		t.Fatalf("env %v, want %v", cfg.Env, want)
	}
	for k, v := range want {
		if cfg.Env[k] != v {
			t.Errorf("%s = %q, want %q", k, cfg.Env[k], v)
		}
	}
}

// conflictNet is a net driver whose Setup answers ErrConflict a number of
// times (a host port an ended task's network still holds), then succeeds.
type conflictNet struct {
	contract.NetDriver
	conflicts, calls int
	err              error // answered instead of a conflict, if set
}

func (n *conflictNet) Setup(_ context.Context, req contract.NetworkRequest) (*contract.NetworkStatus, error) {
	n.calls++
	if n.err != nil {
		return nil, n.err
	}
	if n.calls <= n.conflicts {
		return nil, fmt.Errorf("host port tcp/8080 (held by %q): %w", "t-old", contract.ErrConflict)
	}
	return &contract.NetworkStatus{ContainerID: req.ContainerID}, nil
}

func TestSetupWaiting(t *testing.T) {
	tests := []struct {
		name      string
		nd        *conflictNet
		ending    bool // a task of the agent's that ended has the port
		wait      time.Duration
		wantCalls int
		wantErr   error
	}{
		{"no conflict", &conflictNet{}, true, time.Minute, 1, nil},
		{"the old task lets go", &conflictNet{conflicts: 2}, true, time.Minute, 3, nil},
		{"it never does", &conflictNet{conflicts: 1 << 30}, true, 250 * time.Millisecond, -1, contract.ErrConflict},
		{"no task of ours has it: at once", &conflictNet{conflicts: 1 << 30}, false, time.Minute, 1, contract.ErrConflict},
		{"other errors at once", &conflictNet{err: contract.ErrExhausted}, true, time.Minute, 1, contract.ErrExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := setupWaiting(context.Background(), tt.nd, contract.NetworkRequest{ContainerID: "t-new"}, tt.wait,
				func() bool { return tt.ending })
			if !errors.Is(err, tt.wantErr) || (err == nil) != (st != nil) {
				t.Fatalf("setupWaiting = %v, %v; want error %v", st, err, tt.wantErr)
			}
			if tt.wantCalls > 0 && tt.nd.calls != tt.wantCalls {
				t.Errorf("%d Setup calls, want %d", tt.nd.calls, tt.wantCalls)
			}
			if tt.wantCalls < 0 && tt.nd.calls < 2 {
				t.Errorf("%d Setup calls: gave up without retrying", tt.nd.calls)
			}
		})
	}
}

func TestAgent_PortsEnding(t *testing.T) {
	tk := &task{id: "new", wantPorts: []*syscallsv1.PortMapping{{Name: "http", HostPort: 31000}, {Name: "q", HostPort: 31001, Protocol: "udp"}}}
	tests := []struct {
		name  string
		other *task
		want  bool
	}{
		{"none", nil, false},
		{"asked for the port", &task{id: "old", wantPorts: []*syscallsv1.PortMapping{{Name: "w", HostPort: 31000, Protocol: "tcp"}}}, true},
		{"its network has it", &task{id: "old", net: &contract.NetworkStatus{Ports: []contract.PortMapping{{Name: "w", HostPort: 31001, Protocol: "udp"}}}}, true},
		{"same number, other protocol", &task{id: "old", wantPorts: []*syscallsv1.PortMapping{{Name: "w", HostPort: 31001, Protocol: "tcp"}}}, false},
		{"other port", &task{id: "old", wantPorts: []*syscallsv1.PortMapping{{Name: "w", HostPort: 31002}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &Agent{tasks: map[string]*task{tk.id: tk}}
			if tt.other != nil {
				a.tasks[tt.other.id] = tt.other
			}
			if got := a.portsEnding(tk); got != tt.want {
				t.Errorf("portsEnding = %v, want %v", got, tt.want)
			}
		})
	}
}

// A task waits for its host ports as long as the longest kill grace
// period of the ended tasks holding them, the agent's at least.
func TestAgent_PortWait(t *testing.T) {
	dur := func(d time.Duration) *time.Duration { return &d }
	tk := &task{id: "new", wantPorts: []*syscallsv1.PortMapping{{Name: "http", HostPort: 31000}}}
	tests := []struct {
		name   string
		others []*task
		want   time.Duration
	}{
		{"none", nil, 2*time.Second + portWaitSlack},
		{"holder with the agent's grace", []*task{{id: "old", wantPorts: tk.wantPorts}}, 2*time.Second + portWaitSlack},
		{"holder with a longer grace", []*task{{id: "old", wantPorts: tk.wantPorts, killGrace: dur(time.Minute)}}, time.Minute + portWaitSlack},
		{"holder with a shorter grace", []*task{{id: "old", wantPorts: tk.wantPorts, killGrace: dur(0)}}, 2*time.Second + portWaitSlack},
		{"long grace on another port", []*task{{id: "other", wantPorts: []*syscallsv1.PortMapping{{HostPort: 31005}}, killGrace: dur(time.Hour)}}, 2*time.Second + portWaitSlack},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &Agent{tasks: map[string]*task{tk.id: tk}, killGrace: 2 * time.Second}
			for _, o := range tt.others {
				a.tasks[o.id] = o
			}
			if got := a.portWait(tk); got != tt.want {
				t.Errorf("portWait = %v, want %v", got, tt.want)
			}
		})
	}
}
