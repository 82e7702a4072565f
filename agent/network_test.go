package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
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

// TestCheckHostPorts: a port a process of the node has bound is refused,
// by protocol, with a message naming it; a free one is not.
func TestCheckHostPorts(t *testing.T) {
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := uint32(l.Addr().(*net.TCPAddr).Port)
	u, err := net.ListenPacket("udp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	busyUDP := uint32(u.LocalAddr().(*net.UDPAddr).Port)
	tests := []struct {
		name string
		p    *syscallsv1.PortMapping
		err  string
	}{
		{"tcp bound", &syscallsv1.PortMapping{Name: "http", HostPort: busy, Protocol: "tcp"}, "is already in use on this node by a process dcos does not manage"},
		{"udp bound", &syscallsv1.PortMapping{Name: "dns", HostPort: busyUDP, Protocol: "udp"}, `(port "dns") is already in use`},
		{"udp free where tcp is bound", &syscallsv1.PortMapping{Name: "q", HostPort: busy, Protocol: "udp"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkHostPorts([]*syscallsv1.PortMapping{tt.p})
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want one containing %q", err, tt.err)
			}
		})
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
		wait      time.Duration
		wantCalls int
		wantErr   error
	}{
		{"no conflict", &conflictNet{}, time.Minute, 1, nil},
		{"the old task lets go", &conflictNet{conflicts: 2}, time.Minute, 3, nil},
		{"it never does", &conflictNet{conflicts: 1 << 30}, 250 * time.Millisecond, -1, contract.ErrConflict},
		{"other errors at once", &conflictNet{err: contract.ErrExhausted}, time.Minute, 1, contract.ErrExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := setupWaiting(context.Background(), tt.nd, contract.NetworkRequest{ContainerID: "t-new"}, tt.wait)
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
