//go:build linux

package netnsutil

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// newNetns creates a network namespace bind-mounted on a file of a temp
// dir, removed when the test ends. It needs root (CAP_SYS_ADMIN).
func newNetns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (unshare, bind mount)")
	}
	path := filepath.Join(t.TempDir(), "ns")
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := RemoveNetns(path); err != nil {
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
	// Its loopback is down in a new namespace.
	if err := InNetns(path, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	}); err != nil {
		t.Fatalf("loopback up: %v", err)
	}
	return path
}

// nsIno is the inode of the network namespace of the calling thread (or
// of the file at path).
func nsIno(t *testing.T, path string) uint64 {
	t.Helper()
	if path == "" {
		path = fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// threadIno is the namespace inode of a fresh locked goroutine's thread.
func threadIno(t *testing.T) uint64 {
	c := make(chan uint64)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		c <- nsIno(t, "")
	}()
	return <-c
}

// A listener on the namespace's own 127.0.0.1 is reached by a connection
// dialed through InNetns and used after it returned; the threads come back
// in their own namespace.
func TestInNetns(t *testing.T) {
	path := newNetns(t)
	host := threadIno(t)
	if want := nsIno(t, path); want == host {
		t.Fatal("the new namespace is the host's")
	}
	var ln net.Listener
	if err := InNetns(path, func() (err error) {
		if got, want := nsIno(t, ""), nsIno(t, path); got != want {
			return fmt.Errorf("fn runs in namespace %d, want %d", got, want)
		}
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Fprintf(c, "got %s", line)
	}()
	var conn net.Conn
	if err := InNetns(path, func() (err error) {
		conn, err = net.Dial("tcp", ln.Addr().String())
		return err
	}); err != nil {
		t.Fatalf("dial %s in the namespace: %v", ln.Addr(), err)
	}
	defer conn.Close()
	// Used outside: the socket stays in the namespace.
	if _, err := fmt.Fprintf(conn, "ping\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := bufio.NewReader(conn).ReadString('\n'); err != nil || got != "got ping\n" {
		t.Fatalf("read %q, %v; want %q", got, err, "got ping\n")
	}
	// Threads that ran fn went back to the pool in the host's namespace.
	for range 20 {
		if err := InNetns(path, func() error { return nil }); err != nil {
			t.Fatal(err)
		}
		if got := threadIno(t); got != host {
			t.Fatalf("a thread is in namespace %d after InNetns, want the host's %d", got, host)
		}
	}
}

func TestInNetns_Errors(t *testing.T) {
	called := false
	if err := InNetns(filepath.Join(t.TempDir(), "missing"), func() error { called = true; return nil }); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing namespace file: %v, want ErrNotExist", err)
	}
	notNs := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notNs, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := InNetns(notNs, func() error { called = true; return nil }); err == nil {
		t.Error("a regular file entered as a namespace")
	}
	if called {
		t.Error("fn ran although the namespace was not entered")
	}
	// "" runs fn where the caller is and returns its error.
	want := errors.New("fn failed")
	if err := InNetns("", func() error { return want }); err != want {
		t.Errorf("InNetns(\"\") = %v, want fn's error", err)
	}
}
