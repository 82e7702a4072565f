//go:build linux

package bridge

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/netnsutil"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

// BenchmarkSetupTeardown measures a bridge-mode Setup (lease persisted,
// namespace, veth pair, address, lo and eth0 up, default route) and its
// Teardown, and reports the median and 99th percentile of each.
func BenchmarkSetupTeardown(b *testing.B) {
	tn := newTestNode(b, testSubnet())
	ctx := context.Background()
	var setups, teardowns []time.Duration
	i := 0
	for b.Loop() {
		id := fmt.Sprint("bench-", i)
		i++
		t0 := time.Now()
		if _, err := tn.d.Setup(ctx, contract.NetworkRequest{ContainerID: id, Mode: contract.NetworkModeBridge}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := tn.d.Teardown(ctx, id); err != nil {
			b.Fatal(err)
		}
		setups = append(setups, t1.Sub(t0))
		teardowns = append(teardowns, time.Since(t1))
	}
	b.ReportMetric(pct(setups, 50), "setup-p50-ms")
	b.ReportMetric(pct(setups, 99), "setup-p99-ms")
	b.ReportMetric(pct(teardowns, 50), "teardown-p50-ms")
	b.ReportMetric(pct(teardowns, 99), "teardown-p99-ms")
}

// pct returns the p-th percentile of ds in milliseconds.
func pct(ds []time.Duration, p int) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[(len(s)-1)*p/100]) / float64(time.Millisecond)
}

// BenchmarkHostPort measures adding and removing one host port mapping as
// the driver does it through the nftables library (add: one transaction;
// remove: list the map, then one transaction) and, interleaved in the
// same loop on the same table, through the nft binary as the driver did
// before (nft -j list map, then nft -f - with the change: two processes
// per operation). It reports the median of each and the binary's ÷ the
// library's.
func BenchmarkHostPort(b *testing.B) {
	n, ns := newTestNAT(b)
	if err := n.ensure(DefaultBridge, netip.MustParsePrefix("10.1.2.0/24"), netip.MustParsePrefix("10.1.0.0/16")); err != nil {
		b.Fatal(err)
	}
	nft, err := exec.LookPath("nft")
	if err != nil {
		b.Log("no nft binary: library only")
	}
	cli := func(script string, args ...string) {
		err := netnsutil.InNetns(ns, func() error {
			cmd := exec.Command(nft, args...)
			cmd.Stdin = strings.NewReader(script)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("nft %v: %v: %s", args, err, out)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	ip := netip.MustParseAddr("10.1.2.3")
	pm := []contract.PortMapping{{Protocol: "tcp", HostPort: 31000, ContainerPort: 8080}}
	var libAdd, libDel, cliAdd, cliDel []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := n.add(pm, ip); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		have, err := n.list()
		if err == nil {
			_, ok := have[portKey{"tcp", 31000}]
			if !ok {
				b.Fatal("mapping not added")
			}
			err = n.del([]portKey{{"tcp", 31000}})
		}
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		libAdd, libDel = append(libAdd, t1.Sub(t0)), append(libDel, t2.Sub(t1))
		if nft == "" {
			continue
		}
		t0 = time.Now()
		cli("", "-j", "list", "map", "ip", DefaultBridge, hostportsMap)
		cli("add element ip "+DefaultBridge+" hostports { tcp . 31000 : 10.1.2.3 . 8080 }\n", "-f", "-")
		t1 = time.Now()
		cli("", "-j", "list", "map", "ip", DefaultBridge, hostportsMap)
		cli("delete element ip "+DefaultBridge+" hostports { tcp . 31000 }\n", "-f", "-")
		t2 = time.Now()
		cliAdd, cliDel = append(cliAdd, t1.Sub(t0)), append(cliDel, t2.Sub(t1))
	}
	b.ReportMetric(pct(libAdd, 50), "lib-add-p50-ms")
	b.ReportMetric(pct(libDel, 50), "lib-del-p50-ms")
	if nft != "" {
		b.ReportMetric(pct(cliAdd, 50), "nft-add-p50-ms")
		b.ReportMetric(pct(cliDel, 50), "nft-del-p50-ms")
		b.ReportMetric(pct(cliAdd, 50)/pct(libAdd, 50), "add-nft/lib")
		b.ReportMetric(pct(cliDel, 50)/pct(libDel, 50), "del-nft/lib")
	}
	if err := n.remove(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSetupTeardown200 sets up 200 bridge-mode containers on one
// driver, each with one host port, then tears them all down; it reports
// each phase's total and the median and 99th percentile per operation,
// and fails if anything of a container is left on the node.
func BenchmarkSetupTeardown200(b *testing.B) {
	tn := newTestNode(b, testSubnet())
	run := 0
	var setups, teardowns []time.Duration
	var setupTotal, teardownTotal time.Duration
	for b.Loop() {
		s, t := setupTeardownMany(b, tn, 200, fmt.Sprint("r", run, "-"))
		run++
		setups, teardowns = append(setups, s...), append(teardowns, t...)
		setupTotal, teardownTotal = setupTotal+sum(s), teardownTotal+sum(t)
	}
	b.ReportMetric(setupTotal.Seconds()/float64(run), "setup-total-s")
	b.ReportMetric(teardownTotal.Seconds()/float64(run), "teardown-total-s")
	b.ReportMetric(pct(setups, 50), "setup-p50-ms")
	b.ReportMetric(pct(setups, 99), "setup-p99-ms")
	b.ReportMetric(pct(teardowns, 50), "teardown-p50-ms")
	b.ReportMetric(pct(teardowns, 99), "teardown-p99-ms")
	// Does a Setup get slower with more containers on the bridge?
	b.ReportMetric(pct(setups[:20], 50), "setup-first20-p50-ms")
	b.ReportMetric(pct(setups[180:200], 50), "setup-last20-p50-ms")
}

func sum(ds []time.Duration) time.Duration {
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return t
}

// transferSize is what each transfer of BenchmarkThroughput sends.
const transferSize = 256 << 20

// BenchmarkThroughput measures TCP throughput (one connection, transferSize
// bytes, Go sender and receiver with 1 MiB buffers) container to container
// on one bridge and across two nodes over the VXLAN overlay (twoHosts),
// and host loopback (127.0.0.1 in the benchmark's own namespace) in the
// same iteration, in rotating order. It reports the median of loopback's
// Gbit/s and of bridge ÷ loopback and overlay ÷ loopback; -v logs each
// iteration.
func BenchmarkThroughput(b *testing.B) {
	hosts := twoHosts(b)
	ctx := context.Background()
	setup := func(h *fakeHost, id string) *contract.NetworkStatus {
		st, err := h.d.Setup(ctx, contract.NetworkRequest{ContainerID: id, Mode: contract.NetworkModeBridge})
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	a1, a2, b1 := setup(hosts[0], "a1"), setup(hosts[0], "a2"), setup(hosts[1], "b1")
	loopback := netip.MustParseAddr("127.0.0.1")
	var lo, bridge, overlay []float64
	for i := 0; b.Loop(); i++ {
		// Each iteration starts with the next of the three, so that a
		// drift in the machine's load does not always favour one.
		var l, br, vx float64
		runs := []func(){
			func() { l = transfer(b, "", loopback, "", transferSize) },
			func() { br = transfer(b, a1.Netns, a1.IP, a2.Netns, transferSize) },
			func() { vx = transfer(b, a1.Netns, a1.IP, b1.Netns, transferSize) },
		}
		for j := range runs {
			runs[(i+j)%len(runs)]()
		}
		lo, bridge, overlay = append(lo, l), append(bridge, br/l), append(overlay, vx/l)
		b.Logf("loopback %.1f Gbit/s, bridge %.1f Gbit/s (%.2f), overlay %.1f Gbit/s (%.2f)", l*8/1e9, br*8/1e9, br/l, vx*8/1e9, vx/l)
	}
	b.ReportMetric(median(lo)*8/1e9, "loopback-Gbit/s")
	b.ReportMetric(median(bridge), "bridge/loopback")
	b.ReportMetric(median(overlay), "overlay/loopback")
}

// transfer sends n bytes over one TCP connection from the namespace at
// cli to a listener on ip in the namespace at srv ("" = ours) and returns
// bytes per second, from the connection's start to the receiver's end of
// file.
func transfer(tb testing.TB, srv string, ip netip.Addr, cli string, n int64) float64 {
	tb.Helper()
	var ln net.Listener
	err := netnsutil.InNetns(srv, func() (err error) {
		ln, err = net.Listen("tcp", hostPort(ip, 0))
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{0, err}
			return
		}
		defer c.Close()
		buf := make([]byte, 1<<20)
		var got int64
		for {
			k, err := c.Read(buf)
			got += int64(k)
			if err == io.EOF {
				done <- result{got, nil}
				return
			}
			if err != nil {
				done <- result{got, err}
				return
			}
		}
	}()
	t0 := time.Now()
	c, err := dialIn(cli, ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1<<20)
	for sent := int64(0); sent < n; {
		k, err := c.Write(buf[:min(int64(len(buf)), n-sent)])
		if err != nil {
			tb.Fatal(err)
		}
		sent += int64(k)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		tb.Fatal(err)
	}
	r := <-done
	el := time.Since(t0)
	if r.err != nil || r.n != n {
		tb.Fatalf("received %d of %d bytes: %v", r.n, n, r.err)
	}
	return float64(n) / el.Seconds()
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
