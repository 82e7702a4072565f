//go:build linux

package bridge

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/internal/netnsutil"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

// fakeHost is a network namespace standing for a node, with one underlay
// interface "ul0".
type fakeHost struct {
	path     string
	underlay netip.Addr
	subnet   netip.Prefix
	d        *Driver
	cfg      contract.NodeConfig
	nl       *netlink.Handle // netlink in the node's namespace
}

// twoHosts makes two "nodes", each a namespace joined to the other by a
// veth (the underlay, "ul0" at 10.198.0.1 and .2), each with its own
// driver, bridge and VXLAN device configured with the other as its peer
// (twice: ConfigureNode is idempotent) in cluster 10.199.0.0/16. At the
// end of the test every container on them is torn down (GC) and the nodes
// and namespaces removed.
func twoHosts(tb testing.TB) []*fakeHost {
	tb.Helper()
	requireNetns(tb)
	ctx := context.Background()
	dir := tb.TempDir()
	hosts := []*fakeHost{
		{path: filepath.Join(dir, "hostA"), underlay: netip.MustParseAddr("10.198.0.1"), subnet: netip.MustParsePrefix("10.199.201.0/24")},
		{path: filepath.Join(dir, "hostB"), underlay: netip.MustParseAddr("10.198.0.2"), subnet: netip.MustParsePrefix("10.199.202.0/24")},
	}
	for _, h := range hosts {
		if err := createNetns(h.path); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			if err := netnsutil.RemoveNetns(h.path); err != nil {
				tb.Error(err)
			}
		})
	}
	// The underlay: a veth between the two namespaces.
	for i, h := range hosts {
		ns, err := netns.GetFromPath(h.path)
		if err != nil {
			tb.Fatal(err)
		}
		defer ns.Close()
		if h.nl, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(h.nl.Close)
		if i == 1 {
			la := netlink.NewLinkAttrs()
			la.Name = "ul0"
			if err := hosts[0].nl.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "ul0", PeerNamespace: netlink.NsFd(ns)}); err != nil {
				tb.Fatal(err)
			}
		}
	}
	for _, h := range hosts {
		ul, err := h.nl.LinkByName("ul0")
		if err != nil {
			tb.Fatal(err)
		}
		if err := h.nl.AddrAdd(ul, &netlink.Addr{IPNet: &net.IPNet{IP: h.underlay.AsSlice(), Mask: net.CIDRMask(24, 32)}}); err != nil {
			tb.Fatal(err)
		}
		for _, l := range []netlink.Link{ul, &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1}}} {
			if err := h.nl.LinkSetUp(l); err != nil {
				tb.Fatal(err)
			}
		}
	}

	cluster := netip.MustParsePrefix("10.199.0.0/16")
	for i, h := range hosts {
		d, err := New(Config{StateDir: tb.TempDir(), HostNetns: h.path})
		if err != nil {
			tb.Fatal(err)
		}
		h.d = d
		other := hosts[1-i]
		h.cfg = contract.NodeConfig{
			AgentID: h.path, Subnet: h.subnet, ClusterCIDR: cluster, Underlay: h.underlay,
			Peers: []contract.Peer{{AgentID: other.path, Underlay: other.underlay, Subnet: other.subnet}},
		}
		for range 2 { // idempotent
			if err := d.ConfigureNode(ctx, h.cfg); err != nil {
				tb.Fatal(err)
			}
		}
		tb.Cleanup(func() {
			if _, err := d.GC(ctx, nil); err != nil {
				tb.Error(err)
			}
			if err := d.RemoveNode(ctx); err != nil {
				tb.Error(err)
			}
			d.Close()
		})
	}
	return hosts
}

// TestDriver_VXLANTwoHosts runs two "nodes" (twoHosts); a container on
// each reaches the other's over the overlay, and a peer no longer listed
// loses its route, neighbor and FDB entry.
func TestDriver_VXLANTwoHosts(t *testing.T) {
	hosts := twoHosts(t)
	ctx := context.Background()
	cluster := hosts[0].cfg.ClusterCIDR
	hA := hosts[0].nl
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
		// The first connection right after Setup needs no retransmit: a
		// packet sent before the kernel activated the new links (B's
		// bridge got its first port) was dropped, costing 1 s.
		for _, st := range sts {
			if n := synRetrans(t, st.Netns); n != 0 {
				t.Errorf("%s: %d SYN or SYN-ACK retransmits", st.Netns, n)
			}
		}
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
		routes, _ := netnsutil.Dump(func() ([]netlink.Route, error) { return hA.RouteList(vx, unix.AF_INET) })
		neighs, _ := netnsutil.Dump(func() ([]netlink.Neigh, error) { return hA.NeighList(vx.Attrs().Index, unix.AF_INET) })
		fdb, _ := netnsutil.Dump(func() ([]netlink.Neigh, error) { return hA.NeighList(vx.Attrs().Index, unix.AF_BRIDGE) })
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
		err = netnsutil.InNetns(sts[0].Netns, func() error {
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

// synRetrans returns the TCPSynRetrans counter (SYNs and SYN-ACKs sent
// again) of the namespace at path.
func synRetrans(tb testing.TB, path string) int {
	tb.Helper()
	var b []byte
	err := netnsutil.InNetns(path, func() (err error) {
		b, err = os.ReadFile("/proc/thread-self/net/netstat")
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j, name := range names {
			if names[0] == "TcpExt:" && name == "TCPSynRetrans" && j < len(values) {
				n, err := strconv.Atoi(values[j])
				if err != nil {
					tb.Fatal(err)
				}
				return n
			}
		}
	}
	tb.Fatal("no TcpExt TCPSynRetrans in netstat")
	return 0
}
