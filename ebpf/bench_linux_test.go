package ebpf

import (
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

// listenIn listens on addr inside namespace ns.
func listenIn(tb testing.TB, ns netns.NsHandle, addr string) net.Listener {
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
	ln, lerr := net.Listen("tcp", addr)
	if err := netns.Set(orig); err != nil {
		panic(err) // this thread must not go back to the pool in ns
	}
	if lerr != nil {
		tb.Fatal(lerr)
	}
	tb.Cleanup(func() { ln.Close() })
	return ln
}

// BenchmarkAccounting_veth measures TCP throughput from a task process in
// a cgroup (netns a) to a receiver in this process (netns b) over veth, in
// rounds of 64 MiB that rotate between: nothing attached ("none"), the
// programs attached to the task's cgroup ("ebpf"), and, when nft is
// installed, an nftables table in netns a that counts the cgroup's packets
// in output and input ("nft"). It reports each mode's median throughput and
// the median per-iteration ratio to "none". Run as:
//
//	go test -run '^$' -bench Accounting_veth -benchtime 60x ./ebpf/
func BenchmarkAccounting_veth(b *testing.B) {
	acc := loadTest(b, Config{})
	dir := newCgroup(b, "")
	nsA, nsB := vethPair(b)
	ln := listenIn(b, nsB, "10.200.0.2:0")

	pr, pw := io.Pipe()
	nsPath := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(nsA))
	cmd := startTask(b, dir, pr, "sender", nsPath, ln.Addr().String())
	b.Cleanup(func() {
		pw.Close()
		if err := cmd.Wait(); err != nil {
			b.Errorf("sender: %v", err)
		}
	})
	conn, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()

	const round = 64 << 20
	buf := make([]byte, 256<<10)
	send := func() time.Duration {
		start := time.Now()
		if _, err := fmt.Fprintln(pw, round); err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, io.LimitReader(conn, round), buf); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	send() // warm up: TCP window, page cache of the pipe

	type mode struct {
		name        string
		setup, undo func() error
		rounds      []time.Duration
	}
	var at *Attachment
	modes := []*mode{
		{name: "none", setup: func() error { return nil }, undo: func() error { return nil }},
		{name: "ebpf",
			setup: func() (err error) { at, err = acc.Attach(dir); return err },
			undo:  func() error { return at.Detach() }},
	}
	if nftPath, err := exec.LookPath("nft"); err == nil {
		// nft resolves a cgroupv2 path beneath /sys/fs/cgroup to its inode;
		// the level is the task cgroup's depth in the v2 hierarchy.
		rel, _ := filepath.Rel("/sys/fs/cgroup", dir)
		level := strings.Count(strings.TrimPrefix(dir, unifiedRoot(b)), "/")
		rules := fmt.Sprintf(`table inet dcos_bench {
	chain out { type filter hook output priority 0; socket cgroupv2 level %[1]d %[2]q counter; }
	chain in { type filter hook input priority 0; socket cgroupv2 level %[1]d %[2]q counter; }
}`, level, rel)
		nft := func(stdin string, args ...string) error {
			c := exec.Command("nsenter", append([]string{"--net=" + nsPath, nftPath}, args...)...)
			c.Stdin = strings.NewReader(stdin)
			if out, err := c.CombinedOutput(); err != nil {
				return fmt.Errorf("nft %v: %v: %s", args, err, out)
			}
			return nil
		}
		modes = append(modes, &mode{name: "nft",
			setup: func() error { return nft(rules, "-f", "-") },
			undo: func() error {
				// Check that the rule matched the task's packets.
				out, err := exec.Command("nsenter", "--net="+nsPath, nftPath, "list", "chain", "inet", "dcos_bench", "out").CombinedOutput()
				if err != nil || strings.Contains(string(out), "counter packets 0 ") {
					return fmt.Errorf("nft counted nothing: %v: %s", err, out)
				}
				return nft("", "delete", "table", "inet", "dcos_bench")
			}})
	} else {
		b.Log("nft not installed: no nftables comparison")
	}

	b.SetBytes(int64(len(modes)) * round)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Rotate the order so that drift hits every mode alike.
		for j := range modes {
			m := modes[(i+j)%len(modes)]
			b.StopTimer()
			if err := m.setup(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			m.rounds = append(m.rounds, send())
			b.StopTimer()
			if err := m.undo(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	b.StopTimer()
	// Medians: one slow round (a preemption on 2 vCPUs) moves a mean a lot.
	for _, m := range modes {
		b.ReportMetric(round/median(slices.Clone(m.rounds)).Seconds()/1e6, "MB/s-"+m.name)
		if m.name == "none" {
			continue
		}
		ratios := make([]float64, b.N)
		for i := range ratios {
			ratios[i] = modes[0].rounds[i].Seconds() / m.rounds[i].Seconds()
		}
		b.ReportMetric(median(ratios), m.name+"/none")
	}
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
