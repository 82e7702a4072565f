//go:build linux

package agent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/internal/netnsutil"
	"github.com/dcos-kernel/dcos/plugins/contract"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// testNetns creates a network namespace with its loopback up and addr on
// it, bind-mounted on a file of a temp dir and removed when the test ends.
func testNetns(t *testing.T, addr netip.Addr) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (unshare, bind mount)")
	}
	path := filepath.Join(t.TempDir(), "ns")
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netnsutil.RemoveNetns(path); err != nil {
			t.Errorf("remove netns: %v", err)
		}
	})
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		errc <- unix.Mount(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), path, "none", unix.MS_BIND, "")
	}()
	if err := <-errc; err != nil {
		t.Fatalf("create netns: %v", err)
	}
	if err := netnsutil.InNetns(path, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(32, 32)}}); err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	}); err != nil {
		t.Fatalf("set up the namespace's loopback: %v", err)
	}
	return path
}

// serveIn serves HTTP status code on addr inside the namespace at path
// ("" the test's own) and returns the port.
func serveIn(t *testing.T, path, addr string, code int) uint16 {
	t.Helper()
	var ln net.Listener
	if err := netnsutil.InNetns(path, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listen on %s in %q: %v", addr, path, err)
	}
	return serveOn(t, ln, code)
}

// serveOn serves HTTP status code on ln until the test ends and returns
// its port.
func serveOn(t *testing.T, ln net.Listener, code int) uint16 {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }),
		ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// A bridge task's HTTP and TCP probes run in its network namespace: they
// reach a server on the task's own 127.0.0.1 (not the node's, which
// answers 503 on the same port when it can have it), and fall back to the
// task's address when nothing listens on its loopback.
func TestAgent_ProbeInNetns(t *testing.T) {
	t.Parallel()
	taskIP := netip.MustParseAddr("10.253.0.7")
	ns := testNetns(t, taskIP)
	web := serveIn(t, ns, "127.0.0.1:0", http.StatusOK)
	// The node's loopback, same port: a probe from the node would fail.
	if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", web)); err == nil {
		serveOn(t, ln, http.StatusServiceUnavailable)
	}
	own := serveIn(t, ns, netip.AddrPortFrom(taskIP, 0).String(), http.StatusOK)
	closed := func() uint16 { // a port nothing listens on in the namespace
		var l net.Listener
		if err := netnsutil.InNetns(ns, func() (err error) { l, err = net.Listen("tcp", "127.0.0.1:0"); return err }); err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return uint16(l.Addr().(*net.TCPAddr).Port)
	}()

	a := &Agent{}
	ports := []*syscallsv1.PortMapping{{Name: "web", ContainerPort: uint32(web)}, {Name: "own", ContainerPort: uint32(own)},
		{Name: "closed", ContainerPort: uint32(closed)}}
	var mapped []contract.PortMapping
	for _, p := range ports {
		mapped = append(mapped, contract.PortMapping{Name: p.GetName(), ContainerPort: uint16(p.GetContainerPort()), Protocol: "tcp"})
	}
	tk := &task{net: &contract.NetworkStatus{Mode: contract.NetworkModeBridge, Netns: ns, IP: taskIP, Ports: mapped}}
	spec := &syscallsv1.Task{Network: netBridge, Ports: ports}
	tests := []struct {
		name  string
		check *syscallsv1.HealthCheck
		want  string // "" when the probe passes, else part of its error
	}{
		{"http on the task's loopback", &syscallsv1.HealthCheck{Http: &syscallsv1.HTTPCheck{PortName: "web", Path: "/health", StatusMin: 200, StatusMax: 399}}, ""},
		{"tcp on the task's loopback", &syscallsv1.HealthCheck{Tcp: &syscallsv1.TCPCheck{PortName: "web"}}, ""},
		{"http on the task's address", &syscallsv1.HealthCheck{Http: &syscallsv1.HTTPCheck{PortName: "own", Path: "/", StatusMin: 200, StatusMax: 399}}, ""},
		{"tcp on the task's address", &syscallsv1.HealthCheck{Tcp: &syscallsv1.TCPCheck{PortName: "own"}}, ""},
		{"tcp on nothing", &syscallsv1.HealthCheck{Tcp: &syscallsv1.TCPCheck{PortName: "closed"}}, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := a.probe(ctx, tk, spec, tt.check, 10*time.Second)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("probe: %v, want a pass", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("probe: %v, want an error with %q", err, tt.want)
			}
		})
	}
}
