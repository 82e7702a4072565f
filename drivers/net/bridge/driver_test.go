//go:build linux

package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/dcos-kernel/dcos/internal/netnsutil"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

func TestDriver_SetupBridge(t *testing.T) {
	tn := newTestNode(t, testSubnet())
	ctx := context.Background()
	st := tn.setup("web-1")
	gw := gateway(tn.subnet)
	if st.Interface != "eth0" || st.Gateway != gw || !tn.subnet.Contains(st.IP) || st.IP == gw {
		t.Fatalf("status %+v", st)
	}
	if st.Env[contract.TaskIPEnv] != st.IP.String() {
		t.Errorf("env %v", st.Env)
	}
	if got, err := tn.d.Status(ctx, "web-1"); err != nil || got.IP != st.IP || got.Netns != st.Netns {
		t.Errorf("Status = %+v, %v", got, err)
	}

	addrs, routes, up := inside(t, st.Netns)
	if !up || len(addrs) != 1 || addrs[0].IPNet.String() != netip.PrefixFrom(st.IP, 24).String() {
		t.Errorf("eth0 up=%v addrs=%v", up, addrs)
	}
	var def bool
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Gw.String() == gw.String() {
			def = true
		}
	}
	if !def {
		t.Errorf("no default route via %s: %v", gw, routes)
	}
	l, err := netlink.LinkByName(vethName(tn.cfg.Bridge, "web-1"))
	if err != nil {
		t.Fatal(err)
	}
	br, _ := netlink.LinkByName(tn.cfg.Bridge)
	if l.Attrs().MasterIndex != br.Attrs().Index || l.Attrs().Flags&1 == 0 || l.Attrs().HardwareAddr.String() != mac(macHostVeth, st.IP).String() {
		t.Errorf("host veth %+v", l.Attrs())
	}

	t.Run("host to container", func(t *testing.T) {
		ln := listenIn(t, st.Netns, hostPort(st.IP, 0))
		roundTrip(t, ln, "")
	})
	t.Run("container to host", func(t *testing.T) {
		ln := listenIn(t, "", hostPort(gw, 0))
		roundTrip(t, ln, st.Netns)
	})
	t.Run("container to container", func(t *testing.T) {
		st2 := tn.setup("web-2")
		if st2.IP == st.IP {
			t.Fatalf("two containers got %s", st.IP)
		}
		ln := listenIn(t, st.Netns, hostPort(st.IP, 0))
		roundTrip(t, ln, st2.Netns)
		ln2 := listenIn(t, st2.Netns, hostPort(st2.IP, 0))
		roundTrip(t, ln2, st.Netns)
	})
}

func TestDriver_Teardown(t *testing.T) {
	tn := newTestNode(t, testSubnet())
	ctx := context.Background()
	st := tn.setup("c1")
	for i := range 2 {
		if err := tn.d.Teardown(ctx, "c1"); err != nil {
			t.Fatalf("teardown %d: %v", i, err)
		}
	}
	if _, err := os.Stat(st.Netns); !os.IsNotExist(err) {
		t.Errorf("netns file: %v", err)
	}
	if _, err := netlink.LinkByName(vethName(tn.cfg.Bridge, "c1")); err == nil {
		t.Errorf("veth still there")
	}
	if _, err := tn.d.Status(ctx, "c1"); !errors.Is(err, contract.ErrTaskNotFound) {
		t.Errorf("Status after teardown: %v", err)
	}
	if len(tn.d.pool.Leases) != 0 {
		t.Errorf("leases %v", tn.d.pool.Leases)
	}
	if err := tn.d.Teardown(ctx, "never-seen"); err != nil {
		t.Errorf("teardown of an unknown ID: %v", err)
	}
	// The ID can be set up again.
	tn.setup("c1")
}

func TestDriver_BadInput(t *testing.T) {
	tn := newTestNode(t, testSubnet())
	ctx := context.Background()
	tn.setup("dup")
	tn.ids["h"] = true
	if _, err := tn.d.Setup(ctx, contract.NetworkRequest{ContainerID: "h", Mode: contract.NetworkModeHost,
		Ports: []contract.PortMapping{{Name: "p", HostPort: 31999}}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  contract.NetworkRequest
		want error
	}{
		{"bad mode", contract.NetworkRequest{ContainerID: "x", Mode: "overlay"}, contract.ErrNotSupported},
		{"empty mode", contract.NetworkRequest{ContainerID: "x"}, contract.ErrNotSupported},
		{"set up twice", contract.NetworkRequest{ContainerID: "dup", Mode: contract.NetworkModeBridge}, contract.ErrConflict},
		{"bridge port taken", contract.NetworkRequest{ContainerID: "x", Mode: contract.NetworkModeBridge,
			Ports: []contract.PortMapping{{Name: "http", HostPort: 31999}}}, contract.ErrConflict},
		{"udp-lite", contract.NetworkRequest{ContainerID: "x", Mode: contract.NetworkModeHost,
			Ports: []contract.PortMapping{{Name: "a", Protocol: "sctp"}}}, contract.ErrNotSupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tn.ids[tt.req.ContainerID] = true
			if _, err := tn.d.Setup(ctx, tt.req); !errors.Is(err, tt.want) {
				t.Errorf("Setup = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := tn.d.Status(ctx, "nope"); !errors.Is(err, contract.ErrTaskNotFound) {
		t.Errorf("Status(unknown) = %v", err)
	}
	if _, err := tn.d.Status(ctx, "x"); !errors.Is(err, contract.ErrTaskNotFound) {
		t.Errorf("a failed Setup left state: %v", err)
	}
	if _, err := os.Stat(tn.d.nsPath("x")); !os.IsNotExist(err) {
		t.Errorf("a failed Setup left a namespace: %v", err)
	}
}

func TestDriver_HostMode(t *testing.T) {
	tn := newTestNode(t, testSubnet())
	ctx := context.Background()
	tn.ids["h1"], tn.ids["h2"] = true, true
	st, err := tn.d.Setup(ctx, contract.NetworkRequest{ContainerID: "h1", Mode: contract.NetworkModeHost,
		Ports: []contract.PortMapping{{Name: "http-admin"}, {Name: "db", HostPort: 31000, Protocol: "udp"}}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Netns != "" || st.Ports[0].HostPort != portRangeFirst || st.Ports[0].Protocol != "tcp" ||
		st.Env["DCOS_PORT_HTTP_ADMIN"] != fmt.Sprint(portRangeFirst) || st.Env["DCOS_PORT_DB"] != "31000" {
		t.Fatalf("status %+v", st)
	}
	_, err = tn.d.Setup(ctx, contract.NetworkRequest{ContainerID: "h2", Mode: contract.NetworkModeHost,
		Ports: []contract.PortMapping{{Name: "x", HostPort: portRangeFirst}}})
	if !errors.Is(err, contract.ErrConflict) {
		t.Fatalf("taken host port: %v", err)
	}
	if err := tn.d.Teardown(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	if _, err = tn.d.Setup(ctx, contract.NetworkRequest{ContainerID: "h2", Mode: contract.NetworkModeHost,
		Ports: []contract.PortMapping{{Name: "x", HostPort: portRangeFirst}}}); err != nil {
		t.Fatalf("port released by teardown: %v", err)
	}
}

func TestDriver_ConfigureNode(t *testing.T) {
	tn := newTestNode(t, testSubnet())
	ctx := context.Background()
	cfg := contract.NodeConfig{AgentID: "a1", Subnet: tn.subnet}
	if err := tn.d.ConfigureNode(ctx, cfg); err != nil {
		t.Fatalf("again: %v", err)
	}
	tn.setup("c1")
	other := netip.MustParsePrefix("10.199.254.0/24")
	if err := tn.d.ConfigureNode(ctx, contract.NodeConfig{Subnet: other}); !errors.Is(err, contract.ErrConflict) {
		t.Fatalf("subnet change with a container: %v", err)
	}
	if err := tn.d.ConfigureNode(ctx, contract.NodeConfig{Subnet: netip.MustParsePrefix("10.199.1.0/31")}); err == nil {
		t.Fatal("a /31 was accepted")
	}
	if err := tn.d.Teardown(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	// With no container left, the subnet may change; the bridge is
	// re-addressed.
	if err := tn.d.ConfigureNode(ctx, contract.NodeConfig{Subnet: other}); err != nil {
		t.Fatal(err)
	}
	br, _ := netlink.LinkByName(tn.cfg.Bridge)
	addrs, _ := netnsutil.Dump(func() ([]netlink.Addr, error) { return netlink.AddrList(br, 2) })
	if len(addrs) != 1 || addrs[0].IPNet.String() != "10.199.254.1/24" {
		t.Errorf("bridge addresses %v", addrs)
	}
	if err := tn.d.ConfigureNode(ctx, cfg); err != nil {
		t.Fatal(err)
	}
}

// TestDriver_RemoveNode: while a container holds an address RemoveNode
// refuses and the node keeps working; once it is gone RemoveNode deletes
// the bridge, its address and the NAT table, is idempotent, and
// ConfigureNode brings the node back.
func TestDriver_RemoveNode(t *testing.T) {
	tn := newTestNode(t, testSubnet())
	ctx := context.Background()
	st := tn.setup("c1")
	if err := tn.d.RemoveNode(ctx); !errors.Is(err, contract.ErrConflict) {
		t.Fatalf("RemoveNode with a container: %v, want ErrConflict", err)
	}
	if _, err := netlink.LinkByName(tn.cfg.Bridge); err != nil {
		t.Fatalf("the refused RemoveNode deleted the bridge: %v", err)
	}
	if ok, err := tn.d.nat.exists(); err != nil || !ok {
		t.Fatalf("the refused RemoveNode deleted the NAT table: %v, %v", ok, err)
	}
	roundTrip(t, listenIn(t, st.Netns, hostPort(st.IP, 0)), "")

	if err := tn.d.Teardown(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := tn.d.RemoveNode(ctx); err != nil {
			t.Fatalf("RemoveNode %d: %v", i, err)
		}
	}
	checkNothingLeft(t, tn.cfg, tn.subnet, tn.ids)
	if _, err := tn.d.Setup(ctx, contract.NetworkRequest{ContainerID: "c2", Mode: contract.NetworkModeBridge}); err == nil {
		t.Fatal("bridge-mode Setup after RemoveNode succeeded")
	}
	tn.ids["c2"] = true
	if err := tn.d.ConfigureNode(ctx, contract.NodeConfig{AgentID: "a1", Subnet: tn.subnet}); err != nil {
		t.Fatal(err)
	}
	st = tn.setup("c3")
	roundTrip(t, listenIn(t, st.Netns, hostPort(st.IP, 0)), "")
}

func TestDriver_IPAMPersistsAcrossRestart(t *testing.T) {
	tn := newTestNode(t, testSubnet())
	ctx := context.Background()
	tn.setup("a")
	b := tn.setup("b")
	if err := tn.d.Teardown(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	a := tn.setup("a2")
	old := tn.d
	old.Close() // a "restart": no teardown

	tn.d = tn.open()
	if err := tn.d.ConfigureNode(ctx, contract.NodeConfig{Subnet: tn.subnet}); err != nil {
		t.Fatal(err)
	}
	// Before Recover, a new container still gets an address nobody holds.
	c := tn.setup("c")
	if c.IP == a.IP || c.IP == b.IP {
		t.Fatalf("restarted driver reused a live address: %s (live %s, %s)", c.IP, a.IP, b.IP)
	}
	if err := tn.d.Recover(ctx, []contract.NetworkStatus{*a, *b}); err != nil {
		t.Fatal(err)
	}
	if st, err := tn.d.Status(ctx, "b"); err != nil || st.IP != b.IP {
		t.Fatalf("recovered Status = %+v, %v", st, err)
	}
	// Recover is a no-op for what is tracked.
	if err := tn.d.Recover(ctx, []contract.NetworkStatus{*a}); err != nil {
		t.Fatal(err)
	}
	ln := listenIn(t, b.Netns, hostPort(b.IP, 0))
	roundTrip(t, ln, a.Netns)
}

func TestDriver_Exhausted(t *testing.T) {
	subnet := testSubnet()
	subnet = netip.PrefixFrom(subnet.Addr(), 29) // .2-.6 leasable
	tn := newTestNode(t, subnet)
	ctx := context.Background()
	for i := range 5 {
		tn.setup(fmt.Sprint("c", i))
	}
	tn.ids["c5"] = true
	_, err := tn.d.Setup(ctx, contract.NetworkRequest{ContainerID: "c5", Mode: contract.NetworkModeBridge})
	if !errors.Is(err, contract.ErrExhausted) {
		t.Fatalf("sixth Setup = %v, want ErrExhausted", err)
	}
	if _, err := os.Stat(tn.d.nsPath("c5")); !os.IsNotExist(err) {
		t.Errorf("failed Setup left a namespace: %v", err)
	}
	if err := tn.d.Teardown(ctx, "c2"); err != nil {
		t.Fatal(err)
	}
	if st := tn.setup("c5"); st.IP != netip.AddrFrom4([4]byte{10, 199, subnet.Addr().As4()[2], 4}) {
		t.Errorf("c5 got %s, want the released .4", st.IP)
	}
}

func TestDriver_GC(t *testing.T) {
	tn := newTestNode(t, testSubnet())
	ctx := context.Background()
	a, _, _ := tn.setup("a"), tn.setup("b"), tn.setup("c")
	// A leftover the driver never recorded: a veth on the bridge from a
	// crash with no lease or namespace.
	br, _ := netlink.LinkByName(tn.cfg.Bridge)
	la := netlink.NewLinkAttrs()
	la.Name, la.MasterIndex = vethName(tn.cfg.Bridge, "ghost"), br.Attrs().Index
	tn.ids["ghost"] = true
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "dcostp" + randHex(8)}); err != nil {
		t.Fatal(err)
	}
	tn.d.Close() // crash

	tn.d = tn.open()
	if err := tn.d.ConfigureNode(ctx, contract.NodeConfig{Subnet: tn.subnet}); err != nil {
		t.Fatal(err)
	}
	if err := tn.d.Recover(ctx, []contract.NetworkStatus{*a}); err != nil {
		t.Fatal(err)
	}
	removed, err := tn.d.GC(ctx, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(removed) != "[b c]" {
		t.Errorf("removed %v, want [b c]", removed)
	}
	for _, id := range []string{"b", "c", "ghost"} {
		if _, err := netlink.LinkByName(vethName(tn.cfg.Bridge, id)); err == nil {
			t.Errorf("%s: veth left", id)
		}
		if _, err := os.Stat(tn.d.nsPath(id)); !os.IsNotExist(err) {
			t.Errorf("%s: netns left", id)
		}
	}
	if again, err := tn.d.GC(ctx, []string{"a"}); err != nil || len(again) != 0 {
		t.Errorf("GC again = %v, %v", again, err)
	}
	if _, err := tn.d.Status(ctx, "a"); err != nil {
		t.Errorf("live container lost: %v", err)
	}
	ln := listenIn(t, a.Netns, hostPort(a.IP, 0))
	roundTrip(t, ln, "")
}

func TestDriver_RecoverForgetsGone(t *testing.T) {
	tn := newTestNode(t, testSubnet())
	ctx := context.Background()
	a := tn.setup("a")
	tn.d.Close()
	tn.d = tn.open()
	if err := netnsutil.RemoveNetns(a.Netns); err != nil { // the namespace vanished
		t.Fatal(err)
	}
	if err := tn.d.ConfigureNode(ctx, contract.NodeConfig{Subnet: tn.subnet}); err != nil {
		t.Fatal(err)
	}
	if err := tn.d.Recover(ctx, []contract.NetworkStatus{*a}); err != nil {
		t.Fatal(err)
	}
	if _, err := tn.d.Status(ctx, "a"); !errors.Is(err, contract.ErrTaskNotFound) {
		t.Errorf("gone container recovered: %v", err)
	}
	if len(tn.d.pool.Leases) != 0 {
		t.Errorf("its lease kept: %v", tn.d.pool.Leases)
	}
}

func TestDriver_ConcurrentSetup(t *testing.T) {
	tn := newTestNode(t, testSubnet())
	ctx := context.Background()
	const n = 8
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprint("p", i)
		tn.ids[ids[i]] = true
	}
	sts := make([]*contract.NetworkStatus, n)
	errs := make(chan error, n)
	for i, id := range ids {
		go func() {
			st, err := tn.d.Setup(ctx, contract.NetworkRequest{ContainerID: id, Mode: contract.NetworkModeBridge})
			sts[i] = st
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	seen := map[netip.Addr]bool{}
	for _, st := range sts {
		if seen[st.IP] {
			t.Fatalf("%s handed out twice", st.IP)
		}
		seen[st.IP] = true
	}
	for _, id := range ids {
		go func() { errs <- tn.d.Teardown(ctx, id) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestDriver_HostPorts(t *testing.T) {
	tn := newTestNode(t, testSubnet())
	if tn.d.nat.missing != nil {
		t.Skipf("kernel without nf_tables: %v", tn.d.nat.missing)
	}
	ctx := context.Background()
	tn.ids["web"] = true
	// A static UDP port free right now: a fixed one could be held by a
	// test package running in parallel, and the placeholder would refuse.
	pc, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	dns := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	pc.Close()
	st, err := tn.d.Setup(ctx, contract.NetworkRequest{ContainerID: "web", Mode: contract.NetworkModeBridge,
		Ports: []contract.PortMapping{{Name: "http", ContainerPort: 8080}, {Name: "dns", HostPort: dns, ContainerPort: 53, Protocol: "udp"}}})
	if err != nil {
		t.Fatal(err)
	}
	hp := st.Ports[0].HostPort
	if hp < portRangeFirst || st.Env["DCOS_PORT_HTTP"] != "8080" || st.Env["DCOS_PORT_DNS"] != "53" {
		t.Fatalf("status %+v", st)
	}
	have, err := tn.d.nat.list()
	if err != nil || len(have) != 2 || have[portKey{"tcp", hp}] != (natTarget{st.IP, 8080}) {
		t.Fatalf("DNAT entries %v, %v", have, err)
	}
	// The node's own address and host port lead to the container.
	ln := listenIn(t, st.Netns, hostPort(st.IP, 8080))
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, err = c.Write([]byte("hi"))
			c.Close()
		}
		accepted <- err
	}()
	c, err := dialIn("", hostPort(gateway(tn.subnet), int(hp)))
	if err != nil {
		t.Fatalf("dial host port %d: %v", hp, err)
	}
	buf := make([]byte, 2)
	if _, err := c.Read(buf); err != nil || string(buf) != "hi" {
		t.Fatalf("read %q: %v", buf, err)
	}
	c.Close()
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
	// Hairpin: a container reaching a host port of its node (its own or
	// another container's) gets there, seen as coming from the gateway.
	other := tn.setup("other")
	for _, from := range []*contract.NetworkStatus{st, other} {
		t.Run("hairpin from "+from.ContainerID, func(t *testing.T) {
			peer := make(chan net.Addr, 1)
			ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
			go func() {
				c, err := ln.Accept()
				if err != nil {
					peer <- nil
					return
				}
				peer <- c.RemoteAddr()
				c.Close()
			}()
			c, err := dialIn(from.Netns, hostPort(gateway(tn.subnet), int(hp)))
			if err != nil {
				t.Fatalf("dial host port %d from %s: %v", hp, from.ContainerID, err)
			}
			c.Close()
			if a := <-peer; a == nil || a.(*net.TCPAddr).IP.String() != gateway(tn.subnet).String() {
				t.Errorf("seen from %v, want the gateway %s (masqueraded)", a, gateway(tn.subnet))
			}
		})
	}
	if err := tn.d.Teardown(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if err := tn.d.Teardown(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if have, err := tn.d.nat.list(); err != nil || len(have) != 0 {
		t.Errorf("after teardown: DNAT entries %v, %v", have, err)
	}

	// A crash leaves DNAT entries; a recovered container keeps its own and
	// GC removes the others.
	tn.ids["keep"], tn.ids["lost"] = true, true
	var keep *contract.NetworkStatus
	for _, id := range []string{"keep", "lost"} {
		st, err := tn.d.Setup(ctx, contract.NetworkRequest{ContainerID: id, Mode: contract.NetworkModeBridge,
			Ports: []contract.PortMapping{{Name: "http", ContainerPort: 80}}})
		if err != nil {
			t.Fatal(err)
		}
		if id == "keep" {
			keep = st
		}
	}
	tn.d.Close()
	tn.d = tn.open()
	if err := tn.d.ConfigureNode(ctx, contract.NodeConfig{Subnet: tn.subnet}); err != nil {
		t.Fatal(err)
	}
	if err := tn.d.Recover(ctx, []contract.NetworkStatus{*keep}); err != nil {
		t.Fatal(err)
	}
	// Before GC, a new container may be given the host port of a lost
	// one: the stale entry is replaced.
	tn.ids["new"] = true
	st, err = tn.d.Setup(ctx, contract.NetworkRequest{ContainerID: "new", Mode: contract.NetworkModeBridge,
		Ports: []contract.PortMapping{{Name: "http", ContainerPort: 81}}})
	if err != nil {
		t.Fatal(err)
	}
	if have, _ := tn.d.nat.list(); have[portKey{"tcp", st.Ports[0].HostPort}] != (natTarget{st.IP, 81}) {
		t.Errorf("stale entry not replaced: %v", have)
	}
	if err := tn.d.Teardown(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	if removed, err := tn.d.GC(ctx, []string{"keep"}); err != nil || fmt.Sprint(removed) != "[lost]" {
		t.Fatalf("GC = %v, %v", removed, err)
	}
	have, err = tn.d.nat.list()
	if err != nil || len(have) != 1 || have[portKey{"tcp", keep.Ports[0].HostPort}] != (natTarget{keep.IP, 80}) {
		t.Errorf("after GC: DNAT entries %v, %v", have, err)
	}
}

// TestDriver_ManyContainers sets up and tears down many containers with
// host ports on one driver and checks that nothing of them is left
// (BenchmarkSetupTeardown200 does the same with 200 and reports times).
func TestDriver_ManyContainers(t *testing.T) {
	tn := newTestNode(t, testSubnet())
	if tn.d.nat.missing != nil {
		t.Skipf("kernel without nf_tables: %v", tn.d.nat.missing)
	}
	setupTeardownMany(t, tn, 40, "many-")
	// And again with the same IDs: nothing left blocks them.
	setupTeardownMany(t, tn, 40, "many-")
}
