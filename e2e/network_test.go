package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// hostAddr is this machine's source address for the default route.
func hostAddr(t *testing.T) string {
	t.Helper()
	c, err := net.Dial("udp4", "192.0.2.1:9")
	if err != nil {
		t.Skipf("no default route: %v", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP.String()
}

// hello dials addr and returns the first line it answers.
func hello(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	return bufio.NewReader(c).ReadString('\n')
}

// TestDev_BridgeNetwork: on dcosd dev with the bridge driver, a task that
// asks for its own network gets an address from the agent's subnet
// (reported, and in DCOS_TASK_IP), answers on it from the host, and its
// host port reaches it through the node's address; after revoke its
// namespace and veth are gone, and once dcosd stopped, so is the node's
// network (bridge, VXLAN device, nftables table).
func TestDev_BridgeNetwork(t *testing.T) {
	t.Parallel()
	needRoot(t)
	e := newEnv(t)
	tok := newToken()
	br := "dcs" + tok[:8]
	port := strconv.Itoa(20000 + int(tok[8])%64*100 + int(tok[9])%100)
	t.Cleanup(func() { removeNode(t, br) }) // if the test fails before dcosd removed it
	dev := e.startDev("--resources", "cpus=2,mem=2Gi", "--network-driver", "bridge", "--bridge", br,
		"--vxlan-port", port, "--cluster-cidr", "10.231.0.0/16")

	agents := listAgents(t, e.op()).GetAgents()
	if len(agents) != 1 || agents[0].GetSubnet() == "" {
		t.Fatalf("agents = %v, want one with a subnet", agents)
	}
	subnet := netip.MustParsePrefix(agents[0].GetSubnet())
	task := runTask(e, "--cpus", "0.2", "--mem", "32Mi", "--network", "bridge", "--port", "http:8080", "--", bin.tcphello, "8080")
	ip, err := netip.ParseAddr(task.GetIp())
	if err != nil || !subnet.Contains(ip) {
		t.Fatalf("task ip %q, want an address in the agent's subnet %s", task.GetIp(), subnet)
	}
	ports := task.GetPorts()
	if len(ports) != 1 || ports[0].GetName() != "http" || ports[0].GetContainerPort() != 8080 || ports[0].GetHostPort() == 0 {
		t.Fatalf("task ports = %v, want http 8080 on a host port", ports)
	}
	want := "hello from " + ip.String() + "\n"
	e.eventually("the task answering on its address", func() (bool, string) {
		got, err := hello(net.JoinHostPort(ip.String(), "8080"))
		return got == want, fmt.Sprint(got, err)
	})
	hp := net.JoinHostPort(hostAddr(t), strconv.Itoa(int(ports[0].GetHostPort())))
	e.eventually("the task answering on its host port "+hp, func() (bool, string) {
		got, err := hello(hp)
		return got == want, fmt.Sprint(got, err)
	})

	// Control for the check at the end.
	if have := nodeNetworkOf(br); len(have) != 3 {
		t.Errorf("node network while the task runs: %q, want the bridge, its VXLAN device and its table", have)
	}

	e.mustCtl("revoke", task.GetAllocationId())
	e.eventually("task killed and its network gone", func() (bool, string) {
		k := taskByID(e, task.GetId())
		_, err := hello(net.JoinHostPort(ip.String(), "8080"))
		return k.GetState() == pb.TaskState_TASK_STATE_KILLED && err != nil, sprint(k, err)
	})
	// The kernel destroys a namespace (and the veth end in it) in the
	// background once its last user is gone.
	e.eventually("no veth left on "+br, func() (bool, string) {
		out, _ := exec.Command("ip", "-o", "link", "show", "master", br).CombinedOutput()
		return strings.TrimSpace(string(out)) == "", string(out)
	})

	// With no task left, a clean stop removes the node's network.
	if !dev.stop(15 * time.Second) {
		t.Fatal("dcosd dev did not stop on SIGTERM")
	}
	for _, l := range nodeNetworkOf(br) {
		t.Errorf("left after dcosd stopped: %s", l)
	}
}

// nodeNetworkOf lists what of the bridge driver's node network for bridge
// br is on this host: the bridge, its VXLAN device, its nftables table.
func nodeNetworkOf(br string) []string {
	var have []string
	for _, l := range []string{br, vxlanOf(br)} {
		if exec.Command("ip", "link", "show", "dev", l).Run() == nil {
			have = append(have, "link "+l)
		}
	}
	if ok, err := nftTable(br); err != nil || ok {
		have = append(have, fmt.Sprintf("nftables table ip %s (%v)", br, err))
	}
	return have
}

// nftTable reports whether this namespace has the IPv4 nftables table
// name, asking the kernel over netlink (not the nft binary, whose absence
// would read as "no table").
func nftTable(name string) (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, err
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return false, err
	}
	for _, tb := range tables {
		if tb.Name == name {
			return true, nil
		}
	}
	return false, nil
}

// removeNode deletes what the bridge driver set up on the node for bridge
// br (bridge, VXLAN device, nftables table), after dcosd stopped: a clean
// stop of dcosd with no task left removes them itself, so this is for a
// test that failed or stopped dcosd otherwise.
func removeNode(t testing.TB, br string) {
	for _, l := range []string{br, vxlanOf(br)} {
		exec.Command("ip", "link", "del", l).Run()
	}
	exec.Command("nft", "delete", "table", "ip", br).Run()
	if out, _ := exec.Command("ip", "-o", "link", "show").CombinedOutput(); strings.Contains(string(out), br) {
		t.Errorf("links of %s left:\n%s", br, out)
	}
}

// vxlanName mirrors dcosd's: the bridge's name + "-vx", at most 15 bytes.
func vxlanOf(br string) string {
	if len(br) > 12 {
		br = br[:12]
	}
	return br + "-vx"
}
