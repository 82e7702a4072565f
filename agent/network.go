package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/plugins/contract"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Task networking: a task whose network is "bridge" gets its own network
// namespace from the agent's net driver (Config.Network) before it starts:
// an address from the agent's subnet and its host ports (the kernel chose
// them at Launch; the net driver holds each on the node, so a port a
// process dcos does not manage has bound fails the task). The driver starts the task inside that namespace
// (it must say Capabilities.JoinNetns), the task's environment gets
// DCOS_TASK_IP, DCOS_PORT_<NAME> (the port it listens on) and
// DCOS_HOST_PORT_<NAME>, and RUNNING reports the address and ports. The
// namespace is torn down when the task ends. A host-network task's ports
// are host ports it binds itself: it gets DCOS_PORT_<NAME> and
// DCOS_HOST_PORT_<NAME>, both the host port. The node itself (bridge,
// overlay to the other agents) is configured after each registration and
// whenever an agent registers or is lost.

// netBridge is a task's network mode that asks for its own namespace.
const netBridge = "bridge"

// errNoNetwork is the start error of a bridge task on an agent without a
// net driver.
var errNoNetwork = errors.New("this agent has no network driver for bridge networking (run it as root with the built-in bridge driver)")

func (a *Agent) netDriver() (contract.NetDriver, error) {
	if a.network == "" {
		return nil, errNoNetwork
	}
	return a.plugins.Net(a.network)
}

// setupNetwork gives tk its own network namespace when it asks for one,
// before it starts: cfg gets the namespace and the environment, tk the
// status. caps are the task driver's.
func (a *Agent) setupNetwork(tk *task, caps *contract.Capabilities, cfg *contract.TaskConfig) error {
	if tk.network != netBridge {
		return nil
	}
	if !caps.JoinNetns {
		return fmt.Errorf("network: driver %q cannot start a task in its own network namespace", tk.driver)
	}
	nd, err := a.netDriver()
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	req := contract.NetworkRequest{ContainerID: tk.id, Mode: contract.NetworkModeBridge}
	for _, p := range tk.wantPorts {
		req.Ports = append(req.Ports, contract.PortMapping{Name: p.GetName(), HostPort: uint16(p.GetHostPort()),
			ContainerPort: uint16(p.GetContainerPort()), Protocol: p.GetProtocol()})
	}
	st, err := setupWaiting(a.ctx, nd, req, a.portWait(tk), func() bool { return a.portsEnding(tk) })
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	a.mu.Lock()
	tk.net = st
	a.mu.Unlock()
	cfg.Netns = st.Netns
	for _, k := range slices.Sorted(maps.Keys(st.Env)) {
		cfg.Env[k] = st.Env[k]
	}
	for _, p := range st.Ports {
		cfg.Env[hostPortEnvName(p.Name)] = strconv.Itoa(int(p.HostPort))
	}
	return nil
}

// portWaitSlack is how much longer than the kill grace period of the
// ended tasks holding its host ports (portWait) a task waits for a port
// an ended task's network still holds.
const portWaitSlack = 5 * time.Second

// setupWaiting calls nd.Setup, retrying while it answers ErrConflict and
// ending reports true, for up to wait. The kernel gives no two live tasks
// one host port, so a conflict is either a task that ended (revoked,
// killed: the kernel freed its ports at once) whose network or process is
// still being released, at most its kill grace period later, or a process
// dcos does not manage, which waiting does not help: ending tells them
// apart.
func setupWaiting(ctx context.Context, nd contract.NetDriver, req contract.NetworkRequest, wait time.Duration, ending func() bool) (*contract.NetworkStatus, error) {
	deadline := time.Now().Add(wait)
	for {
		st, err := nd.Setup(ctx, req)
		if err == nil || !errors.Is(err, contract.ErrConflict) || !ending() || !time.Now().Before(deadline) || !sleep(ctx, 100*time.Millisecond) {
			return st, err
		}
	}
}

// portsEnding reports whether another task of the agent has one of tk's
// host ports: one that ended, as the kernel gives no two live tasks a
// port, and is still being released (the agent forgets a task only after
// its network is torn down and its process gone).
func (a *Agent) portsEnding(tk *task) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.portHoldersLocked(tk)) > 0
}

// portWait is how long tk's network setup waits for its host ports: the
// longest kill grace period of the tasks holding them (the agent's
// KillGrace at least, for a task that ends meanwhile) plus portWaitSlack.
func (a *Agent) portWait(tk *task) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	wait := a.killGrace
	for _, o := range a.portHoldersLocked(tk) {
		wait = max(wait, a.graceOf(o))
	}
	return wait + portWaitSlack
}

// portHoldersLocked returns the agent's other tasks that have one of tk's
// host ports. Agent.mu must be held.
func (a *Agent) portHoldersLocked(tk *task) []*task {
	want := map[hostPort]bool{}
	for _, p := range tk.wantPorts {
		if p.GetHostPort() != 0 {
			want[hostPortOf(p.GetProtocol(), p.GetHostPort())] = true
		}
	}
	if len(want) == 0 {
		return nil
	}
	var holders []*task
	for _, o := range a.tasks {
		if o == tk {
			continue
		}
		if holds(o, want) {
			holders = append(holders, o)
		}
	}
	return holders
}

// holds reports whether task o asked for or has one of the host ports in
// want.
func holds(o *task, want map[hostPort]bool) bool {
	for _, p := range o.wantPorts {
		if want[hostPortOf(p.GetProtocol(), p.GetHostPort())] {
			return true
		}
	}
	if o.net != nil {
		for _, p := range o.net.Ports {
			if want[hostPortOf(p.Protocol, uint32(p.HostPort))] {
				return true
			}
		}
	}
	return false
}

// hostPort is a host port: protocol ("tcp" for "") and number.
type hostPort struct {
	proto string
	port  uint32
}

func hostPortOf(proto string, port uint32) hostPort {
	if proto == "" {
		proto = "tcp"
	}
	return hostPort{proto, port}
}

// hostPortEnvName is DCOS_HOST_PORT_<NAME> for port name.
func hostPortEnvName(name string) string {
	return "DCOS_HOST_PORT_" + strings.TrimPrefix(contract.PortEnv(name), "DCOS_PORT_")
}

// hostPortEnv gives a host-network task its ports' environment: it
// listens on the host ports the kernel assigned.
func hostPortEnv(tk *task, cfg *contract.TaskConfig) {
	for _, p := range tk.wantPorts {
		if p.GetHostPort() == 0 {
			continue
		}
		if cfg.Env == nil {
			cfg.Env = map[string]string{}
		}
		v := strconv.Itoa(int(p.GetHostPort()))
		cfg.Env[contract.PortEnv(p.GetName())] = v
		cfg.Env[hostPortEnvName(p.GetName())] = v
	}
}

// teardownNetwork removes tk's namespace, if it has one (idempotent).
func (a *Agent) teardownNetwork(ctx context.Context, tk *task) {
	a.mu.Lock()
	has := tk.net != nil || tk.network == netBridge
	a.mu.Unlock()
	if !has {
		return
	}
	nd, err := a.netDriver()
	if err == nil {
		err = nd.Teardown(ctx, tk.id)
	}
	if err != nil && !errors.Is(err, errNoNetwork) {
		a.log.Warn("cannot tear down the task's network", "task", tk.id, "err", err)
	}
}

// netReport adds tk's address and ports to a status report. a.mu is held.
func (t *task) netReport(r *syscallsv1.ReportTaskStatusRequest) {
	if t.net == nil {
		return
	}
	if t.net.IP.IsValid() {
		r.Ip = t.net.IP.String()
	}
	for _, p := range t.net.Ports {
		r.Ports = append(r.Ports, &syscallsv1.PortMapping{Name: p.Name, ContainerPort: uint32(p.ContainerPort),
			HostPort: uint32(p.HostPort), Protocol: p.Protocol})
	}
}

// recoverNetwork hands the namespaces of recovered tasks back to the net
// driver and removes the others (leftovers of tasks that ended while the
// agent was down, or of a crash during a start).
func (a *Agent) recoverNetwork(live []*task) {
	if a.network == "" {
		return
	}
	nd, err := a.netDriver()
	if err != nil {
		a.log.Error("network driver unavailable; cannot recover task networks", "driver", a.network, "err", err)
		return
	}
	var sts []contract.NetworkStatus
	var ids []string
	for _, tk := range live {
		if tk.net != nil {
			sts = append(sts, *tk.net)
			ids = append(ids, tk.id)
		}
	}
	ctx, cancel := context.WithTimeout(a.ctx, callTimeout)
	defer cancel()
	if err := nd.Recover(ctx, sts); err != nil {
		a.log.Error("network driver could not recover task networks", "err", err)
	}
	if removed, err := nd.GC(ctx, ids); err != nil {
		a.log.Error("network driver could not remove leftovers", "err", err)
	} else if len(removed) > 0 {
		a.log.Info("removed leftover task networks", "tasks", removed)
	}
}

// configureNode sets up the node's network (its bridge on the subnet the
// kernel gave the agent, and the overlay to every other agent) from the
// kernel's agent list. Errors are logged; the next agent event retries.
func (a *Agent) configureNode(ctx context.Context) {
	a.mu.Lock()
	id, subnet, cidr := a.id, a.subnet, a.clusterCIDR
	a.mu.Unlock()
	if a.network == "" || subnet == "" {
		return
	}
	nd, err := a.netDriver()
	if err != nil {
		a.log.Error("network driver unavailable; node network not configured", "err", err)
		return
	}
	cfg := contract.NodeConfig{AgentID: id}
	if cfg.Subnet, err = netip.ParsePrefix(subnet); err == nil {
		cfg.ClusterCIDR, err = netip.ParsePrefix(cidr)
	}
	if err == nil && a.underlay != "" {
		cfg.Underlay, err = netip.ParseAddr(a.underlay)
	}
	if err != nil {
		a.log.Error("bad node network from the kernel", "subnet", subnet, "cluster_cidr", cidr, "err", err)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	res, err := a.client.ListAgents(cctx, connect.NewRequest(&syscallsv1.ListAgentsRequest{}))
	if err != nil {
		a.log.Warn("cannot list agents for the overlay; retrying on the next agent event", "err", err)
		return
	}
	for _, g := range res.Msg.GetAgents() {
		if g.GetId() == id || g.GetState() != syscallsv1.AgentState_AGENT_STATE_UP {
			continue
		}
		s, err1 := netip.ParsePrefix(g.GetSubnet())
		u, err2 := netip.ParseAddr(g.GetUnderlayIp())
		if err1 != nil || err2 != nil {
			continue // an agent without a subnet or underlay cannot be reached
		}
		cfg.Peers = append(cfg.Peers, contract.Peer{AgentID: g.GetId(), Subnet: s, Underlay: u})
	}
	if err := nd.ConfigureNode(cctx, cfg); err != nil {
		a.log.Error("cannot configure the node network", "subnet", subnet, "err", err)
		return
	}
	a.log.Info("node network configured", "subnet", subnet, "peers", len(cfg.Peers))
}

// removeNode removes the node's network (its bridge, overlay and NAT rules)
// when the agent stops and no bridge task uses it; the driver refuses
// while any task holds an address, and the network then stays for the
// tasks, which keep running, and the next agent. Run calls it after its
// goroutines ended, so no Setup or ConfigureNode runs at the same time.
func (a *Agent) removeNode() {
	if a.network == "" {
		return
	}
	nd, err := a.netDriver()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		err = nd.RemoveNode(ctx)
	}
	switch {
	case err == nil:
		a.log.Info("node network removed")
	case errors.Is(err, contract.ErrConflict):
		a.mu.Lock()
		n := 0
		for _, tk := range a.tasks {
			if tk.network == netBridge && tk.state != taskExited {
				n++
			}
		}
		a.mu.Unlock()
		a.log.Info(fmt.Sprintf("keeping the node network: %d bridge tasks still run", n), "err", err)
	case errors.Is(err, contract.ErrNotSupported):
		a.log.Info("the network driver cannot remove the node network; it stays", "driver", a.network, "err", err)
	default:
		a.log.Error("cannot remove the node network", "err", err)
	}
}
