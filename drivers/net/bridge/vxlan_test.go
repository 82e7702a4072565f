//go:build linux

package bridge

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// fakeHost is a network namespace standing for a node, with one underlay
// interface "ul0".
type fakeHost struct {
	path     string
	underlay netip.Addr
	subnet   netip.Prefix
	d        *Driver
}

// TestDriver_VXLANTwoHosts runs two "nodes", each a namespace joined to the
// other by a veth (the underlay), each with its own driver, bridge and
// VXLAN device; a container on each reaches the other's over the overlay,
// and a peer no longer listed loses its route, neighbor and FDB entry.
func TestDriver_VXLANTwoHosts(t *testing.T) {
	requireNetns(t)
	ctx := context.Background()
	dir := t.TempDir()
	hosts := []*fakeHost{
		{path: filepath.Join(dir, "hostA"), underlay: netip.MustParseAddr("10.198.0.1"), subnet: netip.MustParsePrefix("10.199.201.0/24")},
		{path: filepath.Join(dir, "hostB"), underlay: netip.MustParseAddr("10.198.0.2"), subnet: netip.MustParsePrefix("10.199.202.0/24")},
	}
	for _, h := range hosts {
		if err := createNetns(h.path); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := removeNetns(h.path); err != nil {
				t.Error(err)
			}
		})
	}
	// The underlay: a veth between the two namespaces.
	nsA, err := netns.GetFromPath(hosts[0].path)
	if err != nil {
		t.Fatal(err)
	}
	defer nsA.Close()
	nsB, err := netns.GetFromPath(hosts[1].path)
	if err != nil {
		t.Fatal(err)
	}
	defer nsB.Close()
	hA, err := netlink.NewHandleAt(nsA, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer hA.Close()
	la := netlink.NewLinkAttrs()
	la.Name = "ul0"
	if err := hA.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "ul0", PeerNamespace: netlink.NsFd(nsB)}); err != nil {
		t.Fatal(err)
	}
	for i, ns := range []netns.NsHandle{nsA, nsB} {
		h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		ul, err := h.LinkByName("ul0")
		if err != nil {
			t.Fatal(err)
		}
		ip := hosts[i].underlay
		if err := h.AddrAdd(ul, &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(24, 32)}}); err != nil {
			t.Fatal(err)
		}
		for _, l := range []netlink.Link{ul, &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1}}} {
			if err := h.LinkSetUp(l); err != nil {
				t.Fatal(err)
			}
		}
	}

	cluster := netip.MustParsePrefix("10.199.0.0/16")
	for i, h := range hosts {
		d, err := New(Config{StateDir: t.TempDir(), HostNetns: h.path})
		if err != nil {
			t.Fatal(err)
		}
		h.d = d
		other := hosts[1-i]
		cfg := contract.NodeConfig{
			AgentID: h.path, Subnet: h.subnet, ClusterCIDR: cluster, Underlay: h.underlay,
			Peers: []contract.Peer{{AgentID: other.path, Underlay: other.underlay, Subnet: other.subnet}},
		}
		for range 2 { // idempotent
			if err := d.ConfigureNode(ctx, cfg); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() {
			if err := d.Teardown(ctx, "task"); err != nil {
				t.Error(err)
			}
			if err := d.RemoveNode(ctx); err != nil {
				t.Error(err)
			}
			d.Close()
		})
	}
	if hosts[0].d.nat.nft != "" {
		if err := exec.Command("nft", "list", "table", "ip", DefaultBridge).Run(); err == nil {
			t.Errorf("the NAT table of a fake host is in the test's own namespace")
		}
		if err := inNetns(hosts[0].path, exec.Command("nft", "list", "table", "ip", DefaultBridge).Run); err != nil {
			t.Errorf("no NAT table in the fake host: %v", err)
		}
	}
	if mtu := hosts[0].d.node.mtu; mtu != 1450 {
		t.Errorf("MTU over a 1500-byte underlay = %d, want 1450", mtu)
	}

	var sts []*contract.NetworkStatus
	for _, h := range hosts {
		st, err := h.d.Setup(ctx, contract.NetworkRequest{ContainerID: "task", Mode: contract.NetworkModeBridge})
		if err != nil {
			t.Fatal(err)
		}
		sts = append(sts, st)
	}
	t.Run("A to B", func(t *testing.T) {
		ln := listenIn(t, sts[1].Netns, hostPort(sts[1].IP, 0))
		roundTrip(t, ln, sts[0].Netns)
	})
	vx, err := hA.LinkByName(DefaultVXLAN)
	if err != nil {
		t.Fatal(err)
	}
	if st := vx.Attrs().Statistics; st == nil || st.TxPackets == 0 || st.RxPackets == 0 {
		t.Errorf("nothing went over %s: %+v", DefaultVXLAN, st)
	}
	t.Run("B to A", func(t *testing.T) {
		ln := listenIn(t, sts[0].Netns, hostPort(sts[0].IP, 0))
		roundTrip(t, ln, sts[1].Netns)
	})
	t.Run("host A to container B", func(t *testing.T) {
		ln := listenIn(t, sts[1].Netns, hostPort(sts[1].IP, 0))
		roundTrip(t, ln, hosts[0].path)
	})

	t.Run("peer removed", func(t *testing.T) {
		a := hosts[0]
		if err := a.d.ConfigureNode(ctx, contract.NodeConfig{Subnet: a.subnet, ClusterCIDR: cluster, Underlay: a.underlay}); err != nil {
			t.Fatal(err)
		}
		vx, err := hA.LinkByName(DefaultVXLAN)
		if err != nil {
			t.Fatal(err)
		}
		routes, _ := hA.RouteList(vx, unix.AF_INET)
		neighs, _ := hA.NeighList(vx.Attrs().Index, unix.AF_INET)
		fdb, _ := hA.NeighList(vx.Attrs().Index, unix.AF_BRIDGE)
		var stale []netlink.Neigh
		for _, n := range fdb {
			if n.IP != nil {
				stale = append(stale, n)
			}
		}
		if len(routes) != 0 || len(neighs) != 0 || len(stale) != 0 {
			t.Errorf("after removing the peer: routes %v neighbors %v fdb %v", routes, neighs, stale)
		}
		ln := listenIn(t, sts[1].Netns, hostPort(sts[1].IP, 0))
		err = inNetns(sts[0].Netns, func() error {
			c, err := (&net.Dialer{Timeout: 2 * time.Second}).Dial("tcp", ln.Addr().String())
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil {
			t.Errorf("B still reachable from A")
		}
	})
}
