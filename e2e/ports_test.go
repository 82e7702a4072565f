package e2e

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// hostPortRange returns a range of n host ports for one test, from the
// token, below the kernel's ephemeral ports and the default 31000-32000
// other tests' agents use.
func hostPortRange(tok string, n int) (first int, spec string) {
	v, _ := strconv.ParseUint(tok[10:14], 16, 32)
	first = 27000 + int(v%400)*10
	return first, fmt.Sprintf("%d-%d", first, first+n-1)
}

// freeTCPPort returns a port no socket holds right now (outside every
// test's host-port range: the kernel hands out ephemeral ports).
func freeTCPPort(t *testing.T) uint32 {
	t.Helper()
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint32(l.Addr().(*net.TCPAddr).Port)
}

// bridgeLinks lists the links attached to bridge br (the tasks' veths).
func bridgeLinks(br string) string {
	out, _ := exec.Command("ip", "-o", "link", "show", "master", br).CombinedOutput()
	return strings.TrimSpace(string(out))
}

// netnsOf lists the bridge driver's namespace files of task id under the
// agent's data dir.
func netnsOf(e *env, id string) []string {
	m, _ := filepath.Glob(e.path("data", "agent", "plugins", "*", "netns", "*"+id))
	return m
}

// TestDev_HostPorts: on dcosd dev with the bridge driver and its own
// host-port range, a task asking for a port gets one of the range from
// its allocation and answers on it; a second task asking for a static
// host port a live task holds is refused by the kernel (its allocation
// revoked by dcosctl run, nothing set up on the node); a host port some
// other process of the node has bound fails the task with a clear reason
// and leaves no namespace or veth; a host-network task gets its port in
// DCOS_PORT_<NAME>; an allocation asking for more ports than are free
// stays pending saying so; revoking frees the ports, and a static port is
// taken again at once.
func TestDev_HostPorts(t *testing.T) {
	t.Parallel()
	needRoot(t)
	e := newEnv(t)
	tok := newToken()
	br := "dcp" + tok[:8]
	vxport := strconv.Itoa(20000 + int(tok[8])%64*100 + int(tok[9])%100)
	first, rng := hostPortRange(tok, 10)
	t.Cleanup(func() { removeNode(t, br) })
	e.startDev("--resources", "cpus=2,mem=2Gi", "--network-driver", "bridge", "--bridge", br,
		"--vxlan-port", vxport, "--cluster-cidr", "10.232.0.0/16", "--host-ports", rng)
	inRange := func(p uint32) bool { return int(p) >= first && int(p) < first+10 }

	agents := listAgents(t, e.op()).GetAgents()
	if len(agents) != 1 || agents[0].GetHostPorts() != rng || agents[0].GetTotal().GetPorts() != 10 {
		t.Fatalf("agents = %v, want one with host ports %s (10)", agents, rng)
	}
	agentID := agents[0].GetId()
	if out := e.mustCtl("agents"); !strings.Contains(out, "0/10("+rng+")") {
		t.Errorf("dcosctl agents lacks the free ports and range:\n%s", out)
	}

	// A port from the allocation's host ports, picked by the kernel.
	web := runTask(e, "--cpus", "0.1", "--mem", "32Mi", "--port", "http:8080", "--", bin.tcphello, "8080")
	hp := web.GetPorts()[0].GetHostPort()
	if !inRange(hp) || web.GetPorts()[0].GetContainerPort() != 8080 {
		t.Fatalf("task ports %v, want container port 8080 on a host port of %s", web.GetPorts(), rng)
	}
	for _, a := range listAllocations(t, e.op()).GetAllocations() {
		if a.GetId() == web.GetAllocationId() && (a.GetResources().GetPorts() != 1 || !slices.Equal(a.GetHostPorts(), []uint32{hp})) {
			t.Errorf("allocation %v: want resources.ports 1 and host_ports [%d]", a, hp)
		}
	}
	want := "hello from " + web.GetIp() + "\n"
	addr := net.JoinHostPort(hostAddr(t), strconv.Itoa(int(hp)))
	e.eventually("the task answering on host port "+addr, func() (bool, string) {
		got, err := hello(addr)
		return got == want, fmt.Sprint(got, err)
	})
	if out := e.mustCtl("ps"); !strings.Contains(out, fmt.Sprintf("http:%d->8080", hp)) {
		t.Errorf("dcosctl ps lacks the task's port:\n%s", out)
	}

	// A static host port outside the range, then the same one again.
	static := freeTCPPort(t)
	spec := fmt.Sprintf("web:8080:%d", static)
	holder := runTask(e, "--cpus", "0.1", "--mem", "32Mi", "--port", spec, "--", bin.tcphello, "8080")
	if p := holder.GetPorts()[0].GetHostPort(); p != static {
		t.Fatalf("static port task got host port %d, want %d", p, static)
	}
	links, tasks, allocs := bridgeLinks(br), len(listTasks(t, e.op()).GetTasks()), len(listAllocations(t, e.op()).GetAllocations())
	_, stderr, code := e.ctl("run", "--cpus", "0.1", "--mem", "32Mi", "--port", spec, "--", bin.tcphello, "8080")
	wantErr := fmt.Sprintf("host port %d on agent %s is already taken by task %s", static, agentID, holder.GetId())
	if code == 0 || !strings.Contains(stderr, "FailedPrecondition") || !strings.Contains(stderr, wantErr) {
		t.Fatalf("second task on static port %d: exit %d, stderr %q; want FailedPrecondition with %q", static, code, stderr, wantErr)
	}
	if n := len(listTasks(t, e.op()).GetTasks()); n != tasks {
		t.Errorf("%d tasks after the refused launch, want %d", n, tasks)
	}
	if n := len(listAllocations(t, e.op()).GetAllocations()); n != allocs {
		t.Errorf("%d allocations after the refused run, want %d (run revokes its allocation)", n, allocs)
	}
	if got := bridgeLinks(br); got != links {
		t.Errorf("links on %s changed after a refused launch:\nbefore %s\nafter  %s", br, links, got)
	}

	// A host port a process dcos does not manage has bound.
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	id := runTaskNoWait(e, "--cpus", "0.1", "--mem", "32Mi", "--port", fmt.Sprintf("web:8080:%d", busy), "--", bin.tcphello, "8080")
	wantReason := fmt.Sprintf("host port %d/tcp (port \"web\") is already in use on this node by a process dcos does not manage", busy)
	e.eventually("the task on a busy host port FAILED", func() (bool, string) {
		k := taskByID(e, id)
		return k.GetState() == pb.TaskState_TASK_STATE_FAILED && strings.Contains(k.GetReason(), wantReason), sprint(k)
	})
	if got := bridgeLinks(br); got != links {
		t.Errorf("links on %s after the failed task:\nbefore %s\nafter  %s", br, links, got)
	}
	if ns := netnsOf(e, id); len(ns) != 0 {
		t.Errorf("namespace of the failed task left: %v", ns)
	}

	// A host-network task listens on its host port itself.
	host := runTask(e, "--cpus", "0.1", "--mem", "32Mi", "--network", "host", "--port", "http", "--",
		"sh", "-c", "exec "+bin.tcphello+" $DCOS_PORT_HTTP")
	hp2 := host.GetPorts()[0].GetHostPort()
	if !inRange(hp2) || hp2 == hp || host.GetPorts()[0].GetContainerPort() != hp2 {
		t.Fatalf("host task ports %v, want a second port of %s as both ports", host.GetPorts(), rng)
	}
	e.eventually("the host task answering on its port", func() (bool, string) {
		got, err := hello(net.JoinHostPort("127.0.0.1", strconv.Itoa(int(hp2))))
		return got == "hello from \n", fmt.Sprint(got, err)
	})

	// 2 of 10 held: 9 do not fit.
	out, stderr, code := e.ctl("alloc", "--cpus", "0.1", "--mem", "1Mi", "--ports", "9")
	if code != 0 || !strings.Contains(out, "pending: insufficient host ports on 1 agent") {
		t.Fatalf("alloc --ports 9 with 8 free: exit %d, %s%s", code, out, stderr)
	}
	for _, a := range listAllocations(t, e.op()).GetAllocations() {
		if a.GetState() == pb.AllocationState_ALLOCATION_STATE_PENDING {
			e.mustCtl("revoke", a.GetId())
		}
	}

	// Revoking frees the ports.
	e.mustCtl("revoke", web.GetAllocationId())
	e.mustCtl("revoke", host.GetAllocationId())
	e.eventually("the agent's ports free again", func() (bool, string) {
		g := listAgents(t, e.op()).GetAgents()[0]
		return g.GetAllocated().GetPorts() == 0, sprint(g)
	})
	// The static port is free again as soon as its task is revoked (the
	// new task waits if the old one's network is still there).
	e.mustCtl("revoke", holder.GetAllocationId())
	again := runTask(e, "--cpus", "0.1", "--mem", "32Mi", "--port", spec, "--", bin.tcphello, "8080")
	addr = net.JoinHostPort(hostAddr(t), strconv.Itoa(int(static)))
	e.eventually("the new task answering on static port "+addr, func() (bool, string) {
		got, err := hello(addr)
		return got == "hello from "+again.GetIp()+"\n", fmt.Sprint(got, err)
	})
	e.mustCtl("revoke", again.GetAllocationId())
	e.eventually("no veth left on "+br, func() (bool, string) {
		got := bridgeLinks(br)
		return got == "", got
	})
}
