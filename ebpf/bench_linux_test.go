package ebpf

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	cebpf "github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// enterNetns moves the calling goroutine's thread into the network
// namespace at path for good (the thread stays locked, so it dies with the
// goroutine instead of going back to the pool).
func enterNetns(path string) error {
	runtime.LockOSThread()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Setns(fd, unix.CLONE_NEWNET)
}

// vethPair makes two network namespaces joined by a veth pair, 10.200.0.1
// (a) and 10.200.0.2 (b), both private to this process; cleanup closes them
// (the kernel then removes the namespaces and the veth).
func vethPair(tb testing.TB) (a, b netns.NsHandle) {
	tb.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		tb.Fatal(err)
	}
	defer orig.Close()
	for _, h := range []*netns.NsHandle{&a, &b} {
		*h, err = netns.New()
		if err != nil {
			netns.Set(orig)
			tb.Fatal(err)
		}
		if err := netns.Set(orig); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Cleanup(func() { a.Close(); b.Close() })
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: "dcos-bench-a", Namespace: netlink.NsFd(a)},
		PeerName:      "dcos-bench-b",
		PeerNamespace: netlink.NsFd(b),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		tb.Fatal(err)
	}
	for _, side := range []struct {
		ns   netns.NsHandle
		name string
		addr string
	}{{a, "dcos-bench-a", "10.200.0.1/24"}, {b, "dcos-bench-b", "10.200.0.2/24"}} {
		h, err := netlink.NewHandleAt(side.ns)
		if err != nil {
			tb.Fatal(err)
		}
		defer h.Close()
		l, err := h.LinkByName(side.name)
		if err != nil {
			tb.Fatal(err)
		}
		addr, _ := netlink.ParseAddr(side.addr)
		if err := h.AddrAdd(l, addr); err != nil {
			tb.Fatal(err)
		}
		if err := h.LinkSetUp(l); err != nil {
			tb.Fatal(err)
		}
	}
	return a, b
}

// listenIn calls listen(addr) inside namespace ns; cleanup closes what it
// returns.
func listenIn(tb testing.TB, ns netns.NsHandle, addr string, listen func(string) (io.Closer, error)) io.Closer {
	tb.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		tb.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		tb.Fatal(err)
	}
	l, lerr := listen(addr)
	if err := netns.Set(orig); err != nil {
		panic(err) // this thread must not go back to the pool in ns
	}
	if lerr != nil {
		tb.Fatal(lerr)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

// BenchmarkAccounting_veth measures the cost of accounting on a task's
// traffic: a task process in a cgroup, in netns a, sends to a receiver in
// this process, in netns b, over veth. Rounds rotate between nothing
// attached ("none"), the programs attached to the task's cgroup ("ebpf"),
// and, when nft is installed, an nftables table in netns a counting the
// cgroup's packets in output and input ("nft"). It reports each mode's
// median rate and the median per-iteration ratio of each mode to "none"
// (above 1: faster). Sub-benchmarks:
//
//   - tcp: 64 MiB over one TCP connection per round (large GSO buffers:
//     few packets per byte);
//   - udp: 20,000 datagrams of 64 bytes per round, timed at the sender
//     (one packet per send: the per-packet cost is the largest share).
//
// Run as:
//
//	go test -run '^$' -bench Accounting_veth -benchtime 60x ./ebpf/
func BenchmarkAccounting_veth(b *testing.B) {
	acc := loadTest(b, Config{})
	dir := newCgroup(b, "")
	nsA, nsB := vethPair(b)
	nsPath := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(nsA))
	modes := accountingModes(b, acc, dir, nsPath)

	b.Run("tcp", func(b *testing.B) {
		ln := listenIn(b, nsB, "10.200.0.2:0", func(addr string) (io.Closer, error) { return net.Listen("tcp", addr) }).(net.Listener)
		stdin := startSender(b, dir, "tcp", nsPath, ln.Addr().String(), nil)
		conn, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		const round = 64 << 20
		buf := make([]byte, 256<<10)
		send := func() time.Duration {
			start := time.Now()
			if _, err := fmt.Fprintln(stdin, round); err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, io.LimitReader(conn, round), buf); err != nil {
				b.Fatal(err)
			}
			return time.Since(start)
		}
		rotate(b, modes, send, round/1e6, "MB/s")
	})

	b.Run("udp", func(b *testing.B) {
		pc := listenIn(b, nsB, "10.200.0.2:0", func(addr string) (io.Closer, error) { return net.ListenPacket("udp", addr) }).(net.PacketConn)
		go func() { // drain; losses do not matter, the sender is timed
			buf := make([]byte, 2048)
			for {
				if _, _, err := pc.ReadFrom(buf); err != nil {
					return
				}
			}
		}()
		outR, outW := io.Pipe()
		stdin := startSender(b, dir, "udp", nsPath, pc.LocalAddr().String(), outW)
		acks := bufio.NewScanner(outR)
		const round = 20000
		send := func() time.Duration {
			start := time.Now()
			if _, err := fmt.Fprintln(stdin, round); err != nil {
				b.Fatal(err)
			}
			if !acks.Scan() {
				b.Fatalf("sender: %v", acks.Err())
			}
			return time.Since(start)
		}
		rotate(b, modes, send, round/1e3, "kpkt/s")
	})
}

// benchMode is one way of running the benchmark's rounds.
type benchMode struct {
	name        string
	setup, undo func() error
}

// accountingModes returns the modes none, ebpf and (if nft is installed) nft
// for the task cgroup dir whose sender runs in netns nsPath.
func accountingModes(b *testing.B, acc *Accounting, dir, nsPath string) []benchMode {
	var at *Attachment
	modes := []benchMode{
		{name: "none", setup: func() error { return nil }, undo: func() error { return nil }},
		{name: "ebpf",
			setup: func() (err error) { at, err = acc.Attach(dir); return err },
			undo:  func() error { return at.Detach() }},
	}
	nftPath, err := exec.LookPath("nft")
	if err != nil {
		b.Log("nft not installed: no nftables comparison")
		return modes
	}
	// nft resolves a cgroupv2 path beneath /sys/fs/cgroup to its inode;
	// the level is the task cgroup's depth in the v2 hierarchy.
	rel, _ := filepath.Rel("/sys/fs/cgroup", dir)
	level := strings.Count(strings.TrimPrefix(dir, unifiedRoot(b)), "/")
	rules := fmt.Sprintf(`table inet dcos_bench {
	chain out { type filter hook output priority 0; socket cgroupv2 level %[1]d %[2]q counter; }
	chain in { type filter hook input priority 0; socket cgroupv2 level %[1]d %[2]q counter; }
}`, level, rel)
	nft := func(stdin string, args ...string) (string, error) {
		c := exec.Command("nsenter", append([]string{"--net=" + nsPath, nftPath}, args...)...)
		c.Stdin = strings.NewReader(stdin)
		out, err := c.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("nft %v: %v: %s", args, err, out)
		}
		return string(out), nil
	}
	return append(modes, benchMode{name: "nft",
		setup: func() error { _, err := nft(rules, "-f", "-"); return err },
		undo: func() error {
			// Check that the rule matched the task's packets.
			out, err := nft("", "list", "chain", "inet", "dcos_bench", "out")
			if err != nil || strings.Contains(out, "counter packets 0 ") {
				return fmt.Errorf("nft counted nothing: %v: %s", err, out)
			}
			_, err = nft("", "delete", "table", "inet", "dcos_bench")
			return err
		}})
}

// rotate runs b.N iterations of one round per mode, rotating their order so
// that drift hits every mode alike, and reports the median rate (units per
// round / round time) of each mode and its median ratio to the first.
// Medians: one slow round (a preemption on 2 vCPUs) moves a mean a lot.
func rotate(b *testing.B, modes []benchMode, send func() time.Duration, perRound float64, unit string) {
	send() // warm up
	rounds := make([][]time.Duration, len(modes))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range modes {
			k := (i + j) % len(modes)
			b.StopTimer()
			if err := modes[k].setup(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			rounds[k] = append(rounds[k], send())
			b.StopTimer()
			if err := modes[k].undo(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	for k, m := range modes {
		b.ReportMetric(perRound/median(slices.Clone(rounds[k])).Seconds(), unit+"-"+m.name)
		if k == 0 {
			continue
		}
		ratios := make([]float64, b.N)
		for i := range ratios {
			ratios[i] = rounds[0][i].Seconds() / rounds[k][i].Seconds()
		}
		b.ReportMetric(median(ratios), m.name+"/"+modes[0].name)
	}
}

// startSender starts a benchSender task in cgroup dir and returns its
// stdin; cleanup closes it and waits for the task.
func startSender(b *testing.B, dir, network, nsPath, addr string, stdout io.WriteCloser) io.Writer {
	pr, pw := io.Pipe()
	var out io.Writer
	if stdout != nil {
		out = stdout
	}
	cmd := startTask(b, dir, pr, out, "sender", network, nsPath, addr)
	b.Cleanup(func() {
		pw.Close()
		if err := cmd.Wait(); err != nil {
			b.Errorf("sender: %v", err)
		}
		if stdout != nil {
			stdout.Close()
		}
	})
	return pw
}

// median returns the median of xs (xs is sorted in place).
func median[T cmp.Ordered](xs []T) T {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// BenchmarkPrograms measures one run of each program in the kernel
// (BPF_PROG_TEST_RUN), for a packet of a counted cgroup and of one that is
// not: the cost added to every sk_buff. The test run's socket belongs to
// this process's cgroup, whose counters are registered for the "counted"
// case.
func BenchmarkPrograms(b *testing.B) {
	acc := loadTest(b, Config{})
	self, err := ownCgroupID()
	if err != nil {
		b.Skipf("own cgroup v2 id: %v", err)
	}
	pkt := make([]byte, 1500)
	for _, p := range []struct {
		name string
		prog *cebpf.Program
	}{{"ingress", acc.objs.DcosIngress}, {"egress", acc.objs.DcosEgress}} {
		for _, counted := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/counted=%v", p.name, counted), func(b *testing.B) {
				if counted {
					if _, err := acc.register(self); err != nil {
						b.Fatal(err)
					}
					defer acc.objs.DcosNet.Delete(self)
				}
				ret, per, err := p.prog.Benchmark(pkt, b.N, b.ResetTimer)
				if err != nil {
					b.Fatal(err)
				}
				if ret != 1 {
					b.Fatalf("program returned %d, want 1 (allow)", ret)
				}
				b.ReportMetric(float64(per.Nanoseconds()), "ns/packet")
				if counted {
					c, err := acc.CountersOf(self)
					if err != nil {
						b.Fatal(err)
					}
					if c.RxPackets+c.TxPackets < uint64(b.N) {
						b.Fatalf("counted %+v after %d runs", c, b.N)
					}
				}
			})
		}
	}
}

// ownCgroupID returns the id of this process's cgroup v2 directory.
func ownCgroupID() (uint64, error) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			for _, root := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
				if id, err := CgroupID(root + rest); err == nil {
					return id, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("no cgroup v2 entry in /proc/self/cgroup")
}
