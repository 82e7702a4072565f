//go:build linux

package multihost

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/internal/netnsutil"
)

// NetnsDir is where hosts' namespaces are bind-mounted (iproute2's).
const NetnsDir = "/run/netns"

// supernet is where networks' /24s are picked from.
var supernet = netip.MustParsePrefix("172.31.0.0/16")

// Network is a test bridge in the root namespace and the hosts on it. Its
// methods are safe for concurrent use.
type Network struct {
	t       testing.TB
	name    string
	subnet  netip.Prefix
	gateway netip.Addr

	mu     sync.Mutex
	hosts  []*Host
	next   int // the last address byte handed out
	closed bool
}

// Host is a network namespace on a Network. Its methods are safe for
// concurrent use.
type Host struct {
	net   *Network
	name  string
	ip    netip.Addr
	path  string // the namespace's bind mount
	link  string // the veth end on the bridge, in the root namespace
	index int    // its ifindex

	mu     sync.Mutex
	closed bool
}

// New creates a Network (see the package doc) and registers its Close
// with t.Cleanup. It fails t on any error, and skips t unless it runs as
// root.
func New(t testing.TB) *Network {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("multihost: needs root (network namespaces, veths, bridges)")
	}
	n, err := newNetwork()
	if err != nil {
		t.Fatalf("multihost: %v", err)
	}
	n.t = t
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("multihost: %v", err)
		}
	})
	return n
}

// Name returns the bridge's name; hosts' namespaces and links start with it.
func (n *Network) Name() string { return n.name }

// Subnet returns the network's /24.
func (n *Network) Subnet() netip.Prefix { return n.subnet }

// Gateway returns the root namespace's address on the network (.1).
func (n *Network) Gateway() netip.Addr { return n.gateway }

// Hosts returns the hosts not closed, in the order they were added.
func (n *Network) Hosts() []*Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*Host
	for _, h := range n.hosts {
		if !h.isClosed() {
			out = append(out, h)
		}
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

func newNetwork() (*Network, error) {
	name := "mh" + randomHex(6)
	la := netlink.NewLinkAttrs()
	la.Name = name
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
		return nil, fmt.Errorf("create bridge %s: %w", name, err)
	}
	n := &Network{name: name, next: 1}
	br, err := netlink.LinkByName(name)
	if err == nil {
		err = n.claimSubnet(br)
	}
	if err == nil {
		err = netlink.LinkSetUp(br)
	}
	if err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// claimSubnet picks a /24 of supernet that no route or address of the
// root namespace overlaps and puts the gateway on br; when another link
// took the same /24 meanwhile (a test running in parallel), it tries
// another.
func (n *Network) claimSubnet(br netlink.Link) error {
	for range 64 {
		var b [1]byte
		rand.Read(b[:])
		a := supernet.Addr().As4()
		a[2] = b[0]
		s := netip.PrefixFrom(netip.AddrFrom4(a), 24)
		if busy, err := inUse(s, br.Attrs().Index); err != nil || busy {
			if err != nil {
				return err
			}
			continue
		}
		gw := s.Addr().Next()
		addr := &netlink.Addr{IPNet: ipNet(gw, 24)}
		if err := netlink.AddrAdd(br, addr); err != nil {
			return fmt.Errorf("%s: add %s: %w", n.name, addr.IPNet, err)
		}
		if busy, err := inUse(s, br.Attrs().Index); err != nil || busy {
			netlink.AddrDel(br, addr)
			if err != nil {
				return err
			}
			continue
		}
		n.subnet, n.gateway = s, gw
		return nil
	}
	return errors.New("no free /24 in " + supernet.String())
}

// inUse reports whether a route (of any table) or an address of a link
// other than except overlaps s in the root namespace.
func inUse(s netip.Prefix, except int) (bool, error) {
	routes, err := netnsutil.Dump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return false, fmt.Errorf("routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.LinkIndex == except {
			continue
		}
		if p, ok := prefixOf(r.Dst); ok && p.Bits() > 0 && p.Overlaps(s) {
			return true, nil
		}
	}
	addrs, err := netnsutil.Dump(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, unix.AF_INET) })
	if err != nil {
		return false, fmt.Errorf("addresses: %w", err)
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok && a.LinkIndex != except && p.Overlaps(s) {
			return true, nil
		}
	}
	return false, nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), bits).Masked(), ok
}

func ipNet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, 32)}
}

var hostName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,15}$`)

// AddHost adds a host named name (lower-case letters, digits and '-', at
// most 16 bytes, unique on n). It fails the test n was made for (call it
// from that test's goroutine) on any error. The host is removed by its
// Close or the Network's, whichever comes first: the Network's cleanup,
// registered by New, removes every host, after the cleanups registered
// later (those of the processes started inside).
func (n *Network) AddHost(name string) *Host {
	n.t.Helper()
	h, err := n.addHost(name)
	if err != nil {
		n.t.Fatalf("multihost: add host %q: %v", name, err)
	}
	return h
}

func (n *Network) addHost(name string) (*Host, error) {
	if !hostName.MatchString(name) {
		return nil, fmt.Errorf("bad name: want %s", hostName)
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, errors.New("network closed")
	}
	for _, o := range n.hosts {
		if o.name == name {
			n.mu.Unlock()
			return nil, errors.New("a host of that name exists")
		}
	}
	if n.next >= 254 {
		n.mu.Unlock()
		return nil, errors.New("network full")
	}
	n.next++
	ip := n.subnet.Addr().As4()
	ip[3] = byte(n.next)
	// The root end is named after the network and the address byte: 15
	// bytes at most, and unique.
	h := &Host{net: n, name: name, ip: netip.AddrFrom4(ip), path: filepath.Join(NetnsDir, n.name+"-"+name),
		link: fmt.Sprintf("%sh%d", n.name, n.next)}
	n.hosts = append(n.hosts, h)
	n.mu.Unlock()
	if err := h.create(); err != nil {
		return nil, errors.Join(err, h.Close())
	}
	return h, nil
}

func (h *Host) create() error {
	if err := os.MkdirAll(NetnsDir, 0o755); err != nil {
		return err
	}
	if err := createNetns(h.path); err != nil {
		return fmt.Errorf("namespace %s: %w", h.path, err)
	}
	ns, err := netns.GetFromPath(h.path)
	if err != nil {
		return err
	}
	defer ns.Close()
	br, err := netlink.LinkByName(h.net.name)
	if err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	la := netlink.NewLinkAttrs()
	la.Name = h.link
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ns))}); err != nil {
		return fmt.Errorf("veth %s: %w", h.link, err)
	}
	root, err := netlink.LinkByName(h.link)
	if err != nil {
		return fmt.Errorf("veth %s: %w", h.link, err)
	}
	h.mu.Lock()
	h.index = root.Attrs().Index
	h.mu.Unlock()
	if err := netlink.LinkSetMaster(root, br); err != nil {
		return fmt.Errorf("%s master %s: %w", h.link, h.net.name, err)
	}
	if err := netlink.LinkSetUp(root); err != nil {
		return fmt.Errorf("%s up: %w", h.link, err)
	}
	nh, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer nh.Close()
	for _, dev := range []string{"lo", "eth0"} {
		l, err := nh.LinkByName(dev)
		if err == nil && dev == "eth0" {
			err = nh.AddrAdd(l, &netlink.Addr{IPNet: ipNet(h.ip, 24)})
		}
		if err == nil {
			err = nh.LinkSetUp(l)
		}
		if err != nil {
			return fmt.Errorf("%s in %s: %w", dev, h.path, err)
		}
	}
	if err := nh.RouteAdd(&netlink.Route{Gw: h.net.gateway.AsSlice()}); err != nil {
		return fmt.Errorf("default route: %w", err)
	}
	return h.Run(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
	})
}

// Name returns the host's name.
func (h *Host) Name() string { return h.name }

// IP returns the host's address on its network (its eth0).
func (h *Host) IP() netip.Addr { return h.ip }

// NetnsPath returns the bind mount of the host's network namespace, for
// nsenter --net or netns.GetFromPath.
func (h *Host) NetnsPath() string { return h.path }

// Argv returns the command line that runs cmd (a program and its
// arguments) in the host's network namespace only (see the package doc),
// for callers that build their own exec.Cmd; Argv() alone is the prefix
// to put before a command line.
func (h *Host) Argv(cmd ...string) []string {
	return append([]string{"nsenter", "--net=" + h.path, "--"}, cmd...)
}

// Command returns an exec.Cmd that runs name with args in the host's
// network namespace only; see Argv.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return h.CommandContext(context.Background(), name, args...)
}

// CommandContext is Command with a context, as exec.CommandContext.
func (h *Host) CommandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	argv := h.Argv(append([]string{name}, args...)...)
	return exec.CommandContext(ctx, argv[0], argv[1:]...)
}

// Run calls fn on an OS thread switched into the host's network namespace
// and returns its error. Sockets fn opens belong to the host's namespace
// for their whole life, whichever goroutine uses them later. fn must not
// start goroutines that expect the namespace: they run on other threads.
func (h *Host) Run(fn func() error) error {
	fd, err := unix.Open(h.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return onThread(func() error {
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("setns %s: %w", h.path, err)
		}
		return fn()
	})
}

// onThread calls fn on a goroutine locked to its OS thread, then puts the
// thread back in its original network namespace and unlocks it. The
// thread is never ended (only if it cannot be put back, which leaves it
// locked to end with the goroutine): Linux sends a child's Pdeathsig when
// the THREAD that forked it ends, so a discarded thread would kill the
// children other goroutines of the process started on it — the daemons
// of a test (exec.Cmd with Pdeathsig), for one.
func onThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(orig)
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("back to the original namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Netlink returns a netlink handle working in the host's namespace; the
// caller closes it.
func (h *Host) Netlink() (*netlink.Handle, error) {
	ns, err := netns.GetFromPath(h.path)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns)
}

// Cut takes the host's link down at the bridge: nothing goes in or out of
// the host until Restore. Processes inside keep running. Idempotent.
func (h *Host) Cut() error { return h.setLink(false) }

// Restore undoes Cut. Idempotent.
func (h *Host) Restore() error { return h.setLink(true) }

func (h *Host) setLink(up bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errors.New("multihost: host " + h.name + " closed")
	}
	l, err := netlink.LinkByIndex(h.index)
	if err == nil && l.Attrs().Name != h.link {
		err = fmt.Errorf("link %d is %s now", h.index, l.Attrs().Name)
	}
	if err == nil {
		if up {
			err = netlink.LinkSetUp(l)
		} else {
			err = netlink.LinkSetDown(l)
		}
	}
	if err != nil {
		return fmt.Errorf("multihost: host %s link %s: %w", h.name, h.link, err)
	}
	return nil
}

func (h *Host) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// Close removes the host: its veth pair and its namespace's bind mount
// (see the package doc for what goes with the namespace). Processes still
// inside lose their network but are not stopped. Idempotent.
func (h *Host) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	var errs []error
	if l, err := netlink.LinkByName(h.link); err == nil {
		if err := netlink.LinkDel(l); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("delete %s: %w", h.link, err))
		}
	} else if !isNotFound(err) {
		errs = append(errs, fmt.Errorf("%s: %w", h.link, err))
	}
	if err := netnsutil.RemoveNetns(h.path); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("multihost: close host %s: %w", h.name, err)
	}
	return nil
}

// Close removes every host, then the bridge. Idempotent.
func (n *Network) Close() error {
	n.mu.Lock()
	hosts := n.hosts
	n.closed = true
	n.mu.Unlock()
	var errs []error
	for _, h := range hosts {
		errs = append(errs, h.Close())
	}
	if l, err := netlink.LinkByName(n.name); err == nil {
		if err := netlink.LinkDel(l); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("delete bridge %s: %w", n.name, err))
		}
	} else if !isNotFound(err) {
		errs = append(errs, fmt.Errorf("bridge %s: %w", n.name, err))
	}
	return errors.Join(errs...)
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// createNetns creates a network namespace and bind-mounts it on path
// (which must not exist); see onThread.
func createNetns(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	f.Close()
	err = onThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind mount: %w", err)
		}
		return nil
	})
	if err != nil {
		os.Remove(path)
	}
	return err
}
