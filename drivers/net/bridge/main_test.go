//go:build linux

package bridge

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/internal/netnsutil"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

// requireNetns skips the test when the kernel or the privileges do not
// allow network namespaces, veths and bridges, saying which is missing.
func requireNetns(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root (network namespaces, veths, bridges)")
	}
	path := filepath.Join(tb.TempDir(), "probe")
	if err := createNetns(path); err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
			tb.Skipf("network namespaces unavailable: %v", err)
		}
		tb.Fatalf("probe netns: %v", err)
	}
	if err := netnsutil.RemoveNetns(path); err != nil {
		tb.Fatal(err)
	}
}

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// subnetSeq gives each test in this package its own /24 of 10.199/16.
var subnetSeq atomic.Uint32

// testSubnet skips the /24s with an address on the host (another test
// process's node, e.g. a benchmark run at the same time).
func testSubnet() netip.Prefix {
	addrs, _ := netnsutil.Dump(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, unix.AF_INET) })
	var p netip.Prefix
	for range 250 {
		n := (subnetSeq.Add(1) + uint32(os.Getpid())) % 250
		p = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 199, byte(n + 1), 0}), 24)
		if !slices.ContainsFunc(addrs, func(a netlink.Addr) bool {
			ip, _ := netip.AddrFromSlice(a.IP)
			return p.Contains(ip.Unmap())
		}) {
			break
		}
	}
	return p
}

// testNode is a driver on a test-unique bridge, checked for leftovers when
// the test ends.
type testNode struct {
	tb     testing.TB
	d      *Driver
	cfg    Config
	subnet netip.Prefix
	ids    map[string]bool // every container ID the test used
}

// newTestNode returns a configured driver on a fresh bridge dcostb<hex> and
// subnet. At the end of the test it tears down every container the test
// used, removes the node and fails on anything left behind.
func newTestNode(tb testing.TB, subnet netip.Prefix) *testNode {
	tb.Helper()
	requireNetns(tb)
	cfg := Config{
		StateDir: tb.TempDir(),
		Bridge:   "dcostb" + randHex(8),
		VXLAN:    "dcostx" + randHex(8),
	}
	tn := &testNode{tb: tb, cfg: cfg, subnet: subnet, ids: map[string]bool{}}
	tn.d = tn.open()
	if err := tn.d.ConfigureNode(context.Background(), contract.NodeConfig{AgentID: "a1", Subnet: subnet}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx := context.Background()
		d := tn.d
		for id := range tn.ids {
			if err := d.Teardown(ctx, id); err != nil {
				tb.Errorf("cleanup: %v", err)
			}
		}
		if _, err := d.GC(ctx, nil); err != nil {
			tb.Errorf("cleanup: %v", err)
		}
		if err := d.RemoveNode(ctx); err != nil {
			tb.Errorf("cleanup: %v", err)
		}
		d.Close()
		checkNothingLeft(tb, cfg, subnet, tn.ids)
	})
	return tn
}

// open returns a new driver on the node's state dir and bridge (as after a
// restart).
func (tn *testNode) open() *Driver {
	d, err := New(tn.cfg)
	if err != nil {
		tn.tb.Fatal(err)
	}
	return d
}

func (tn *testNode) setup(id string) *contract.NetworkStatus {
	tn.tb.Helper()
	tn.ids[id] = true
	st, err := tn.d.Setup(context.Background(), contract.NetworkRequest{ContainerID: id, Mode: contract.NetworkModeBridge})
	if err != nil {
		tn.tb.Fatal(err)
	}
	return st
}

// checkNothingLeft fails if any link, address, namespace or mount of the
// test node is left on the host.
func checkNothingLeft(tb testing.TB, cfg Config, subnet netip.Prefix, ids map[string]bool) {
	tb.Helper()
	want := map[string]bool{cfg.Bridge: true, cfg.VXLAN: true}
	for id := range ids {
		want[vethName(cfg.Bridge, id)] = true
	}
	links, err := netnsutil.Dump(netlink.LinkList)
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range links {
		if want[l.Attrs().Name] {
			tb.Errorf("left behind: link %s (%s)", l.Attrs().Name, l.Type())
		}
	}
	addrs, err := netnsutil.Dump(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, unix.AF_INET) })
	if err != nil {
		tb.Fatal(err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && subnet.Contains(ip.Unmap()) {
			tb.Errorf("left behind: address %s on link %d", a.IPNet, a.LinkIndex)
		}
	}
	ents, err := os.ReadDir(nsDir(cfg.StateDir))
	if err != nil && !os.IsNotExist(err) {
		tb.Fatal(err)
	}
	for _, e := range ents {
		tb.Errorf("left behind: namespace file %s", e.Name())
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), cfg.StateDir) {
			tb.Errorf("left behind: mount %s", sc.Text())
		}
	}
	if n, err := newNAT(cfg.Bridge, ""); err != nil {
		tb.Fatal(err)
	} else {
		if ok, err := n.exists(); err != nil || ok {
			tb.Errorf("left behind: nftables table ip %s (%v)", cfg.Bridge, err)
		}
		n.close()
	}
	// The driver never uses /run/netns; nothing of it may appear there.
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			if id, ok := nsID(e.Name()); ok && ids[id] {
				tb.Errorf("left behind: /run/netns/%s", e.Name())
			}
		}
	}
}

// listenIn listens on TCP addr inside the namespace at path.
func listenIn(tb testing.TB, path string, addr string) net.Listener {
	tb.Helper()
	var ln net.Listener
	err := netnsutil.InNetns(path, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		tb.Fatalf("listen in %s: %v", path, err)
	}
	tb.Cleanup(func() { ln.Close() })
	return ln
}

// dialIn connects to addr from inside the namespace at path ("" = here).
func dialIn(path, addr string) (net.Conn, error) {
	var c net.Conn
	err := netnsutil.InNetns(path, func() (err error) {
		c, err = net.Dial("tcp", addr)
		return err
	})
	return c, err
}

// roundTrip accepts one connection on ln, dials it from inside path and
// checks that bytes go both ways.
func roundTrip(tb testing.TB, ln net.Listener, fromNetns string) {
	tb.Helper()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		buf := make([]byte, 4)
		if _, err := c.Read(buf); err != nil {
			done <- err
			return
		}
		_, err = c.Write([]byte("pong"))
		done <- err
	}()
	c, err := dialIn(fromNetns, ln.Addr().String())
	if err != nil {
		tb.Fatalf("dial %s from %q: %v", ln.Addr(), fromNetns, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := c.Read(buf); err != nil || string(buf) != "pong" {
		tb.Fatalf("read %q: %v", buf, err)
	}
	if err := <-done; err != nil {
		tb.Fatal(err)
	}
}

func hostPort(a netip.Addr, port int) string {
	return net.JoinHostPort(a.String(), fmt.Sprint(port))
}

// inside returns eth0's addresses and the default routes of the namespace
// at path.
func inside(tb testing.TB, path string) (addrs []netlink.Addr, routes []netlink.Route, up bool) {
	tb.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		tb.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		tb.Fatal(err)
	}
	if addrs, err = netnsutil.Dump(func() ([]netlink.Addr, error) { return h.AddrList(l, unix.AF_INET) }); err != nil {
		tb.Fatal(err)
	}
	if routes, err = netnsutil.Dump(func() ([]netlink.Route, error) { return h.RouteList(l, unix.AF_INET) }); err != nil {
		tb.Fatal(err)
	}
	return addrs, routes, l.Attrs().Flags&net.FlagUp != 0
}

// setupTeardownMany sets up n bridge-mode containers (IDs prefix0…), each
// with one host port picked by the driver, then tears them all down,
// checks that nothing of them is left on the node (checkNodeClean) and
// returns each Setup's and Teardown's time.
func setupTeardownMany(tb testing.TB, tn *testNode, n int, prefix string) (setups, teardowns []time.Duration) {
	tb.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprint(prefix, i)
		tn.ids[ids[i]] = true
	}
	seen := map[netip.Addr]bool{}
	for _, id := range ids {
		t0 := time.Now()
		st, err := tn.d.Setup(ctx, contract.NetworkRequest{ContainerID: id, Mode: contract.NetworkModeBridge,
			Ports: []contract.PortMapping{{Name: "http", ContainerPort: 80}}})
		setups = append(setups, time.Since(t0))
		if err != nil {
			tb.Fatal(err)
		}
		if seen[st.IP] {
			tb.Fatalf("%s handed out twice", st.IP)
		}
		seen[st.IP] = true
	}
	if have, err := tn.d.nat.list(); err != nil || len(have) != n {
		tb.Fatalf("%d DNAT entries (%v), want %d", len(have), err, n)
	}
	for _, id := range ids {
		t0 := time.Now()
		err := tn.d.Teardown(ctx, id)
		teardowns = append(teardowns, time.Since(t0))
		if err != nil {
			tb.Fatal(err)
		}
	}
	checkNodeClean(tb, tn, ids)
	return setups, teardowns
}

// checkNodeClean fails if anything of containers ids is left on tn's node,
// which stays configured: a veth (by name, or any on the bridge), a
// namespace file or bind mount under the state dir, an address of the
// subnet other than the bridge's gateway, a route to or via the subnet
// other than the bridge's own, an address lease, a DNAT entry, or a NAT
// rule other than the node's four.
func checkNodeClean(tb testing.TB, tn *testNode, ids []string) {
	tb.Helper()
	h := tn.d.host
	br, err := h.LinkByName(tn.cfg.Bridge)
	if err != nil {
		tb.Fatal(err)
	}
	names := map[string]bool{}
	for _, id := range ids {
		names[vethName(tn.cfg.Bridge, id)] = true
	}
	links, err := netnsutil.Dump(h.LinkList)
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range links {
		if a := l.Attrs(); names[a.Name] || a.MasterIndex == br.Attrs().Index {
			tb.Errorf("left behind: link %s (%s)", a.Name, l.Type())
		}
	}
	addrs, err := netnsutil.Dump(func() ([]netlink.Addr, error) { return h.AddrList(nil, unix.AF_INET) })
	if err != nil {
		tb.Fatal(err)
	}
	gw := gateway(tn.subnet)
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.IP)
		if tn.subnet.Contains(ip.Unmap()) && (ip.Unmap() != gw || a.LinkIndex != br.Attrs().Index) {
			tb.Errorf("left behind: address %s on link %d", a.IPNet, a.LinkIndex)
		}
	}
	routes, err := netnsutil.Dump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range routes {
		var dst, via netip.Addr
		if r.Dst != nil {
			dst, _ = netip.AddrFromSlice(r.Dst.IP)
		}
		via, _ = netip.AddrFromSlice(r.Gw)
		if (tn.subnet.Contains(dst.Unmap()) || tn.subnet.Contains(via.Unmap())) && r.LinkIndex != br.Attrs().Index {
			tb.Errorf("left behind: route %s", r)
		}
	}
	ents, err := os.ReadDir(nsDir(tn.cfg.StateDir))
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range ents {
		tb.Errorf("left behind: namespace file %s", e.Name())
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(mi), "\n") {
		if strings.Contains(line, nsDir(tn.cfg.StateDir)) {
			tb.Errorf("left behind: mount %s", line)
		}
	}
	tn.d.mu.Lock()
	leases, ports, held := len(tn.d.pool.Leases), len(tn.d.ports), len(tn.d.held)
	tn.d.mu.Unlock()
	if leases != 0 || ports != 0 || held != 0 {
		tb.Errorf("left behind: %d address leases, %d host port reservations, %d placeholders", leases, ports, held)
	}
	if have, err := tn.d.nat.list(); err != nil || len(have) != 0 {
		tb.Errorf("left behind: DNAT entries %v (%v)", have, err)
	}
	if rules, err := natRules(tn.d.nat); err != nil || fmt.Sprint(rules) != fmt.Sprint(nodeRules) {
		tb.Errorf("NAT rules per chain: %v (%v), want the node's %v", rules, err, nodeRules)
	}
}
