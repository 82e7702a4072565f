package e2e

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestBadNet_KernelAndAgents: bad network requests against dcosd kernel
// with separate agents get clear errors and leave nothing behind.
//
//   - Cluster CIDR exhausted: with --cluster-cidr a single /24, the first
//     agent gets it; a second agent is refused with ResourceExhausted naming
//     the CIDR (it keeps retrying and says so in its log), the kernel lists
//     one agent, and the second agent set nothing up on the node (no bridge,
//     no nftables table).
//   - An invalid network mode is InvalidArgument naming the field, and
//     creates no task.
//   - Meanwhile the first agent runs bridge tasks in its subnet.
func TestBadNet_KernelAndAgents(t *testing.T) {
	t.Parallel()
	needRoot(t)
	e := newEnv(t)
	opTok, oneTok, twoTok := newToken(), newToken(), newToken()
	tokens := e.writeTokens(e.path("tokens.json"),
		tokenEntry{Token: opTok, Name: "ops", Role: "operator"},
		tokenEntry{Token: oneTok, Name: "agent-one", Role: "agent"},
		tokenEntry{Token: twoTok, Name: "agent-two", Role: "agent"},
	)
	tok := newToken()
	br1, br2 := "dcb"+tok[:8], "dcc"+tok[:8]
	vxport := strconv.Itoa(20000 + int(tok[8])%64*100 + int(tok[9])%100)
	_, rng := hostPortRange(tok, 4)
	const cidr = "10.233.7.0/24"
	t.Cleanup(func() { removeNode(t, br1); removeNode(t, br2) })
	e.startKernel(tokens, opTok, "--cluster-cidr", cidr, "--heartbeat-interval", "200ms")
	op := e.op()
	_, one := e.startAgent("one", oneTok, "--resources", "cpus=1,mem=512Mi", "--network-driver", "bridge",
		"--bridge", br1, "--vxlan-port", vxport, "--host-ports", rng)

	// The second agent: the CIDR has no /24 left for it.
	dir := e.path("agents", "two")
	e.mu.Lock()
	e.agentDirs = append(e.agentDirs, dir)
	e.mu.Unlock()
	two, _ := e.start("dcosd agent two", "", "agent", "--kernel", e.url, "--token", twoTok, "--data-dir", dir,
		"--label", "e2e=two", "--cgroup-parent", e.cgParent+"/two", "--bpf-pin-dir", e.pinDir+"/two",
		"--resources", "cpus=1,mem=512Mi", "--network-driver", "bridge", "--bridge", br2, "--vxlan-port", vxport, "--ca-cert", e.caFile)
	wantLog := fmt.Sprintf("cluster CIDR %s has no free /24 for a new agent", cidr)
	e.eventually("agent two refused with ResourceExhausted", func() (bool, string) {
		if !two.running() {
			t.Fatalf("agent two exited: %v; stderr:\n%s", two.err, tail(two.stderr.String(), 50))
		}
		s := two.stderr.String()
		return strings.Contains(s, "resource_exhausted") && strings.Contains(s, wantLog), tail(s, 5)
	})
	agents := listAgents(t, op).GetAgents()
	if len(agents) != 1 || agents[0].GetId() != one || agents[0].GetSubnet() != cidr {
		t.Fatalf("agents %v, want only %s with %s", agents, one, cidr)
	}
	if out, err := exec.Command("ip", "link", "show", br2).CombinedOutput(); err == nil {
		t.Errorf("the refused agent created its bridge %s:\n%s", br2, out)
	}
	if ok, err := nftTable(br2); err != nil || ok {
		t.Errorf("the refused agent created its nftables table %s (or it cannot be listed: %v)", br2, err)
	}

	// An invalid network mode.
	alloc := allocateOne(t, op, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.2, MemBytes: 32 * mi, Ports: 1}})
	_, err := op.Launch(ctx(t), connect.NewRequest(&pb.LaunchRequest{AllocationId: alloc.GetId(), Command: "true", Network: "overlay"}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), `network: must be "host" or "bridge"`) {
		t.Fatalf("launch with network overlay: %v, want InvalidArgument naming network", err)
	}
	if n := len(listTasks(t, op).GetTasks()); n != 0 {
		t.Fatalf("%d tasks after an invalid launch", n)
	}

	// The admitted agent runs bridge tasks with a host port of its range.
	task := launch(t, op, &pb.LaunchRequest{AllocationId: alloc.GetId(), Command: bin.tcphello, Args: []string{"8080"},
		Network: "bridge", Ports: []*pb.PortRequest{{Name: "http", ContainerPort: 8080}}})
	var ip netip.Addr
	e.eventually("bridge task RUNNING with an address in "+cidr, func() (bool, string) {
		k := taskByID(e, task.GetId())
		e.notePID(k.GetPid())
		ip, _ = netip.ParseAddr(k.GetIp())
		return k.GetState() == pb.TaskState_TASK_STATE_RUNNING && netip.MustParsePrefix(cidr).Contains(ip), sprint(k)
	})
	revoke(t, op, alloc.GetId())
	e.eventually("no veth left on "+br1, func() (bool, string) {
		got := bridgeLinks(br1)
		return got == "", got
	})
}
