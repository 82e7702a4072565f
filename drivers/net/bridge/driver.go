//go:build linux

package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/internal/netnsutil"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

// Defaults of Config.
const (
	DefaultBridge    = "dcos0"
	DefaultVXLAN     = "dcos-vx"
	DefaultVNI       = 88
	DefaultVXLANPort = 4789
	// vxlanOverhead is what VXLAN over IPv4 adds to a frame (outer IP 20,
	// UDP 8, VXLAN 8, inner Ethernet 14).
	vxlanOverhead = 50
	// defaultVXLANMTU is the MTU with VXLAN on a 1500-byte underlay.
	defaultVXLANMTU = 1450
)

// Host ports picked for a port mapping with HostPort 0 come from this range
// (Mesos's default "ports" resource).
const (
	portRangeFirst = 31000
	portRangeLast  = 32000
)

// containerIf is the container's interface name inside its namespace.
const containerIf = "eth0"

// Config configures a Driver.
type Config struct {
	// StateDir is the driver's own directory: ipam.json and netns/, where
	// the containers' namespaces are bind-mounted. Created if missing.
	StateDir string
	// Bridge is the node's bridge; DefaultBridge if empty. At most 15
	// bytes; it should start with "dcos".
	Bridge string
	// VXLAN is the node's VXLAN device; DefaultVXLAN if empty.
	VXLAN string
	// VNI and VXLANPort are the VXLAN network identifier and UDP port;
	// DefaultVNI and DefaultVXLANPort if 0. Every node must agree.
	VNI, VXLANPort int
	// MTU is the bridge's, veths' and VXLAN device's MTU. If 0: with VXLAN
	// (NodeConfig.Underlay set), the underlay device's MTU minus 50, at
	// most 1450; without, the MTU of the device of the default route
	// (1500 if there is none).
	MTU int
	// HostNetns, if set, is the path of the network namespace the driver
	// treats as the node's (bridge, VXLAN device, host-side veths);
	// empty means the driver's own. Tests use it to run several "nodes"
	// on one machine.
	HostNetns string
	// Logger receives the driver's logs; nil discards them.
	Logger *slog.Logger
}

// Driver is the bridge network driver. Create it with New; it implements
// contract.NetDriver. Its methods are safe for concurrent use; calls that
// change the node (Setup, Teardown, ConfigureNode, Recover, GC,
// RemoveNode) are serialized.
type Driver struct {
	cfg  Config
	log  *slog.Logger
	host *netlink.Handle // netlink in the node's namespace
	nat  *nat

	opMu sync.Mutex // serializes changes

	mu         sync.Mutex // guards the fields below
	node       *node      // nil before ConfigureNode
	pool       *pool
	containers map[string]*contract.NetworkStatus
	ports      map[portKey]string // reserved host port → container ID
	// held are the placeholder sockets (hostport.go) of bridge-mode
	// containers' host ports.
	held map[portKey]int
}

var _ contract.NetDriver = (*Driver)(nil)

// portKey is a reserved host port.
type portKey struct {
	proto string
	port  uint16
}

// New returns a driver with the address pool persisted in cfg.StateDir.
// It touches nothing on the node until ConfigureNode or Setup. Close
// releases its netlink socket.
func New(cfg Config) (*Driver, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("bridge: no state dir")
	}
	if cfg.Bridge == "" {
		cfg.Bridge = DefaultBridge
	}
	if cfg.VXLAN == "" {
		cfg.VXLAN = DefaultVXLAN
	}
	if cfg.VNI == 0 {
		cfg.VNI = DefaultVNI
	}
	if cfg.VXLANPort == 0 {
		cfg.VXLANPort = DefaultVXLANPort
	}
	for _, n := range []string{cfg.Bridge, cfg.VXLAN} {
		if len(n) > unix.IFNAMSIZ-1 || strings.ContainsAny(n, "/ ") {
			return nil, fmt.Errorf("bridge: bad interface name %q", n)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(nsDir(cfg.StateDir), 0o700); err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	p, err := loadPool(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	var h *netlink.Handle
	if cfg.HostNetns != "" {
		ns, err := netns.GetFromPath(cfg.HostNetns)
		if err != nil {
			return nil, fmt.Errorf("bridge: host netns: %w", err)
		}
		h, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
		ns.Close()
		if err != nil {
			return nil, fmt.Errorf("bridge: netlink: %w", err)
		}
	} else if h, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
		return nil, fmt.Errorf("bridge: netlink: %w", err)
	}
	n, err := newNAT(cfg.Bridge, cfg.HostNetns)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("bridge: host netns: %w", err)
	}
	return &Driver{
		cfg:        cfg,
		log:        log,
		host:       h,
		nat:        n,
		pool:       p,
		containers: map[string]*contract.NetworkStatus{},
		ports:      map[portKey]string{},
		held:       map[portKey]int{},
	}, nil
}

// Close releases the driver's netlink socket, namespace handle and host
// port placeholders, as the exit of the driver's process would. It leaves
// everything else on the node as it is (containers keep their network and
// DNAT entries; Recover holds their ports again); the driver must not be
// used afterwards.
func (d *Driver) Close() error {
	d.host.Close()
	d.nat.close()
	d.mu.Lock()
	d.unholdPortsLocked(slices.Collect(maps.Keys(d.held)))
	d.mu.Unlock()
	return nil
}

func (d *Driver) nsPath(id string) string {
	return filepath.Join(nsDir(d.cfg.StateDir), nsFile(id))
}

// Setup implements contract.NetDriver. Bridge-mode port mappings are DNAT
// entries in the node's nftables table (see nat), each with a placeholder
// socket holding the port on the node (hostport.go); a port another socket
// of the node has fails with a *portInUseError (ErrConflict) before
// anything is made. On a kernel without nf_tables they return
// ErrNotSupported.
func (d *Driver) Setup(ctx context.Context, req contract.NetworkRequest) (*contract.NetworkStatus, error) {
	id := req.ContainerID
	if id == "" {
		return nil, errors.New("bridge: setup: empty container ID")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.Lock()
	_, dup := d.containers[id]
	d.mu.Unlock()
	if dup {
		return nil, fmt.Errorf("bridge: setup %q: already set up: %w", id, contract.ErrConflict)
	}
	var st *contract.NetworkStatus
	var err error
	switch req.Mode {
	case contract.NetworkModeHost:
		st, err = d.setupHost(req)
	case contract.NetworkModeBridge:
		st, err = d.setupBridge(req)
	default:
		err = fmt.Errorf("mode %q: %w", req.Mode, contract.ErrNotSupported)
	}
	if err != nil {
		return nil, fmt.Errorf("bridge: setup %q: %w", id, err)
	}
	d.mu.Lock()
	d.containers[id] = st
	d.mu.Unlock()
	return cloneStatus(st), nil
}

func (d *Driver) setupHost(req contract.NetworkRequest) (*contract.NetworkStatus, error) {
	for _, p := range req.Ports {
		if p.ContainerPort != 0 && p.ContainerPort != p.HostPort {
			return nil, fmt.Errorf("port %q: host mode needs container port 0 or the host port", p.Name)
		}
	}
	ports, err := d.reservePorts(req.ContainerID, req.Ports, nil)
	if err != nil {
		return nil, err
	}
	st := &contract.NetworkStatus{
		ContainerID: req.ContainerID,
		Mode:        contract.NetworkModeHost,
		Ports:       ports,
		Env:         map[string]string{},
	}
	d.mu.Lock()
	if d.node != nil {
		st.IP = d.node.cfg.Underlay
	}
	d.mu.Unlock()
	if st.IP.IsValid() {
		st.Env[contract.TaskIPEnv] = st.IP.String()
	}
	for _, p := range ports {
		st.Env[contract.PortEnv(p.Name)] = strconv.Itoa(int(p.HostPort))
	}
	return st, nil
}

// reservePorts validates ports, picks host ports for 0 (none of avoid)
// and reserves them all for id, or none.
func (d *Driver) reservePorts(id string, ports []contract.PortMapping, avoid map[portKey]bool) ([]contract.PortMapping, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := slices.Clone(ports)
	names := map[string]bool{}
	taken := map[portKey]bool{}
	for i := range out {
		p := &out[i]
		if p.Protocol == "" {
			p.Protocol = "tcp"
		}
		if p.Protocol != "tcp" && p.Protocol != "udp" {
			return nil, fmt.Errorf("port %q: protocol %q: %w", p.Name, p.Protocol, contract.ErrNotSupported)
		}
		if p.Name == "" || names[p.Name] {
			return nil, fmt.Errorf("port %q: empty or duplicate name", p.Name)
		}
		names[p.Name] = true
		if p.HostPort == 0 {
			continue
		}
		k := portKey{p.Protocol, p.HostPort}
		if owner, ok := d.ports[k]; ok || taken[k] {
			return nil, fmt.Errorf("host port %s/%d (held by %q): %w", k.proto, k.port, owner, contract.ErrConflict)
		}
		taken[k] = true
	}
	for i := range out {
		p := &out[i]
		if p.HostPort != 0 {
			continue
		}
		for port := portRangeFirst; port <= portRangeLast; port++ {
			k := portKey{p.Protocol, uint16(port)}
			if _, ok := d.ports[k]; !ok && !taken[k] && !avoid[k] {
				p.HostPort, taken[k] = uint16(port), true
				break
			}
		}
		if p.HostPort == 0 {
			return nil, fmt.Errorf("port %q: no free host port in %d-%d: %w", p.Name, portRangeFirst, portRangeLast, contract.ErrExhausted)
		}
	}
	for k := range taken {
		d.ports[k] = id
	}
	return out, nil
}

// releasePorts drops id's host port reservations and closes their
// placeholders.
func (d *Driver) releasePorts(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var keys []portKey
	for k, owner := range d.ports {
		if owner == id {
			keys = append(keys, k)
		}
	}
	d.unholdPortsLocked(keys)
	for _, k := range keys {
		delete(d.ports, k)
	}
}

// reserveAndHold reserves id's host ports (reservePorts) and holds them
// (holdPorts), all or none. A port the driver picked that another socket
// of the node has is skipped for the next free one; a requested one fails
// with a *portInUseError.
func (d *Driver) reserveAndHold(id string, req []contract.PortMapping) ([]contract.PortMapping, error) {
	avoid := map[portKey]bool{}
	for {
		ports, err := d.reservePorts(id, req, avoid)
		if err != nil {
			return nil, err
		}
		err = d.holdPorts(ports)
		if err == nil {
			return ports, nil
		}
		d.releasePorts(id)
		var inUse *portInUseError
		if !errors.As(err, &inUse) || req[inUse.i].HostPort != 0 {
			return nil, err
		}
		avoid[portKey{protocol(inUse.p), inUse.p.HostPort}] = true
	}
}

func (d *Driver) setupBridge(req contract.NetworkRequest) (*contract.NetworkStatus, error) {
	id := req.ContainerID
	if len(req.Ports) > 0 && d.nat.missing != nil {
		return nil, d.nat.missing
	}
	d.mu.Lock()
	n := d.node
	d.mu.Unlock()
	if n == nil {
		return nil, errors.New("bridge mode before ConfigureNode")
	}
	// The host ports are held before anything is made: a port in use
	// fails Setup with nothing to undo.
	ports, err := d.reserveAndHold(id, req.Ports)
	if err != nil {
		return nil, err
	}
	// A leftover of this ID (a crash before the host's checkpoint) is
	// replaced, not an error: the host says the ID is new.
	if err := d.removePieces(id); err != nil {
		d.releasePorts(id)
		return nil, err
	}
	d.mu.Lock()
	ip, err := d.pool.allocate(id)
	if err == nil {
		if err = d.pool.save(d.cfg.StateDir); err != nil {
			d.pool.release(id)
		}
	}
	d.mu.Unlock()
	if err != nil {
		d.releasePorts(id)
		return nil, err
	}
	st, err := d.createContainer(id, ip, n)
	if err == nil {
		if err = d.nat.add(ports, ip); err != nil {
			err = fmt.Errorf("host ports: %w", err)
		}
	}
	if err != nil {
		d.releasePorts(id)
		if rerr := d.removePieces(id); rerr != nil {
			d.log.Error("setup: rollback", "id", id, "err", rerr)
		}
		d.mu.Lock()
		d.pool.release(id)
		if serr := d.pool.save(d.cfg.StateDir); serr != nil {
			d.log.Error("setup: rollback", "id", id, "err", serr)
		}
		d.mu.Unlock()
		return nil, err
	}
	st.Ports = ports
	for _, p := range ports {
		st.Env[contract.PortEnv(p.Name)] = strconv.Itoa(int(containerPort(p)))
	}
	return st, nil
}

// createContainer makes id's namespace, veth pair, address and routes.
func (d *Driver) createContainer(id string, ip netip.Addr, n *node) (*contract.NetworkStatus, error) {
	path := d.nsPath(id)
	if err := createNetns(path); err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	defer ns.Close()

	la := netlink.NewLinkAttrs()
	la.Name = vethName(d.cfg.Bridge, id)
	la.MTU = n.mtu
	la.MasterIndex = n.bridgeIndex
	la.Flags = net.FlagUp
	la.HardwareAddr = mac(macHostVeth, ip)
	veth := &netlink.Veth{
		LinkAttrs:        la,
		PeerName:         containerIf,
		PeerHardwareAddr: mac(macContainer, ip),
		PeerNamespace:    netlink.NsFd(ns),
		PeerMTU:          uint32(n.mtu),
	}
	if err := d.host.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("veth %s: %w", la.Name, err)
	}
	// Hairpin: with br_netfilter, a container's packet to a host port of
	// the node DNATed back to the same container is bridged out of the
	// port it came in by; the bridge drops that unless the port allows it
	// (Docker and kubenet set the same).
	if err := d.host.LinkSetHairpin(veth, true); err != nil {
		return nil, fmt.Errorf("veth %s hairpin: %w", la.Name, err)
	}

	c, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink in netns: %w", err)
	}
	defer c.Close()
	eth0, err := c.LinkByName(containerIf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", containerIf, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(n.cfg.Subnet.Bits(), 32)}}
	if err := c.AddrAdd(eth0, addr); err != nil {
		return nil, fmt.Errorf("address %s: %w", addr, err)
	}
	// The loopback device is always index 1 in a new namespace.
	lo := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1, Name: "lo"}}
	if err := c.LinkSetUp(lo); err != nil {
		return nil, fmt.Errorf("lo up: %w", err)
	}
	if err := c.LinkSetUp(eth0); err != nil {
		return nil, fmt.Errorf("%s up: %w", containerIf, err)
	}
	gw := gateway(n.cfg.Subnet)
	if err := c.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: gw.AsSlice()}); err != nil {
		return nil, fmt.Errorf("default route via %s: %w", gw, err)
	}
	d.waitUp(c, eth0.Attrs().Index, n.bridgeIndex, la.Name)
	return &contract.NetworkStatus{
		ContainerID: id,
		Mode:        contract.NetworkModeBridge,
		Netns:       path,
		Interface:   containerIf,
		IP:          ip,
		Gateway:     gw,
		Env:         map[string]string{contract.TaskIPEnv: ip.String()},
	}, nil
}

// linkUpTimeout bounds waitUp.
const linkUpTimeout = time.Second

// waitUp waits until the container's eth0 (index eth0 in namespace c),
// its host-side veth and the bridge are operationally up. The kernel
// moves a device whose carrier came on from its drop-everything queue to
// its real one asynchronously (linkwatch, which also sets the operational
// state), a few ms after Setup's calls here; so does a bridge that had no
// running port before this container's. A packet sent before then is
// dropped: an ARP request lost that way costs 1 s (the retransmit timer),
// seen as a task's first connection taking 1 s. After linkUpTimeout it
// logs and returns: the devices work once the kernel gets to them.
func (d *Driver) waitUp(c *netlink.Handle, eth0, bridge int, veth string) {
	deadline := time.Now().Add(linkUpTimeout)
	pause := 20 * time.Microsecond
	up := func(l netlink.Link, err error) bool { return err == nil && l.Attrs().OperState == netlink.OperUp }
	var inside, outside, br bool
	for {
		inside = inside || up(c.LinkByIndex(eth0))
		outside = outside || up(d.host.LinkByName(veth))
		br = br || up(d.host.LinkByIndex(bridge))
		if inside && outside && br {
			return
		}
		if time.Now().After(deadline) {
			d.log.Warn("setup: links not up yet", "veth", veth, "eth0", inside, "host", outside, "bridge", br)
			return
		}
		time.Sleep(pause)
		pause = min(2*pause, time.Millisecond)
	}
}

// removePieces removes id's veth and namespace, whichever exist.
func (d *Driver) removePieces(id string) error {
	var errs []error
	name := vethName(d.cfg.Bridge, id)
	if l, err := d.host.LinkByName(name); err == nil {
		if err := d.host.LinkDel(l); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("delete %s: %w", name, err))
		}
	} else if !isNotFound(err) {
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	}
	if err := netnsutil.RemoveNetns(d.nsPath(id)); err != nil {
		errs = append(errs, fmt.Errorf("netns: %w", err))
	}
	return errors.Join(errs...)
}

func isNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT)
}

// Teardown implements contract.NetDriver.
func (d *Driver) Teardown(ctx context.Context, containerID string) error {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if err := d.teardown(containerID); err != nil {
		return fmt.Errorf("bridge: teardown %q: %w", containerID, err)
	}
	return nil
}

// teardown removes everything of id, known or not. The caller holds opMu.
func (d *Driver) teardown(id string) error {
	d.mu.Lock()
	st := d.containers[id]
	_, leased := d.pool.Leases[id]
	d.mu.Unlock()
	// The DNAT entries and the veth go at the same time: the kernel
	// takes ~10 ms to commit an element deletion and ~20 ms to delete a
	// veth, most of it waiting (RCU), so together they take the longer
	// of the two. Nothing is released before both are gone.
	var dnatErr error
	var wg sync.WaitGroup
	if st != nil && st.Mode == contract.NetworkModeBridge && len(st.Ports) > 0 {
		wg.Go(func() { dnatErr = d.removeDNAT(id) })
	}
	var piecesErr error
	if st == nil || st.Mode == contract.NetworkModeBridge {
		piecesErr = d.removePieces(id)
	}
	wg.Wait()
	if err := errors.Join(dnatErr, piecesErr); err != nil {
		return err
	}
	d.releasePorts(id)
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.containers, id)
	if leased {
		d.pool.release(id)
		return d.pool.save(d.cfg.StateDir)
	}
	return nil
}

// Status implements contract.NetDriver.
func (d *Driver) Status(ctx context.Context, containerID string) (*contract.NetworkStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, ok := d.containers[containerID]
	if !ok {
		return nil, fmt.Errorf("bridge: container %q: %w", containerID, contract.ErrTaskNotFound)
	}
	return cloneStatus(st), nil
}

// Recover implements contract.NetDriver. A bridge-mode container whose
// namespace or veth is gone is forgotten and what is left of it removed.
// It holds the host ports of the bridge-mode containers it recovers
// again (hostport.go). It returns the errors of the containers it could
// not recover (e.g. an address or host port another container holds,
// ErrConflict), after recovering the others, and of those it recovered
// without a placeholder for a port that another process bound meanwhile
// (a *portInUseError, logged too).
func (d *Driver) Recover(ctx context.Context, containers []contract.NetworkStatus) error {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	var errs []error
	var unheld []idPort
	for i := range containers {
		st := cloneStatus(&containers[i])
		id := st.ContainerID
		d.mu.Lock()
		_, known := d.containers[id]
		d.mu.Unlock()
		if known || id == "" {
			continue
		}
		if st.Mode == contract.NetworkModeBridge {
			_, err := d.host.LinkByName(vethName(d.cfg.Bridge, id))
			if st.Netns != d.nsPath(id) || !isNetns(st.Netns) || err != nil {
				d.log.Info("recover: network gone, forgetting", "id", id)
				if err := d.teardown(id); err != nil {
					errs = append(errs, fmt.Errorf("%q: %w", id, err))
				}
				continue
			}
			d.mu.Lock()
			err = d.pool.claim(id, st.IP)
			if err == nil {
				err = d.pool.save(d.cfg.StateDir)
			}
			d.mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%q: %w", id, err))
				continue
			}
		}
		if err := d.claimPorts(id, st.Ports); err != nil {
			errs = append(errs, fmt.Errorf("%q: %w", id, err))
			continue
		}
		if st.Mode == contract.NetworkModeBridge {
			if err := d.nat.add(st.Ports, st.IP); err != nil {
				d.releasePorts(id)
				errs = append(errs, fmt.Errorf("%q: %w", id, err))
				continue
			}
			for _, p := range st.Ports {
				unheld = append(unheld, idPort{id, p})
			}
		}
		d.mu.Lock()
		d.containers[id] = st
		d.mu.Unlock()
	}
	errs = append(errs, d.holdRecovered(ctx, unheld)...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bridge: recover: %w", err)
	}
	return nil
}

// idPort is a host port of a container.
type idPort struct {
	id string
	p  contract.PortMapping
}

// recoverHoldWait bounds how long Recover retries a placeholder whose port
// is in use: the previous driver process, which held it, exits within
// 0.5 s of its host's death (internal/daemon), maybe after the new one
// started.
const recoverHoldWait = 2 * time.Second

// holdRecovered holds the host ports of recovered containers, retrying
// those in use for up to recoverHoldWait, and returns an error for each
// it could not hold (logged too). Such a port stays its container's (its
// DNAT entry takes the traffic); only its placeholder is missing.
func (d *Driver) holdRecovered(ctx context.Context, ports []idPort) []error {
	deadline := time.Now().Add(recoverHoldWait)
	var errs, inUse []error
	for len(ports) > 0 {
		var again []idPort
		inUse = inUse[:0]
		for _, ip := range ports {
			err := d.holdPorts([]contract.PortMapping{ip.p})
			if err == nil {
				continue
			}
			err = fmt.Errorf("%q: recovered without its placeholder: %w", ip.id, err)
			if errors.Is(err, contract.ErrConflict) {
				again, inUse = append(again, ip), append(inUse, err)
			} else {
				errs = append(errs, err)
			}
		}
		ports = again
		if len(ports) == 0 || !time.Now().Before(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	errs = append(errs, inUse...)
	for _, err := range errs {
		d.log.Warn("recover: host port not held", "err", err)
	}
	return errs
}

// claimPorts reserves exactly the host ports of a recovered container.
func (d *Driver) claimPorts(id string, ports []contract.PortMapping) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range ports {
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		if owner, ok := d.ports[portKey{proto, p.HostPort}]; ok && owner != id {
			return fmt.Errorf("host port %s/%d held by %q: %w", proto, p.HostPort, owner, contract.ErrConflict)
		}
	}
	for _, p := range ports {
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		d.ports[portKey{proto, p.HostPort}] = id
	}
	return nil
}

// GC implements contract.NetDriver: it removes the containers the driver
// tracks, the namespaces under StateDir/netns, the address leases and the
// veths on its bridge of every container not in live.
func (d *Driver) GC(ctx context.Context, live []string) ([]string, error) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	keep := map[string]bool{}
	keepVeth := map[string]bool{}
	for _, id := range live {
		keep[id] = true
		keepVeth[vethName(d.cfg.Bridge, id)] = true
	}
	dead := map[string]bool{}
	d.mu.Lock()
	for id := range d.containers {
		dead[id] = !keep[id]
	}
	for id := range d.pool.Leases {
		dead[id] = !keep[id]
	}
	d.mu.Unlock()
	ents, err := os.ReadDir(nsDir(d.cfg.StateDir))
	if err != nil {
		return nil, fmt.Errorf("bridge: gc: %w", err)
	}
	for _, e := range ents {
		if id, ok := nsID(e.Name()); ok {
			dead[id] = !keep[id]
		}
	}
	var removed []string
	var errs []error
	for id, isDead := range dead {
		if !isDead {
			continue
		}
		if err := d.teardown(id); err != nil {
			errs = append(errs, fmt.Errorf("%q: %w", id, err))
			continue
		}
		removed = append(removed, id)
	}
	// Veths on our bridge whose container we cannot name (the name is a
	// hash): remove those of no live container.
	if br, err := d.host.LinkByName(d.cfg.Bridge); err == nil {
		links, err := netnsutil.Dump(d.host.LinkList)
		if err != nil {
			errs = append(errs, err)
		}
		for _, l := range links {
			a := l.Attrs()
			if a.MasterIndex != br.Attrs().Index || l.Type() != "veth" || !strings.HasPrefix(a.Name, prefix) || keepVeth[a.Name] {
				continue
			}
			if err := d.host.LinkDel(l); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("delete %s: %w", a.Name, err))
			}
		}
	}
	if err := d.gcDNAT(); err != nil {
		errs = append(errs, err)
	}
	slices.Sort(removed)
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("bridge: gc: %w", err)
	}
	return removed, nil
}

func cloneStatus(st *contract.NetworkStatus) *contract.NetworkStatus {
	c := *st
	c.Ports = slices.Clone(st.Ports)
	c.Env = maps.Clone(st.Env)
	return &c
}

// removeDNAT deletes the DNAT entries of id's reserved host ports that
// exist (so that a retried Teardown does not fail on the ones gone).
func (d *Driver) removeDNAT(id string) error {
	have, err := d.nat.list()
	if err != nil {
		return fmt.Errorf("host ports: %w", err)
	}
	var keys []portKey
	d.mu.Lock()
	for k, owner := range d.ports {
		if _, ok := have[k]; ok && owner == id {
			keys = append(keys, k)
		}
	}
	d.mu.Unlock()
	if err := d.nat.del(keys); err != nil {
		return fmt.Errorf("host ports: %w", err)
	}
	return nil
}

// gcDNAT deletes the DNAT entries that do not lead to a tracked
// bridge-mode container holding the port.
func (d *Driver) gcDNAT() error {
	if d.nat.missing != nil {
		return nil
	}
	d.mu.Lock()
	configured := d.node != nil
	d.mu.Unlock()
	if !configured {
		return nil
	}
	have, err := d.nat.list()
	if err != nil {
		return fmt.Errorf("host ports: %w", err)
	}
	var stale []portKey
	d.mu.Lock()
	for k, t := range have {
		st := d.containers[d.ports[k]]
		if st == nil || st.Mode != contract.NetworkModeBridge || st.IP != t.ip {
			stale = append(stale, k)
		}
	}
	d.mu.Unlock()
	if err := d.nat.del(stale); err != nil {
		return fmt.Errorf("host ports: %w", err)
	}
	return nil
}
