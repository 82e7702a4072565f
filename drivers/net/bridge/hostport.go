//go:build linux

package bridge

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/internal/netnsutil"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

// Host ports of bridge-mode containers are DNAT entries, which bind no
// socket: a process of the node could already listen on such a port (and
// lose its traffic to the container) or bind it later. So, like Docker
// ("bind to reserve") and the kubelet's hostport manager, the driver holds
// a placeholder socket on 0.0.0.0 for each of them, in the node's
// namespace, from before the DNAT entry is installed until after it is
// removed. A port some other socket of the node has fails Setup with
// ErrConflict; a process binding it later gets EADDRINUSE. The DNAT takes
// every packet to the port (from outside or from the node itself) before
// it could reach the placeholder, which never accepts a connection.
//
// A TCP placeholder is bound with SO_REUSEADDR (so that connections of an
// earlier user of the port left in TIME_WAIT do not block it), put in
// LISTEN state once (which marks the port's bind bucket as not reusable),
// then has SO_REUSEADDR cleared and is shut down: it is back in CLOSE state,
// still bound, refusing connections (RST), and conflicting with any later
// bind to the port, with or without SO_REUSEADDR. (A socket that is only
// bound with SO_REUSEADDR would let a listener with it bind too; one bound
// without it fails on TIME_WAIT leftovers.) A UDP placeholder is bound
// without SO_REUSEADDR, with the smallest receive buffer.

// portInUseError is the error of a host port another socket of the node
// has; it wraps ErrConflict. i is the port's index in the request.
type portInUseError struct {
	i int
	p contract.PortMapping
}

func (e *portInUseError) Error() string {
	return fmt.Sprintf("host port %d/%s (port %q) is already in use on this node by a process dcos does not manage",
		e.p.HostPort, protocol(e.p), e.p.Name)
}

func (e *portInUseError) Unwrap() error { return contract.ErrConflict }

// protocol is p's protocol, "tcp" if empty.
func protocol(p contract.PortMapping) string {
	if p.Protocol == "" {
		return "tcp"
	}
	return p.Protocol
}

// holdPorts opens a placeholder for each of ports in the node's namespace
// and records them in d.held: all or none. A port another socket has
// returns a *portInUseError. The caller holds opMu and the ports'
// reservations.
func (d *Driver) holdPorts(ports []contract.PortMapping) error {
	if len(ports) == 0 {
		return nil
	}
	fds := make([]int, 0, len(ports))
	err := netnsutil.InNetns(d.cfg.HostNetns, func() error {
		for i, p := range ports {
			fd, err := openPlaceholder(protocol(p), p.HostPort)
			if errors.Is(err, unix.EADDRINUSE) {
				return &portInUseError{i, p}
			}
			if err != nil {
				return fmt.Errorf("host port %d/%s: placeholder socket: %w", p.HostPort, protocol(p), err)
			}
			fds = append(fds, fd)
		}
		return nil
	})
	if err != nil {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, fd := range fds {
		k := portKey{protocol(ports[i]), ports[i].HostPort}
		if old, ok := d.held[k]; ok {
			unix.Close(old)
		}
		d.held[k] = fd
	}
	return nil
}

// openPlaceholder binds a placeholder socket to 0.0.0.0:port (see above).
// It must run in the node's namespace.
func openPlaceholder(proto string, port uint16) (fd int, err error) {
	typ := unix.SOCK_STREAM
	if proto == "udp" {
		typ = unix.SOCK_DGRAM
	}
	fd, err = unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
			fd = -1
		}
	}()
	sa := &unix.SockaddrInet4{Port: int(port)}
	if typ == unix.SOCK_DGRAM {
		// The kernel raises 0 to its minimum.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 0); err != nil {
			return -1, err
		}
		return fd, unix.Bind(fd, sa)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, sa); err != nil {
		return -1, err
	}
	// Listening conflicts with a non-listening socket bound to the port
	// with SO_REUSEADDR, which the bind let through: EADDRINUSE too.
	if err := unix.Listen(fd, 0); err != nil {
		return -1, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 0); err != nil {
		return -1, err
	}
	if err := unix.Shutdown(fd, unix.SHUT_RDWR); err != nil {
		return -1, fmt.Errorf("shutdown: %w", err)
	}
	return fd, nil
}

// unholdPortsLocked closes the placeholders of keys. d.mu is held.
func (d *Driver) unholdPortsLocked(keys []portKey) {
	for _, k := range keys {
		if fd, ok := d.held[k]; ok {
			unix.Close(fd)
			delete(d.held, k)
		}
	}
}
