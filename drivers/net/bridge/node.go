//go:build linux

package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/internal/netnsutil"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

// node is the node configuration in force.
type node struct {
	cfg         contract.NodeConfig
	bridgeIndex int
	mtu         int
}

// validateNode checks cfg on its own (no host state).
func validateNode(cfg contract.NodeConfig) error {
	s := cfg.Subnet
	if !s.IsValid() || !s.Addr().Is4() || s.Bits() > 30 || s != s.Masked() {
		return fmt.Errorf("subnet %s: want an IPv4 network of /30 or larger", s)
	}
	if cfg.ClusterCIDR.IsValid() && !(cfg.ClusterCIDR.Bits() <= s.Bits() && cfg.ClusterCIDR.Contains(s.Addr())) {
		return fmt.Errorf("subnet %s is not in the cluster CIDR %s", s, cfg.ClusterCIDR)
	}
	if len(cfg.Peers) > 0 && (!cfg.Underlay.IsValid() || !cfg.Underlay.Is4()) {
		return fmt.Errorf("peers without an IPv4 underlay address")
	}
	seen := []netip.Prefix{s}
	for _, p := range cfg.Peers {
		ps := p.Subnet
		if !ps.IsValid() || !ps.Addr().Is4() || ps != ps.Masked() || !p.Underlay.Is4() {
			return fmt.Errorf("peer %q: bad subnet %s or underlay %s", p.AgentID, ps, p.Underlay)
		}
		for _, o := range seen {
			if o.Overlaps(ps) {
				return fmt.Errorf("peer %q: subnet %s overlaps %s", p.AgentID, ps, o)
			}
		}
		seen = append(seen, ps)
	}
	return nil
}

// ConfigureNode implements contract.NetDriver: it ensures the bridge with
// the gateway address, up and forwarding; and, when cfg.Underlay is set,
// the VXLAN device with a route, a neighbor and a forwarding entry for each
// peer, removing those of peers no longer listed. Without an underlay the
// VXLAN device is removed.
func (d *Driver) ConfigureNode(ctx context.Context, cfg contract.NodeConfig) error {
	if err := validateNode(cfg); err != nil {
		return fmt.Errorf("bridge: configure node: %w", err)
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if err := d.configureNode(cfg); err != nil {
		return fmt.Errorf("bridge: configure node: %w", err)
	}
	return nil
}

func (d *Driver) configureNode(cfg contract.NodeConfig) error {
	d.mu.Lock()
	old := d.pool.Subnet
	if old.IsValid() && old != cfg.Subnet {
		if len(d.pool.Leases) > 0 {
			d.mu.Unlock()
			return fmt.Errorf("subnet %s → %s while %d containers hold addresses: %w", old, cfg.Subnet, len(d.pool.Leases), contract.ErrConflict)
		}
	}
	if old != cfg.Subnet {
		d.pool.Subnet, d.pool.Next = cfg.Subnet, netip.Addr{}
		if err := d.pool.save(d.cfg.StateDir); err != nil {
			d.pool.Subnet = old
			d.mu.Unlock()
			return err
		}
	}
	d.mu.Unlock()

	mtu, err := d.mtu(cfg)
	if err != nil {
		return err
	}
	br, err := d.ensureBridge(cfg.Subnet, mtu)
	if err != nil {
		return err
	}
	if err := d.nat.ensure(d.cfg.Bridge, cfg.Subnet, cfg.ClusterCIDR); err != nil {
		return err
	}
	if cfg.Underlay.IsValid() {
		if err := d.ensureVXLAN(cfg, mtu); err != nil {
			return err
		}
	} else if err := d.deleteLink(d.cfg.VXLAN); err != nil {
		return err
	}
	d.mu.Lock()
	d.node = &node{cfg: cfg, bridgeIndex: br.Attrs().Index, mtu: mtu}
	d.mu.Unlock()
	return nil
}

// mtu returns the MTU for cfg (see Config.MTU).
func (d *Driver) mtu(cfg contract.NodeConfig) (int, error) {
	if d.cfg.MTU > 0 {
		return d.cfg.MTU, nil
	}
	// Keep the MTU of a bridge made earlier while containers are on it:
	// their veths have it.
	d.mu.Lock()
	busy := len(d.pool.Leases) > 0
	d.mu.Unlock()
	if l, err := d.host.LinkByName(d.cfg.Bridge); err == nil && busy {
		return l.Attrs().MTU, nil
	}
	if cfg.Underlay.IsValid() {
		if l := d.linkWithAddr(cfg.Underlay); l != nil {
			return min(defaultVXLANMTU, l.Attrs().MTU-vxlanOverhead), nil
		}
		return defaultVXLANMTU, nil
	}
	routes, err := netnsutil.Dump(func() ([]netlink.Route, error) {
		return d.host.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return 0, fmt.Errorf("routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			if l, err := d.host.LinkByIndex(r.LinkIndex); err == nil {
				return l.Attrs().MTU, nil
			}
		}
	}
	return 1500, nil
}

func (d *Driver) linkWithAddr(a netip.Addr) netlink.Link {
	addrs, err := netnsutil.Dump(func() ([]netlink.Addr, error) { return d.host.AddrList(nil, unix.AF_INET) })
	if err != nil {
		return nil
	}
	for _, x := range addrs {
		if ip, ok := netip.AddrFromSlice(x.IP); ok && ip.Unmap() == a {
			if l, err := d.host.LinkByIndex(x.LinkIndex); err == nil {
				return l
			}
		}
	}
	return nil
}

// ensureBridge makes the bridge exist, with exactly the gateway address of
// subnet, the MTU, up and forwarding.
func (d *Driver) ensureBridge(subnet netip.Prefix, mtu int) (netlink.Link, error) {
	name := d.cfg.Bridge
	gw := gateway(subnet)
	br, err := d.host.LinkByName(name)
	switch {
	case err == nil && br.Type() != "bridge":
		return nil, fmt.Errorf("%s exists and is a %s, not a bridge", name, br.Type())
	case err != nil && !isNotFound(err):
		return nil, fmt.Errorf("%s: %w", name, err)
	case err != nil:
		la := netlink.NewLinkAttrs()
		la.Name = name
		la.MTU = mtu
		// A fixed MAC: otherwise the bridge takes the lowest of its
		// ports' and changes as containers come and go.
		la.HardwareAddr = mac(macBridge, gw)
		if err := d.host.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
			return nil, fmt.Errorf("create %s: %w", name, err)
		}
		if br, err = d.host.LinkByName(name); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if br.Attrs().MTU != mtu {
		if err := d.host.LinkSetMTU(br, mtu); err != nil {
			return nil, fmt.Errorf("%s mtu: %w", name, err)
		}
	}
	want := &net.IPNet{IP: gw.AsSlice(), Mask: net.CIDRMask(subnet.Bits(), 32)}
	addrs, err := netnsutil.Dump(func() ([]netlink.Addr, error) { return d.host.AddrList(br, unix.AF_INET) })
	if err != nil {
		return nil, fmt.Errorf("%s addresses: %w", name, err)
	}
	have := false
	for _, a := range addrs {
		if a.IPNet.String() == want.String() {
			have = true
			continue
		}
		if err := d.host.AddrDel(br, &a); err != nil {
			return nil, fmt.Errorf("%s: remove %s: %w", name, a.IPNet, err)
		}
	}
	if !have {
		if err := d.host.AddrAdd(br, &netlink.Addr{IPNet: want}); err != nil {
			return nil, fmt.Errorf("%s: add %s: %w", name, want, err)
		}
	}
	if err := d.host.LinkSetUp(br); err != nil {
		return nil, fmt.Errorf("%s up: %w", name, err)
	}
	if err := setForwarding(d.cfg.HostNetns, name); err != nil {
		return nil, fmt.Errorf("%s forwarding: %w", name, err)
	}
	return br, nil
}

// vtep returns the next hop standing for a node with subnet s on the
// overlay (the subnet's network address) and its VXLAN device's MAC.
func vtep(s netip.Prefix) (netip.Addr, net.HardwareAddr) {
	return s.Masked().Addr(), mac(macVTEP, s.Masked().Addr())
}

func (d *Driver) ensureVXLAN(cfg contract.NodeConfig, mtu int) error {
	name := d.cfg.VXLAN
	_, ourMAC := vtep(cfg.Subnet)
	la := netlink.NewLinkAttrs()
	la.Name = name
	la.MTU = mtu
	la.HardwareAddr = ourMAC
	want := &netlink.Vxlan{
		LinkAttrs: la,
		VxlanId:   d.cfg.VNI,
		SrcAddr:   cfg.Underlay.AsSlice(),
		Port:      d.cfg.VXLANPort,
		Learning:  false,
	}
	l, err := d.host.LinkByName(name)
	if err == nil {
		vx, ok := l.(*netlink.Vxlan)
		if !ok || vx.VxlanId != want.VxlanId || !vx.SrcAddr.Equal(want.SrcAddr) || vx.Port != want.Port || vx.Learning ||
			vx.HardwareAddr.String() != ourMAC.String() || vx.MTU != mtu {
			d.log.Info("configure node: replacing VXLAN device", "name", name)
			if err := d.host.LinkDel(l); err != nil {
				return fmt.Errorf("delete %s: %w", name, err)
			}
			err = netlink.LinkNotFoundError{}
		}
	}
	if err != nil {
		if !isNotFound(err) {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := d.host.LinkAdd(want); err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		if l, err = d.host.LinkByName(name); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := d.host.LinkSetUp(l); err != nil {
		return fmt.Errorf("%s up: %w", name, err)
	}
	if err := setForwarding(d.cfg.HostNetns, name); err != nil {
		return fmt.Errorf("%s forwarding: %w", name, err)
	}
	return d.syncPeers(l.Attrs().Index, cfg)
}

// syncPeers makes the VXLAN device's routes, neighbors and forwarding
// entries exactly those of cfg.Peers.
func (d *Driver) syncPeers(vx int, cfg contract.NodeConfig) error {
	type peer struct {
		hop      netip.Addr
		mac      net.HardwareAddr
		underlay netip.Addr
	}
	wantRoute := map[netip.Prefix]peer{}
	wantNeigh := map[netip.Addr]string{} // hop → MAC
	wantFDB := map[string]netip.Addr{}   // MAC → underlay
	for _, p := range cfg.Peers {
		hop, m := vtep(p.Subnet)
		wantRoute[p.Subnet] = peer{hop, m, p.Underlay}
		wantNeigh[hop] = m.String()
		wantFDB[m.String()] = p.Underlay
	}
	var errs []error

	// Forwarding entries first, so that a route never leads to a MAC the
	// device cannot send.
	fdb, err := netnsutil.Dump(func() ([]netlink.Neigh, error) { return d.host.NeighList(vx, unix.AF_BRIDGE) })
	if err != nil {
		return fmt.Errorf("fdb: %w", err)
	}
	for _, n := range fdb {
		u, ok := wantFDB[n.HardwareAddr.String()]
		if ip, _ := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == u {
			continue
		}
		if n.HardwareAddr.String() == "00:00:00:00:00:00" && n.IP == nil {
			continue
		}
		n.Family = unix.AF_BRIDGE
		n.Flags |= netlink.NTF_SELF
		if err := d.host.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("fdb del %s: %w", n.HardwareAddr, err))
		}
	}
	for _, p := range wantRoute {
		err := d.host.NeighSet(&netlink.Neigh{
			LinkIndex:    vx,
			Family:       unix.AF_BRIDGE,
			State:        netlink.NUD_PERMANENT,
			Flags:        netlink.NTF_SELF,
			IP:           p.underlay.AsSlice(),
			HardwareAddr: p.mac,
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("fdb %s dst %s: %w", p.mac, p.underlay, err))
		}
	}

	neighs, err := netnsutil.Dump(func() ([]netlink.Neigh, error) { return d.host.NeighList(vx, unix.AF_INET) })
	if err != nil {
		return fmt.Errorf("neighbors: %w", err)
	}
	for _, n := range neighs {
		ip, _ := netip.AddrFromSlice(n.IP)
		if m, ok := wantNeigh[ip.Unmap()]; ok && m == n.HardwareAddr.String() {
			continue
		}
		if err := d.host.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("neighbor del %s: %w", n.IP, err))
		}
	}
	for _, p := range wantRoute {
		err := d.host.NeighSet(&netlink.Neigh{
			LinkIndex:    vx,
			Family:       unix.AF_INET,
			State:        netlink.NUD_PERMANENT,
			IP:           p.hop.AsSlice(),
			HardwareAddr: p.mac,
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("neighbor %s: %w", p.hop, err))
		}
	}

	routes, err := netnsutil.Dump(func() ([]netlink.Route, error) {
		return d.host.RouteListFiltered(unix.AF_INET, &netlink.Route{LinkIndex: vx}, netlink.RT_FILTER_OIF)
	})
	if err != nil {
		return fmt.Errorf("routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		dst, _ := netip.AddrFromSlice(r.Dst.IP)
		bits, _ := r.Dst.Mask.Size()
		if _, ok := wantRoute[netip.PrefixFrom(dst.Unmap(), bits)]; ok {
			continue
		}
		if err := d.host.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("route del %s: %w", r.Dst, err))
		}
	}
	src := gateway(cfg.Subnet).AsSlice()
	for s, p := range wantRoute {
		err := d.host.RouteReplace(&netlink.Route{
			LinkIndex: vx,
			Dst:       &net.IPNet{IP: s.Addr().AsSlice(), Mask: net.CIDRMask(s.Bits(), 32)},
			Gw:        p.hop.AsSlice(),
			Src:       src,
			Flags:     int(netlink.FLAG_ONLINK),
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("route %s: %w", s, err))
		}
	}
	return errors.Join(errs...)
}

func (d *Driver) deleteLink(name string) error {
	l, err := d.host.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := d.host.LinkDel(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// RemoveNode implements contract.NetDriver: it deletes the bridge, the
// VXLAN device (with their addresses, routes, neighbors and forwarding
// entries) and the NAT table and forgets the node configuration. It
// refuses with ErrConflict, changing nothing, while containers hold
// addresses. It is idempotent. The subnet stays in the address pool's
// state: ConfigureNode with the same subnet brings the node back.
func (d *Driver) RemoveNode(ctx context.Context) error {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.Lock()
	n := len(d.pool.Leases)
	d.mu.Unlock()
	if n > 0 {
		return fmt.Errorf("bridge: remove node: %d containers hold addresses: %w", n, contract.ErrConflict)
	}
	if err := errors.Join(d.deleteLink(d.cfg.VXLAN), d.deleteLink(d.cfg.Bridge), d.nat.remove()); err != nil {
		return fmt.Errorf("bridge: remove node: %w", err)
	}
	d.mu.Lock()
	d.node = nil
	d.mu.Unlock()
	return nil
}
