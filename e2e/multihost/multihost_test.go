//go:build linux

package multihost

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/internal/netnsutil"
)

// echoServer listens on addr in host h (the root namespace if nil) and
// answers each line with "<name> got <line>"; it stops at cleanup.
func echoServer(t *testing.T, h *Host, name, addr string) string {
	t.Helper()
	var l net.Listener
	listen := func() (err error) { l, err = net.Listen("tcp4", addr); return err }
	var err error
	if h != nil {
		err = h.Run(listen)
	} else {
		err = listen()
	}
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, name, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err == nil {
					fmt.Fprintf(c, "%s got %s", name, line)
				}
			}()
		}
	}()
	return l.Addr().String()
}

// exchange dials addr from h (the root namespace if nil), sends a line and
// returns the answer.
func exchange(h *Host, addr string, timeout time.Duration) (string, error) {
	var c net.Conn
	dial := func() (err error) { c, err = net.DialTimeout("tcp4", addr, timeout); return err }
	var err error
	if h != nil {
		err = h.Run(dial)
	} else {
		err = dial()
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(c, "ping\n"); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

func TestMultihost_HostsReachEachOther(t *testing.T) {
	t.Parallel()
	n := New(t)
	a, b := n.AddHost("a"), n.AddHost("b")

	if !strings.HasPrefix(n.Name(), "mh") || len(n.Name()) > 15 {
		t.Errorf("network name %q: want mh… of at most 15 bytes", n.Name())
	}
	if !netip.MustParsePrefix("172.31.0.0/16").Contains(n.Subnet().Addr()) || n.Subnet().Bits() != 24 {
		t.Errorf("subnet %s: want a /24 of 172.31.0.0/16", n.Subnet())
	}
	for _, tc := range []struct {
		got  netip.Addr
		want byte
	}{{n.Gateway(), 1}, {a.IP(), 2}, {b.IP(), 3}} {
		if !n.Subnet().Contains(tc.got) || tc.got.As4()[3] != tc.want {
			t.Errorf("address %s: want .%d of %s", tc.got, tc.want, n.Subnet())
		}
	}
	if got := n.Hosts(); len(got) != 2 || got[0] != a || got[1] != b {
		t.Errorf("Hosts() = %v, want [a b]", got)
	}

	root := echoServer(t, nil, "root", n.Gateway().String()+":0")
	srvA := echoServer(t, a, "a", a.IP().String()+":0")
	srvB := echoServer(t, b, "b", b.IP().String()+":0")
	for _, tc := range []struct {
		name string
		from *Host
		to   string
		want string
	}{
		{"a to b", a, srvB, "b got ping\n"},
		{"b to a", b, srvA, "a got ping\n"},
		{"a to root", a, root, "root got ping\n"},
		{"root to b", nil, srvB, "b got ping\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := exchange(tc.from, tc.to, 5*time.Second)
			if err != nil || got != tc.want {
				t.Fatalf("exchange with %s = %q, %v; want %q", tc.to, got, err, tc.want)
			}
		})
	}

	// A server in a is not in b's namespace, nor in the root's.
	if _, err := exchange(b, net.JoinHostPort("127.0.0.1", portOf(t, srvA)), time.Second); err == nil {
		t.Errorf("a's server answered on b's loopback")
	}

	// Command: in the host's network namespace, and only that one.
	out, err := a.Command("sh", "-c", "readlink /proc/self/ns/net /proc/self/ns/mnt; ip -o -4 addr show dev eth0").CombinedOutput()
	if err != nil {
		t.Fatalf("a.Command: %v\n%s", err, out)
	}
	lines := strings.SplitN(string(out), "\n", 3)
	var st unix.Stat_t
	if err := unix.Stat(a.NetnsPath(), &st); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("net:[%d]", st.Ino); len(lines) < 3 || lines[0] != want {
		t.Errorf("a.Command's net namespace = %q, want %s", lines[0], want)
	}
	if myMnt, _ := os.Readlink("/proc/self/ns/mnt"); len(lines) < 3 || lines[1] != myMnt {
		t.Errorf("a.Command's mount namespace = %q, want the caller's %s", lines[1], myMnt)
	}
	if len(lines) < 3 || !strings.Contains(lines[2], " "+a.IP().String()+"/24 ") {
		t.Errorf("a's eth0: %q, want %s/24", out, a.IP())
	}
}

func portOf(t *testing.T, addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMultihost_CutRestore(t *testing.T) {
	t.Parallel()
	n := New(t)
	a, b := n.AddHost("a"), n.AddHost("b")
	srv := echoServer(t, b, "b", b.IP().String()+":0")
	if got, err := exchange(a, srv, 5*time.Second); err != nil || got != "b got ping\n" {
		t.Fatalf("before Cut: %q, %v", got, err)
	}
	for range 2 { // idempotent
		if err := b.Cut(); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := exchange(a, srv, 500*time.Millisecond); err == nil {
		t.Fatalf("a reached b after b.Cut: %q", got)
	}
	if got, err := exchange(nil, srv, 500*time.Millisecond); err == nil {
		t.Fatalf("the root namespace reached b after b.Cut: %q", got)
	}
	for range 2 {
		if err := b.Restore(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := exchange(a, srv, time.Second)
		if err == nil && got == "b got ping\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Restore: %q, %v", got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Cut(); err == nil {
		t.Error("Cut of a closed host: no error")
	}
	if got := n.Hosts(); len(got) != 1 || got[0] != a {
		t.Errorf("Hosts() after b.Close = %v, want [a]", got)
	}
}

func TestMultihost_AddHostBadInput(t *testing.T) {
	t.Parallel()
	n := New(t)
	n.AddHost("taken")
	for _, tc := range []struct{ name, host string }{
		{"empty", ""},
		{"upper case", "Host"},
		{"slash", "a/b"},
		{"dot dot", ".."},
		{"too long", "a23456789012345678"},
		{"taken", "taken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if h, err := n.addHost(tc.host); err == nil {
				t.Fatalf("addHost(%q) = %v, want an error", tc.host, h.NetnsPath())
			}
		})
	}
	if got := len(n.Hosts()); got != 1 {
		t.Errorf("%d hosts after refused adds, want 1", got)
	}
	if m, _ := filepath.Glob(filepath.Join(NetnsDir, n.Name()+"-*")); len(m) != 1 {
		t.Errorf("namespaces of %s: %v, want only taken's", n.Name(), m)
	}
}

// TestMultihost_CloseLeavesNothing: once a test using a network ends, no
// link, address, route, namespace file or mount of it is left, even with a
// process still running inside a host and a host already closed.
func TestMultihost_CloseLeavesNothing(t *testing.T) {
	t.Parallel()
	var n *Network
	var hosts []*Host
	outer := t
	t.Run("use", func(t *testing.T) {
		n = New(t)
		hosts = []*Host{n.AddHost("a"), n.AddHost("b"), n.AddHost("c")}
		if err := hosts[2].Close(); err != nil {
			t.Fatal(err)
		}
		if err := hosts[0].Cut(); err != nil {
			t.Fatal(err)
		}
		cmd := hosts[1].Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Killed when the outer test ends: still inside b when the
		// network is closed.
		outer.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	})
	if n == nil {
		t.Fatal("no network made")
	}
	links, err := netnsutil.Dump(netlink.LinkList)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, n.Name()) {
			t.Errorf("link %s left", l.Attrs().Name)
		}
	}
	if busy, err := inUse(n.Subnet(), -1); err != nil || busy {
		t.Errorf("a route or address in %s left (%v)", n.Subnet(), err)
	}
	if m, _ := filepath.Glob(filepath.Join(NetnsDir, n.Name()+"-*")); len(m) > 0 {
		t.Errorf("namespace files left: %v", m)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), filepath.Join(NetnsDir, n.Name())) {
		t.Errorf("namespace mounts left:\n%s", mi)
	}
	for _, h := range hosts {
		if err := h.Close(); err != nil {
			t.Errorf("second Close of %s: %v", h.Name(), err)
		}
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestMultihost_KeepsThreads: adding hosts and running code in them never
// ends an OS thread of the process, which would SIGKILL the children
// started from it with a Pdeathsig (as test harnesses start daemons).
func TestMultihost_KeepsThreads(t *testing.T) {
	t.Parallel()
	n := New(t)
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var werr error
	go func() { werr = cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	for i := range 8 {
		h := n.AddHost(fmt.Sprintf("h%d", i))
		for range 8 {
			if err := h.Run(func() error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
	}
	select {
	case <-done:
		t.Fatalf("a child with a Pdeathsig died while hosts were added: %v", werr)
	case <-time.After(100 * time.Millisecond):
	}
}
