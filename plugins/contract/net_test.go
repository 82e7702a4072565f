package contract

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pluginsv1 "github.com/dcos-kernel/dcos/plugins/contract/proto/v1"
)

// fakeNet is an in-memory NetDriver for testing the glue: it hands out
// addresses from the node's subnet and refuses a host port twice.
type fakeNet struct {
	mu         sync.Mutex
	node       *NodeConfig
	containers map[string]*NetworkStatus
	hostPorts  map[uint16]string // host port → container
	next       netip.Addr
	recovered  []NetworkStatus
}

var _ NetDriver = (*fakeNet)(nil)

func newFakeNet() *fakeNet {
	return &fakeNet{containers: map[string]*NetworkStatus{}, hostPorts: map[uint16]string{}}
}

func (n *fakeNet) Setup(_ context.Context, req NetworkRequest) (*NetworkStatus, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if req.Mode != NetworkModeBridge {
		return nil, fmt.Errorf("network mode %q: %w", req.Mode, ErrNotSupported)
	}
	if n.node == nil {
		return nil, fmt.Errorf("setup %q: node not configured", req.ContainerID)
	}
	if _, ok := n.containers[req.ContainerID]; ok {
		return nil, fmt.Errorf("setup %q: already set up: %w", req.ContainerID, ErrConflict)
	}
	st := &NetworkStatus{ContainerID: req.ContainerID, Mode: req.Mode, Netns: "/run/netns/" + req.ContainerID, Interface: "eth0",
		Gateway: n.node.Subnet.Addr().Next(), Env: map[string]string{}}
	for _, p := range req.Ports {
		if owner, ok := n.hostPorts[p.HostPort]; ok {
			return nil, fmt.Errorf("host port %d/%s: taken by %q: %w", p.HostPort, p.Protocol, owner, ErrConflict)
		}
		if p.ContainerPort == 0 {
			p.ContainerPort = p.HostPort
		}
		st.Ports = append(st.Ports, p)
		st.Env[PortEnv(p.Name)] = strconv.Itoa(int(p.ContainerPort))
	}
	ip := n.next.Next()
	if !n.node.Subnet.Contains(ip) {
		return nil, fmt.Errorf("setup %q: subnet %s: %w", req.ContainerID, n.node.Subnet, ErrExhausted)
	}
	n.next, st.IP = ip, ip
	st.Env[TaskIPEnv] = ip.String()
	for _, p := range st.Ports {
		n.hostPorts[p.HostPort] = req.ContainerID
	}
	n.containers[req.ContainerID] = st
	return st, nil
}

func (n *fakeNet) Teardown(_ context.Context, id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if st, ok := n.containers[id]; ok {
		for _, p := range st.Ports {
			delete(n.hostPorts, p.HostPort)
		}
		delete(n.containers, id)
	}
	return nil
}

func (n *fakeNet) Status(_ context.Context, id string) (*NetworkStatus, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	st, ok := n.containers[id]
	if !ok {
		return nil, fmt.Errorf("container %q: %w", id, ErrTaskNotFound)
	}
	return st, nil
}

func (n *fakeNet) Recover(_ context.Context, cs []NetworkStatus) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.recovered = cs
	return nil
}

func (n *fakeNet) ConfigureNode(_ context.Context, cfg NodeConfig) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.node != nil && n.node.Subnet != cfg.Subnet && len(n.containers) > 0 {
		return fmt.Errorf("subnet %s → %s: containers hold addresses: %w", n.node.Subnet, cfg.Subnet, ErrConflict)
	}
	n.node, n.next = &cfg, cfg.Subnet.Addr().Next() // .1 is the gateway
	return nil
}

func (n *fakeNet) RemoveNode(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.containers) > 0 {
		return fmt.Errorf("remove node: %d containers hold addresses: %w", len(n.containers), ErrConflict)
	}
	n.node = nil
	return nil
}

func (n *fakeNet) GC(_ context.Context, live []string) ([]string, error) {
	if len(live) == 0 {
		return []string{"leftover"}, nil
	}
	return nil, nil
}

var testNode = NodeConfig{
	AgentID: "a1", Subnet: netip.MustParsePrefix("10.1.2.0/30"), ClusterCIDR: netip.MustParsePrefix("10.1.0.0/16"),
	Underlay: netip.MustParseAddr("192.168.0.1"),
	Peers:    []Peer{{AgentID: "a2", Underlay: netip.MustParseAddr("192.168.0.2"), Subnet: netip.MustParsePrefix("10.1.3.0/24")}},
}

func TestNetClient_RoundTrip(t *testing.T) {
	ctx := context.Background()
	impl := newFakeNet()
	n := dispense(t, KindNet, &NetPlugin{Impl: impl}).(NetDriver)

	if err := n.ConfigureNode(ctx, testNode); err != nil {
		t.Fatalf("ConfigureNode: %v", err)
	}
	if diff := cmp.Diff(&testNode, impl.node, netipCmp); diff != "" {
		t.Errorf("node config (-sent +received):\n%s", diff)
	}
	st, err := n.Setup(ctx, NetworkRequest{ContainerID: "c1", Mode: NetworkModeBridge,
		Ports: []PortMapping{{Name: "http-admin", HostPort: 31000, ContainerPort: 8080, Protocol: "tcp"}, {Name: "dns", HostPort: 31001, Protocol: "udp"}}})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	want := &NetworkStatus{ContainerID: "c1", Mode: NetworkModeBridge, Netns: "/run/netns/c1", Interface: "eth0",
		IP: netip.MustParseAddr("10.1.2.2"), Gateway: netip.MustParseAddr("10.1.2.1"),
		Ports: []PortMapping{{Name: "http-admin", HostPort: 31000, ContainerPort: 8080, Protocol: "tcp"}, {Name: "dns", HostPort: 31001, ContainerPort: 31001, Protocol: "udp"}},
		Env:   map[string]string{"DCOS_TASK_IP": "10.1.2.2", "DCOS_PORT_HTTP_ADMIN": "8080", "DCOS_PORT_DNS": "31001"}}
	if diff := cmp.Diff(want, st, netipCmp); diff != "" {
		t.Errorf("Setup (-want +got):\n%s", diff)
	}
	if got, err := n.Status(ctx, "c1"); err != nil {
		t.Errorf("Status: %v", err)
	} else if diff := cmp.Diff(want, got, netipCmp); diff != "" {
		t.Errorf("Status (-want +got):\n%s", diff)
	}
	if err := n.Recover(ctx, []NetworkStatus{*want}); err != nil {
		t.Errorf("Recover: %v", err)
	}
	if diff := cmp.Diff([]NetworkStatus{*want}, impl.recovered, netipCmp); diff != "" {
		t.Errorf("recovered (-sent +received):\n%s", diff)
	}
	if removed, err := n.GC(ctx, nil); err != nil || !cmp.Equal(removed, []string{"leftover"}) {
		t.Errorf("GC = %v, %v; want [leftover]", removed, err)
	}
	// Teardown is idempotent, and frees the host ports.
	for range 2 {
		if err := n.Teardown(ctx, "c1"); err != nil {
			t.Errorf("Teardown: %v", err)
		}
	}
	if err := n.Teardown(ctx, "never-set-up"); err != nil {
		t.Errorf("Teardown(unknown): %v", err)
	}
	// RemoveNode is idempotent, and a removed node must be configured
	// again.
	for range 2 {
		if err := n.RemoveNode(ctx); err != nil {
			t.Errorf("RemoveNode: %v", err)
		}
	}
	if _, err := n.Setup(ctx, NetworkRequest{ContainerID: "c2", Mode: NetworkModeBridge}); err == nil {
		t.Error("Setup after RemoveNode: want an error")
	}
	if err := n.ConfigureNode(ctx, testNode); err != nil {
		t.Fatalf("ConfigureNode after RemoveNode: %v", err)
	}
	if _, err := n.Setup(ctx, NetworkRequest{ContainerID: "c2", Mode: NetworkModeBridge, Ports: []PortMapping{{Name: "http", HostPort: 31000}}}); err != nil {
		t.Errorf("Setup after Teardown freed the port: %v", err)
	}
}

func TestNetClient_Errors(t *testing.T) {
	ctx := context.Background()
	n := dispense(t, KindNet, &NetPlugin{Impl: newFakeNet()}).(NetDriver)
	if err := n.ConfigureNode(ctx, testNode); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Setup(ctx, NetworkRequest{ContainerID: "c1", Mode: NetworkModeBridge, Ports: []PortMapping{{Name: "http", HostPort: 80}}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"status unknown", func() error { _, err := n.Status(ctx, "nope"); return err }, ErrTaskNotFound},
		{"mode unsupported", func() error {
			_, err := n.Setup(ctx, NetworkRequest{ContainerID: "c2", Mode: "macvlan"})
			return err
		}, ErrNotSupported},
		{"host port taken", func() error {
			_, err := n.Setup(ctx, NetworkRequest{ContainerID: "c2", Mode: NetworkModeBridge, Ports: []PortMapping{{Name: "web", HostPort: 80}}})
			return err
		}, ErrConflict},
		{"set up twice", func() error {
			_, err := n.Setup(ctx, NetworkRequest{ContainerID: "c1", Mode: NetworkModeBridge})
			return err
		}, ErrConflict},
		{"remove node with containers", func() error { return n.RemoveNode(ctx) }, ErrConflict},
		{"subnet change with containers", func() error {
			cfg := testNode
			cfg.Subnet = netip.MustParsePrefix("10.1.9.0/24")
			return n.ConfigureNode(ctx, cfg)
		}, ErrConflict},
		{"addresses exhausted", func() error {
			// 10.1.2.0/30: .1 is the gateway, .2 is c1's, .3 is the last.
			if _, err := n.Setup(ctx, NetworkRequest{ContainerID: "c3", Mode: NetworkModeBridge}); err != nil {
				return err
			}
			_, err := n.Setup(ctx, NetworkRequest{ContainerID: "c4", Mode: NetworkModeBridge})
			return err
		}, ErrExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	// The plugin's message crosses the wire verbatim.
	_, err := n.Setup(ctx, NetworkRequest{ContainerID: "c5", Mode: NetworkModeBridge, Ports: []PortMapping{{Name: "http", HostPort: 80, Protocol: "tcp"}}})
	const want = `net setup: host port 80/tcp: taken by "c1": conflict`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

// TestNetServer_BadRequest: what the contract's types cannot hold is refused
// before it reaches the implementation.
func TestNetServer_BadRequest(t *testing.T) {
	ctx := context.Background()
	s := &netServer{impl: newFakeNet()}
	if _, err := s.ConfigureNode(ctx, &pluginsv1.NetConfigureNodeRequest{Subnet: "10.1.2.0/33"}); err == nil {
		t.Error("ConfigureNode(bad subnet): want error")
	}
	if _, err := s.Setup(ctx, &pluginsv1.NetSetupRequest{ContainerId: "c1", Mode: "bridge", Ports: []*pluginsv1.PortMapping{{HostPort: 70000}}}); err == nil {
		t.Error("Setup(port 70000): want error")
	}
	if _, err := s.Recover(ctx, &pluginsv1.NetRecoverRequest{Containers: []*pluginsv1.NetworkStatus{{ContainerId: "c1", Ip: "10.1.2"}}}); err == nil {
		t.Error("Recover(bad ip): want error")
	}
}

// serveUnix serves register's services on a unix socket in another
// goroutine and returns a connection to it and the server.
func serveUnix(t *testing.T, register func(*grpc.Server)) (*grpc.ClientConn, *grpc.Server) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "plugin.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	register(srv)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, srv
}

func TestNetClient_PluginExited(t *testing.T) {
	ctx := context.Background()
	conn, srv := serveUnix(t, func(s *grpc.Server) { pluginsv1.RegisterNetDriverServer(s, &netServer{impl: newFakeNet()}) })
	done, exited := context.WithCancel(ctx)
	n := NewNetClient(done, conn)
	if err := n.Teardown(ctx, "c1"); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	srv.Stop() // the plugin is gone, before its host noticed
	if err := n.Teardown(ctx, "c1"); !errors.Is(err, ErrPluginExited) {
		t.Errorf("Teardown after the server stopped: err = %v, want ErrPluginExited", err)
	}
	exited() // the host noticed
	if _, err := n.Status(ctx, "c1"); !errors.Is(err, ErrPluginExited) {
		t.Errorf("Status after exit: err = %v, want ErrPluginExited", err)
	}
}

func TestPortEnv(t *testing.T) {
	tests := []struct{ name, want string }{
		{"http", "DCOS_PORT_HTTP"},
		{"http-admin", "DCOS_PORT_HTTP_ADMIN"},
		{"Metrics.9090", "DCOS_PORT_METRICS_9090"},
		{"", "DCOS_PORT_"},
		{"é", "DCOS_PORT__"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PortEnv(tt.name); got != tt.want {
				t.Errorf("PortEnv(%q) = %q, want %q", tt.name, got, tt.want)
			}
		})
	}
}
