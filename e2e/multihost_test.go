//go:build linux

package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/e2e/multihost"
	"github.com/dcos-kernel/dcos/internal/netnsutil"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// nodeBridge is the bridge driver's default bridge: each agent runs in a
// host of its own, so the default names never collide.
const nodeBridge = "dcos0"

// mhAgent is an agent of the multi-host test: the host it runs in, its
// process, id and subnet.
type mhAgent struct {
	name   string
	host   *multihost.Host
	proc   *proc
	id     string
	subnet netip.Prefix
}

// TestMultiHost_Network runs a kernel in the root namespace and two agents
// with the bridge driver, each in a host of its own (multihost), reaching
// the kernel at the root side of the test network:
//
//   - a task on agent a reaches a task on agent b by its task IP over the
//     VXLAN overlay and exchanges a line with it;
//   - b's task's host port answers from the root namespace on b's address;
//   - b's dcosd SIGKILLed: its tasks keep running, their IPs and their
//     connectivity (while it is down, and once restarted with the same
//     flags), and a new task on b gets an address no running task holds;
//   - b's dcosd stopped cleanly (SIGTERM) while its bridge tasks run: the
//     node's network stays (bridge, VXLAN device, NAT table), the tasks
//     keep answering, and b restarted re-adopts them;
//   - after revoking everything and stopping the agents, nothing of dcos
//     is left anywhere: no dcos link (bridge, VXLAN device, veth), no
//     address or route in the cluster CIDR, no nftables table, no
//     namespace — in each host and in the root namespace.
func TestMultiHost_Network(t *testing.T) {
	t.Parallel()
	needRoot(t)
	// Before newEnv: cleanups run last-registered first, so the daemons
	// are stopped before their hosts go.
	mh := multihost.New(t)
	e := newEnv(t)
	cidr := freeClusterCIDR(t)
	// One token per agent: a token is bound to the agent it registers.
	opTok, aTok, bTok := newToken(), newToken(), newToken()
	tokens := e.writeTokens(e.path("tokens.json"),
		tokenEntry{Token: opTok, Name: "ops", Role: "operator"},
		tokenEntry{Token: aTok, Name: "agent-a", Role: "agent"},
		tokenEntry{Token: bTok, Name: "agent-b", Role: "agent"},
	)
	agentToks := map[string]string{"a": aTok, "b": bTok}
	// A generous heartbeat timeout: b's restart must come before the
	// kernel counts it lost, however loaded the machine.
	e.startKernel(tokens, opTok, "--listen", mh.Gateway().String()+":0", "--cluster-cidr", cidr.String(), "--heartbeat-timeout", "60s")
	if !strings.Contains(e.url, "//"+mh.Gateway().String()+":") {
		t.Fatalf("kernel at %s, want it on the test network's gateway %s", e.url, mh.Gateway())
	}
	e.useKernel(e.url, opTok)

	agents := map[string]*mhAgent{}
	start := func(name string) {
		a := agents[name]
		a.proc, a.id = e.startAgentVia(a.host.Argv(), name, agentToks[name], mhAgentFlags(a.host)...)
	}
	for _, name := range []string{"a", "b"} {
		agents[name] = &mhAgent{name: name, host: mh.AddHost(name)}
		start(name)
	}
	a, b := agents["a"], agents["b"]
	for _, g := range listAgents(t, e.op()).GetAgents() {
		for _, ag := range agents {
			if g.GetId() != ag.id {
				continue
			}
			s, err := netip.ParsePrefix(g.GetSubnet())
			if err != nil || !cidr.Contains(s.Addr()) || g.GetUnderlayIp() != ag.host.IP().String() {
				t.Fatalf("agent %s: subnet %q underlay %q, want a subnet of %s and underlay %s", ag.name, g.GetSubnet(), g.GetUnderlayIp(), cidr, ag.host.IP())
			}
			ag.subnet = s
		}
	}
	if !a.subnet.IsValid() || !b.subnet.IsValid() || a.subnet == b.subnet {
		t.Fatalf("agent subnets %s and %s: want two different ones", a.subnet, b.subnet)
	}

	srv := runTask(e, "-c", "e2e=b", "--cpus", "0.2", "--mem", "32Mi", "--port", "echo:7000", "--", bin.tcpecho, "serve", "7000")
	srvIP, err := netip.ParseAddr(srv.GetIp())
	if srv.GetAgentId() != b.id || err != nil || !b.subnet.Contains(srvIP) {
		t.Fatalf("server task %v: want it on b (%s) with an address in %s", srv, b.id, b.subnet)
	}
	if p := srv.GetPorts(); len(p) != 1 || p[0].GetName() != "echo" || p[0].GetContainerPort() != 7000 || p[0].GetHostPort() == 0 {
		t.Fatalf("server task ports = %v, want echo 7000 on a host port", p)
	}
	srvAddr := net.JoinHostPort(srv.GetIp(), "7000")
	hostPortAddr := net.JoinHostPort(b.host.IP().String(), strconv.Itoa(int(srv.GetPorts()[0].GetHostPort())))
	// The client: a bridge task on a that sends a line to the server by
	// its task IP and exits 0 only on the server's answer.
	dialFromA := func(e *env, line string) {
		e.t.Helper()
		k := runToEnd(e, "-c", "e2e=a", "--cpus", "0.1", "--mem", "32Mi", "--network", "bridge", "--", bin.tcpecho, "dial", srvAddr, line)
		if k.GetAgentId() != a.id || k.GetState() != pb.TaskState_TASK_STATE_FINISHED {
			e.t.Fatalf("client task %v: want FINISHED on a (%s)\n%s", k, a.id, sandboxOutput(e, k.GetId()))
		}
		if ip, err := netip.ParseAddr(k.GetIp()); err != nil || !a.subnet.Contains(ip) {
			e.t.Errorf("client task ip %q, want one in a's subnet %s", k.GetIp(), a.subnet)
		}
	}
	var tapSeen []string // host-side veths seen in b while tasks run

	t.Run("task to task across agents", func(t *testing.T) {
		dialFromA(e.in(t), "hello-b")
	})

	t.Run("host port from the root namespace", func(t *testing.T) {
		e := e.in(t)
		want := srv.GetIp() + " got ping\n"
		e.eventually("the server answering on "+hostPortAddr, func() (bool, string) {
			got, err := echoOnce(hostPortAddr)
			return got == want, fmt.Sprint(got, err)
		})
		// Control for the leftover check at the end, which looks for
		// nftables tables: the live mapping is in b's.
		if out, err := b.host.Command("nft", "list", "ruleset").CombinedOutput(); err != nil || !strings.Contains(string(out), srv.GetIp()) {
			t.Errorf("b's nftables ruleset does not name the server's address %s (%v):\n%s", srv.GetIp(), err, out)
		}
		// The mapping is b's only: a has no such port.
		if got, err := echoOnce(net.JoinHostPort(a.host.IP().String(), strconv.Itoa(int(srv.GetPorts()[0].GetHostPort())))); err == nil {
			t.Errorf("b's host port answered on a: %q", got)
		}
	})

	t.Run("agent b SIGKILLed and restarted", func(t *testing.T) {
		e := e.in(t)
		tapSeen = dcosVeths(t, b.host)
		if len(tapSeen) != 1 {
			t.Fatalf("veths of b's tasks: %v, want the server's", tapSeen)
		}
		syscall.Kill(b.proc.cmd.Process.Pid, syscall.SIGKILL) // dcosd only
		<-b.proc.exited
		if !alive(int(srv.GetPid())) {
			t.Fatalf("server pid %d died with b's dcosd", srv.GetPid())
		}
		// The data path does not need the agent.
		dialFromA(e, "while-b-is-down")

		start("b")
		e.eventually("the server re-adopted by b with its address", func() (bool, string) {
			k := taskByID(e, srv.GetId())
			return k.GetState() == pb.TaskState_TASK_STATE_RUNNING && k.GetPid() == srv.GetPid() && k.GetIp() == srv.GetIp() &&
				len(k.GetPorts()) == 1 && k.GetPorts()[0].GetHostPort() == srv.GetPorts()[0].GetHostPort(), sprint(k)
		})
		dialFromA(e, "after-b-restarted")
		if got, err := echoOnce(hostPortAddr); err != nil || got != srv.GetIp()+" got ping\n" {
			t.Errorf("host port after the restart: %q, %v", got, err)
		}

		// No address handed out twice while in use.
		k := runTask(e, "-c", "e2e=b", "--cpus", "0.1", "--mem", "32Mi", "--network", "bridge", "--", "sleep", "300")
		ip, err := netip.ParseAddr(k.GetIp())
		if k.GetAgentId() != b.id || err != nil || !b.subnet.Contains(ip) {
			t.Fatalf("new task on b %v: want an address in %s", k, b.subnet)
		}
		for _, o := range listTasks(t, e.op()).GetTasks() {
			if o.GetId() != k.GetId() && o.GetState() == pb.TaskState_TASK_STATE_RUNNING && o.GetIp() == k.GetIp() {
				t.Errorf("new task %s got %s, which running task %s holds", k.GetId(), k.GetIp(), o.GetId())
			}
		}
		tapSeen = append(tapSeen, dcosVeths(t, b.host)...)
	})

	t.Run("agent b stopped with bridge tasks running", func(t *testing.T) {
		e := e.in(t)
		before := dcosNetwork(t, b.host, cidr)
		if !b.proc.stop(15 * time.Second) {
			t.Fatal("agent b did not stop on SIGTERM")
		}
		if want := "keeping the node network: 2 bridge tasks still run"; !strings.Contains(b.proc.stderr.String(), want) {
			t.Errorf("b's log does not say %q:\n%s", want, tail(b.proc.stderr.String(), 30))
		}
		// The node's network, veths included, is as it was.
		if after := dcosNetwork(t, b.host, cidr); !slices.Equal(after, before) {
			t.Errorf("b's network changed when its agent stopped:\nbefore %q\nafter  %q", before, after)
		}
		for _, want := range []string{"link " + nodeBridge + " (bridge)", "link " + nodeBridge + "-vx (vxlan)", "nftables table ip " + nodeBridge} {
			if !slices.Contains(before, want) {
				t.Errorf("b's network %q has no %s", before, want)
			}
		}
		if !alive(int(srv.GetPid())) {
			t.Fatalf("server pid %d died with b's agent", srv.GetPid())
		}
		dialFromA(e, "while-b-is-stopped")
		if got, err := echoOnce(hostPortAddr); err != nil || got != srv.GetIp()+" got ping\n" {
			t.Errorf("host port while b is stopped: %q, %v", got, err)
		}

		start("b")
		e.eventually("the server re-adopted by b with its address", func() (bool, string) {
			k := taskByID(e, srv.GetId())
			return k.GetState() == pb.TaskState_TASK_STATE_RUNNING && k.GetPid() == srv.GetPid() && k.GetIp() == srv.GetIp(), sprint(k)
		})
		dialFromA(e, "after-b-started-again")
	})

	t.Run("nothing left after revoke and stop", func(t *testing.T) {
		e := e.in(t)
		for _, al := range listAllocations(t, e.op()).GetAllocations() {
			revoke(t, e.op(), al.GetId())
		}
		e.eventually("every task ended", func() (bool, string) {
			for _, k := range listTasks(t, e.op()).GetTasks() {
				if k.GetState() <= pb.TaskState_TASK_STATE_RUNNING {
					return false, sprint(k)
				}
			}
			return true, ""
		})
		for _, ag := range agents {
			// The agent tore its tasks' networks down on their end; the
			// kernel destroys a namespace (and the veth end in it) in the
			// background once its last user is gone.
			e.eventually("no task veth in "+ag.name, func() (bool, string) {
				v := dcosVeths(t, ag.host)
				return len(v) == 0, sprint(v)
			})
		}
		for _, ag := range agents {
			if !ag.proc.stop(15 * time.Second) {
				t.Errorf("agent %s did not stop on SIGTERM", ag.name)
			}
		}
		// Their plugin processes and the exec driver's supervisor (which
		// exits once it holds no task) go too; so does the plugin process
		// of b's SIGKILLed dcosd.
		e.eventually("no process of the agents left", func() (bool, string) {
			var left []string
			for _, pid := range pidsWithArgUnder(e.path("agents")) {
				left = append(left, fmt.Sprintf("%d (%s)", pid, cmdline(pid)))
			}
			return len(left) == 0, sprint(left)
		})

		// The agents removed their nodes' networks when they stopped.
		for _, ag := range agents {
			if want := "node network removed"; !strings.Contains(ag.proc.stderr.String(), want) {
				t.Errorf("agent %s's log does not say %q", ag.name, want)
			}
			for _, l := range dcosNetwork(t, ag.host, cidr) {
				t.Errorf("host %s: %s", ag.name, l)
			}
		}
		for _, l := range rootLeftovers(t, mh, e.dir, cidr, tapSeen) {
			t.Errorf("root namespace: %s", l)
		}
	})
}

// mhAgentFlags are the flags of an agent in host h (the same at every
// start).
func mhAgentFlags(h *multihost.Host) []string {
	return []string{"--resources", "cpus=2,mem=1Gi", "--network-driver", "bridge", "--underlay-ip", h.IP().String()}
}

// useKernel points dcosctl at the kernel at url with token, through a
// client config in the env's dir.
func (e *env) useKernel(url, token string) {
	e.t.Helper()
	cc := e.path("client.json")
	b, _ := json.Marshal(map[string]string{"kernel": url, "token": token})
	if err := os.WriteFile(cc, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.ccPath = cc
	e.mu.Unlock()
}

// freeClusterCIDR returns a random 10.X.0.0/16 (X from 128 to 223, clear
// of the fixed ones other e2e tests use) that no route of the root
// namespace overlaps, so that what the test finds in it is its own.
func freeClusterCIDR(t *testing.T) netip.Prefix {
	t.Helper()
	routes, err := netnsutil.Dump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 64 {
		var x [1]byte
		rand.Read(x[:])
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 128 + x[0]%96, 0, 0}), 16)
		free := true
		for _, r := range routes {
			if d, ok := prefixOf(r.Dst); ok && d.Bits() > 0 && d.Overlaps(p) {
				free = false
			}
		}
		if free {
			return p
		}
	}
	t.Fatal("no free /16 among 10.128.0.0/16-10.223.0.0/16")
	return netip.Prefix{}
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), bits).Masked(), ok
}

// runToEnd runs `dcosctl run --detach` with args and returns the task once
// it has ended, however it ended.
func runToEnd(e *env, args ...string) *pb.Task {
	e.t.Helper()
	out := e.mustCtl(append([]string{"run", "--detach", "-o", "json"}, args...)...)
	var res struct{ Task struct{ ID string } }
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Task.ID == "" {
		e.t.Fatalf("dcosctl run -o json: %v\n%s", err, out)
	}
	var task *pb.Task
	e.eventually("task "+res.Task.ID+" ended", func() (bool, string) {
		task = taskByID(e, res.Task.ID)
		e.notePID(task.GetPid())
		return task.GetState() > pb.TaskState_TASK_STATE_RUNNING, sprint(task)
	})
	return task
}

// sandboxOutput returns the stdout and stderr of task id, from whichever
// agent's sandbox holds them.
func sandboxOutput(e *env, id string) string {
	var b strings.Builder
	files, _ := filepath.Glob(e.path("agents", "*", "sandboxes", "*"+id+"*", "std*"))
	for _, f := range files {
		out, _ := os.ReadFile(f)
		fmt.Fprintf(&b, "%s:\n%s\n", f, tail(string(out), 20))
	}
	return b.String()
}

// echoOnce sends "ping" to a tcpecho server at addr and returns its answer.
func echoOnce(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintln(c, "ping"); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

// dcosVeths returns the names of the veths named dcos* in host h.
func dcosVeths(t *testing.T, h *multihost.Host) []string {
	t.Helper()
	nh, err := h.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	links, err := netnsutil.Dump(nh.LinkList)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if l.Type() == "veth" && strings.HasPrefix(l.Attrs().Name, "dcos") {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

// dcosNetwork lists, sorted, what of dcos is in host h: its links other
// than lo and eth0 (the node's bridge and VXLAN device, task veths),
// addresses and routes in the cluster CIDR cidr, and nftables tables
// (the host's namespace has none of its own).
func dcosNetwork(t *testing.T, h *multihost.Host, cidr netip.Prefix) []string {
	t.Helper()
	nh, err := h.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	links, err := netnsutil.Dump(nh.LinkList)
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	names := map[int]string{}
	for _, l := range links {
		name := l.Attrs().Name
		names[l.Attrs().Index] = name
		if name != "lo" && name != "eth0" {
			have = append(have, fmt.Sprintf("link %s (%s)", name, l.Type()))
		}
	}
	addrs, err := netnsutil.Dump(func() ([]netlink.Addr, error) { return nh.AddrList(nil, unix.AF_INET) })
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ip, _ := netip.AddrFromSlice(a.IP); cidr.Contains(ip.Unmap()) {
			have = append(have, fmt.Sprintf("address %s on %s", a.IPNet, names[a.LinkIndex]))
		}
	}
	routes, err := netnsutil.Dump(func() ([]netlink.Route, error) {
		return nh.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if d, ok := prefixOf(r.Dst); ok && d.Bits() > 0 && d.Overlaps(cidr) {
			have = append(have, fmt.Sprintf("route %s dev %s table %d", d, names[r.LinkIndex], r.Table))
		}
	}
	out, err := h.Command("nft", "list", "tables").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list tables in %s: %v\n%s", h.Name(), err, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(l, "table ") {
			have = append(have, "nftables "+l)
		}
	}
	slices.Sort(have)
	return have
}

// rootLeftovers lists what the test's agents left in the root namespace
// and its mounts: links they made (taps, by name), addresses and routes
// in the test's cluster CIDR, namespace mounts under the test's dir, and
// namespace files of the test network other than its hosts'.
func rootLeftovers(t *testing.T, mh *multihost.Network, dir string, cidr netip.Prefix, taps []string) []string {
	t.Helper()
	var left []string
	links, err := netnsutil.Dump(netlink.LinkList)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if slices.Contains(taps, l.Attrs().Name) {
			left = append(left, "link "+l.Attrs().Name)
		}
	}
	addrs, err := netnsutil.Dump(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, unix.AF_INET) })
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok && p.Overlaps(cidr) {
			left = append(left, "address "+a.IPNet.String())
		}
	}
	routes, err := netnsutil.Dump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if d, ok := prefixOf(r.Dst); ok && d.Bits() > 0 && d.Overlaps(cidr) {
			left = append(left, "route "+d.String())
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir+string(filepath.Separator)) {
			left = append(left, "mount "+f[4])
		}
	}
	var ours []string
	for _, h := range mh.Hosts() {
		ours = append(ours, h.NetnsPath())
	}
	files, _ := filepath.Glob(filepath.Join(multihost.NetnsDir, "*"))
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), mh.Name()) && !slices.Contains(ours, f) {
			left = append(left, "namespace "+f)
		}
	}
	return left
}
