//go:build linux

package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/netnsutil"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

// bindIn binds proto port on every address ("" host: [::], dual stack, as
// most servers do) inside the namespace at path ("" = here) and returns
// the error; the socket is closed again at once unless keep.
func bindIn(tb testing.TB, path, proto string, port uint16, keep bool) error {
	tb.Helper()
	addr := fmt.Sprintf(":%d", port)
	return netnsutil.InNetns(path, func() error {
		var c interface{ Close() error }
		var err error
		if proto == "udp" {
			c, err = net.ListenPacket("udp", addr)
		} else {
			c, err = net.Listen("tcp", addr)
		}
		if err != nil {
			return err
		}
		if keep {
			tb.Cleanup(func() { c.Close() })
		} else {
			c.Close()
		}
		return nil
	})
}

// wantHeld fails unless a bind of port in the namespace at path gets
// EADDRINUSE (held) or succeeds (free).
func wantHeld(tb testing.TB, path string, p contract.PortMapping, held bool) {
	tb.Helper()
	err := bindIn(tb, path, protocol(p), p.HostPort, false)
	if held && !errors.Is(err, syscall.EADDRINUSE) {
		tb.Errorf("bind %d/%s while the container holds it: %v, want EADDRINUSE", p.HostPort, protocol(p), err)
	}
	if !held && err != nil {
		tb.Errorf("bind %d/%s once released: %v", p.HostPort, protocol(p), err)
	}
}

// TestDriver_HostPortPlaceholder: a bridge-mode container's host ports are
// held on the node while it lives (a process's bind fails; traffic still
// goes to the container), freed by Teardown; a port the node already uses
// fails Setup with ErrConflict and leaves nothing; a port the driver picks
// is skipped if in use; Recover holds the ports again.
func TestDriver_HostPortPlaceholder(t *testing.T) {
	tn := newTestNode(t, testSubnet())
	if tn.d.nat.missing != nil {
		t.Skipf("kernel without nf_tables: %v", tn.d.nat.missing)
	}
	ctx := context.Background()
	setup := func(id string, ports ...contract.PortMapping) (*contract.NetworkStatus, error) {
		tn.ids[id] = true
		return tn.d.Setup(ctx, contract.NetworkRequest{ContainerID: id, Mode: contract.NetworkModeBridge, Ports: ports})
	}

	st, err := setup("web", contract.PortMapping{Name: "http", ContainerPort: 8080}, contract.PortMapping{Name: "dns", ContainerPort: 53, Protocol: "udp"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Ports {
		wantHeld(t, "", p, true)
	}
	// With the placeholder held, the DNAT still takes the traffic: from
	// the node itself (output) and from another namespace (prerouting).
	other := tn.setup("other")
	ln := listenIn(t, st.Netns, hostPort(st.IP, 8080))
	hp := int(st.Ports[0].HostPort)
	for _, from := range []string{"", other.Netns} {
		done := make(chan error, 1)
		go func() {
			c, err := ln.Accept()
			if err == nil {
				_, err = c.Write([]byte("hi"))
				c.Close()
			}
			done <- err
		}()
		c, err := dialIn(from, hostPort(gateway(tn.subnet), hp))
		if err != nil {
			t.Fatalf("dial host port %d from %q: %v", hp, from, err)
		}
		buf := make([]byte, 2)
		if _, err := c.Read(buf); err != nil || string(buf) != "hi" {
			t.Errorf("from %q: read %q, %v; want the container's answer", from, buf, err)
		}
		c.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// UDP too: the datagram reaches the container, not the placeholder.
	var pc net.PacketConn
	if err := netnsutil.InNetns(st.Netns, func() (err error) {
		pc, err = net.ListenPacket("udp4", hostPort(st.IP, 53))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	err = netnsutil.InNetns("", func() error {
		c, err := net.Dial("udp4", hostPort(gateway(tn.subnet), int(st.Ports[1].HostPort)))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("q"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := pc.ReadFrom(make([]byte, 8)); err != nil || n != 1 {
		t.Errorf("the container got no datagram on its UDP host port: %d, %v", n, err)
	}
	for _, id := range []string{"web", "other"} {
		if err := tn.d.Teardown(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range st.Ports {
		wantHeld(t, "", p, false)
	}

	// Ports a process of the node has bound (TCP: a dual-stack listener;
	// UDP: a socket on 127.0.0.1 only).
	busy := freePort(t, "tcp")
	if err := bindIn(t, "", "tcp", busy, true); err != nil {
		t.Fatal(err)
	}
	busyUDP := freePort(t, "udp")
	u, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", busyUDP))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	tests := []struct {
		name  string
		ports []contract.PortMapping
		want  string
	}{
		{"tcp", []contract.PortMapping{{Name: "web", HostPort: busy, ContainerPort: 80}},
			fmt.Sprintf(`host port %d/tcp (port "web") is already in use on this node by a process dcos does not manage`, busy)},
		{"udp, after a free port", []contract.PortMapping{{Name: "free", ContainerPort: 80}, {Name: "q", HostPort: busyUDP, Protocol: "udp"}},
			fmt.Sprintf(`host port %d/udp (port "q") is already in use`, busyUDP)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "busy-" + strings.ReplaceAll(tt.name, " ", "")
			_, err := setup(id, tt.ports...)
			var inUse *portInUseError
			if !errors.Is(err, contract.ErrConflict) || !errors.As(err, &inUse) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Setup = %v, want ErrConflict with %q", err, tt.want)
			}
			if _, err := tn.d.Status(ctx, id); !errors.Is(err, contract.ErrTaskNotFound) {
				t.Errorf("a refused Setup left state: %v", err)
			}
			checkNodeClean(t, tn, []string{id, "web"})
		})
	}

	// A port the driver would pick, in use: it picks another.
	taken := firstBindable(t)
	if err := bindIn(t, "", "tcp", taken, true); err != nil {
		t.Fatal(err)
	}
	st, err = setup("picked", contract.PortMapping{Name: "http", ContainerPort: 80})
	if err != nil {
		t.Fatal(err)
	}
	if st.Ports[0].HostPort == taken {
		t.Errorf("picked host port %d, which a process has bound", taken)
	}
	wantHeld(t, "", st.Ports[0], true)

	// Recover holds the ports again: one still held by a socket that
	// goes away soon after (the previous driver process exiting) once it
	// is free; one a process bound while no driver held it is reported,
	// the rest recovered.
	keep := st
	r2, err := setup("r2", contract.PortMapping{Name: "a", ContainerPort: 80}, contract.PortMapping{Name: "b", ContainerPort: 81})
	if err != nil {
		t.Fatal(err)
	}
	tn.d.Close() // as the driver's exit would, frees the placeholders
	wantHeld(t, "", keep.Ports[0], false)
	if err := bindIn(t, "", "tcp", r2.Ports[0].HostPort, true); err != nil {
		t.Fatal(err)
	}
	exiting, err := net.Listen("tcp", fmt.Sprintf(":%d", keep.Ports[0].HostPort))
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(300*time.Millisecond, func() { exiting.Close() })
	tn.d = tn.open()
	if err := tn.d.ConfigureNode(ctx, contract.NodeConfig{Subnet: tn.subnet}); err != nil {
		t.Fatal(err)
	}
	err = tn.d.Recover(ctx, []contract.NetworkStatus{*r2, *keep})
	if !errors.Is(err, contract.ErrConflict) || !strings.Contains(err.Error(), `"r2"`) ||
		!strings.Contains(err.Error(), fmt.Sprintf("host port %d/tcp", r2.Ports[0].HostPort)) ||
		strings.Contains(err.Error(), `"picked"`) {
		t.Errorf("Recover = %v, want r2's port %d reported in use, and only it", err, r2.Ports[0].HostPort)
	}
	for _, id := range []string{"r2", "picked"} {
		if _, err := tn.d.Status(ctx, id); err != nil {
			t.Errorf("%s not recovered: %v", id, err)
		}
	}
	wantHeld(t, "", keep.Ports[0], true)
	wantHeld(t, "", r2.Ports[1], true)
	if have, err := tn.d.nat.list(); err != nil || have[portKey{"tcp", r2.Ports[0].HostPort}] != (natTarget{r2.IP, 80}) {
		t.Errorf("r2's DNAT entry for its unheld port: %v (%v)", have, err)
	}
	for _, id := range []string{"r2", "picked"} {
		if err := tn.d.Teardown(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	wantHeld(t, "", keep.Ports[0], false)
	wantHeld(t, "", r2.Ports[1], false)
}

// TestDriver_HostPortPlaceholderNodeNetns: with Config.HostNetns, the
// placeholder is in the node's namespace, not the driver's, and traffic
// from another machine (host A) to the node's address reaches the
// container.
func TestDriver_HostPortPlaceholderNodeNetns(t *testing.T) {
	hosts := twoHosts(t)
	b := hosts[1]
	if b.d.nat.missing != nil {
		t.Skipf("kernel without nf_tables: %v", b.d.nat.missing)
	}
	ctx := context.Background()
	st, err := b.d.Setup(ctx, contract.NetworkRequest{ContainerID: "web", Mode: contract.NetworkModeBridge,
		Ports: []contract.PortMapping{{Name: "http", ContainerPort: 8080}}})
	if err != nil {
		t.Fatal(err)
	}
	wantHeld(t, b.path, st.Ports[0], true)
	// Forwarding from the underlay: a host-wide choice the driver leaves
	// to the node (doc.go); this node is the test's.
	if err := setForwarding(b.path, "ul0"); err != nil {
		t.Fatal(err)
	}
	ln := listenIn(t, st.Netns, hostPort(st.IP, 8080))
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, err = c.Write([]byte("hi"))
			c.Close()
		}
		done <- err
	}()
	c, err := dialIn(hosts[0].path, hostPort(b.underlay, int(st.Ports[0].HostPort)))
	if err != nil {
		t.Fatalf("dial node B's host port from host A: %v", err)
	}
	buf := make([]byte, 2)
	if _, err := c.Read(buf); err != nil || string(buf) != "hi" {
		t.Errorf("read %q, %v; want the container's answer", buf, err)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := b.d.Teardown(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	wantHeld(t, b.path, st.Ports[0], false)
}

// freePort returns a port of proto nothing on the node has now.
func freePort(tb testing.TB, proto string) uint16 {
	tb.Helper()
	if proto == "udp" {
		c, err := net.ListenPacket("udp", ":0")
		if err != nil {
			tb.Fatal(err)
		}
		defer c.Close()
		return uint16(c.LocalAddr().(*net.UDPAddr).Port)
	}
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// firstBindable returns the lowest TCP port of the driver's range that
// can be bound now: the one it would pick (the lower ones are in use).
func firstBindable(tb testing.TB) uint16 {
	tb.Helper()
	for p := portRangeFirst; p <= portRangeLast; p++ {
		if bindIn(tb, "", "tcp", uint16(p), false) == nil {
			return uint16(p)
		}
	}
	tb.Fatalf("no bindable port in %d-%d", portRangeFirst, portRangeLast)
	return 0
}

// BenchmarkPlaceholder measures holding one TCP host port and releasing
// it (what a Setup and Teardown with one host port add), with the node
// the driver's own namespace and, interleaved, another one
// (Config.HostNetns: the socket is opened on a thread moved there).
func BenchmarkPlaceholder(b *testing.B) {
	requireNetns(b)
	ns := filepath.Join(b.TempDir(), "node")
	if err := createNetns(ns); err != nil {
		b.Fatal(err)
	}
	defer netnsutil.RemoveNetns(ns)
	port := freePort(b, "tcp")
	var own, other []time.Duration
	for b.Loop() {
		for _, path := range []string{"", ns} {
			d := &Driver{cfg: Config{HostNetns: path}, ports: map[portKey]string{{"tcp", port}: "c"}, held: map[portKey]int{}}
			t0 := time.Now()
			if err := d.holdPorts([]contract.PortMapping{{Name: "http", HostPort: port}}); err != nil {
				b.Fatal(err)
			}
			d.releasePorts("c")
			if path == "" {
				own = append(own, time.Since(t0))
			} else {
				other = append(other, time.Since(t0))
			}
		}
	}
	b.ReportMetric(pct(own, 50)*1000, "own-netns-p50-µs")
	b.ReportMetric(pct(other, 50)*1000, "node-netns-p50-µs")
}
