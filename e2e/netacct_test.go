package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// sink accepts TCP connections on loopback and counts what it reads.
func sink(t *testing.T) (port string, got *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	got = new(atomic.Int64)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				n, _ := io.Copy(io.Discard, c)
				got.Add(n)
			}()
		}
	}()
	_, port, _ = net.SplitHostPort(l.Addr().String())
	return port, got
}

// TestDev_NetworkAccounting: a task that sends 10 MiB to a TCP sink is
// counted by the eBPF programs on its cgroup (at least the 10 MiB, at most
// what its socket sent, retransmissions included, plus headers), the counts
// reach the kernel with the usage samples, dcosctl top shows a steady
// sender's rate, and the counters survive a SIGKILL of dcosd.
func TestDev_NetworkAccounting(t *testing.T) {
	t.Parallel()
	needRoot(t)
	const n = 10 << 20
	port, got := sink(t)
	e := newEnv(t)
	dev := e.startDev("--resources", "cpus=2,mem=2Gi", "--usage-interval", "500ms")
	send := runTask(e, "--cpus", "0.5", "--mem", "64Mi", "--", bin.tcpsend, "127.0.0.1:"+port, strconv.Itoa(n))
	steady := runTask(e, "--cpus", "0.5", "--mem", "64Mi", "--", "bash", "-c",
		"exec 3>/dev/tcp/127.0.0.1/"+port+"; while :; do head -c 262144 /dev/zero >&3; sleep 0.25; done")

	e.eventually("10 MiB at the sink", func() (bool, string) { return got.Load() >= n, sprint(got.Load()) })
	// The sender's own socket says what it put on the wire once the sink
	// has everything: payload bytes, retransmissions included.
	var sent, retrans uint64
	e.eventually("the sender's tcp_info", func() (bool, string) {
		b, _ := os.ReadFile(filepath.Join(taskByID(e, send.GetId()).GetSandbox(), "stdout"))
		var segs uint64
		k, _ := fmt.Sscanf(string(b), "bytes_sent=%d bytes_retrans=%d segs_out=%d", &sent, &retrans, &segs)
		return k == 3, string(b)
	})
	var tx, pkts uint64
	e.eventually("the sender's tx counter", func() (bool, string) {
		u := taskByID(e, send.GetId()).GetUsage()
		tx, pkts = u.GetTxBytes(), u.GetTxPackets()
		return tx >= n && pkts > 0, sprint(u)
	})
	// At most what the socket sent (retransmissions included) plus headers:
	// each counted packet (an sk_buff, up to 64 KiB with GSO; smaller when
	// the receiver's window is small; pure ACKs, SYN and FIN too) carries
	// at most 60 bytes of IPv4 and 60 of TCP headers.
	t.Logf("counted tx %d bytes in %d packets; the socket sent %d (%d retransmitted)", tx, pkts, sent, retrans)
	if max := sent + pkts*120; tx > max {
		t.Errorf("tx bytes %d in %d packets for %d sent by the socket (%d retransmitted), more than %d", tx, pkts, sent, retrans, max)
	}

	e.eventually("dcosctl top shows the steady sender's rate", func() (bool, string) {
		out := e.mustCtl("top", "--once", "--sort", "tx")
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) > 6 && f[0] == steady.GetId() && f[6] != "0" && f[6] != "-" {
				return true, out
			}
		}
		return false, out
	})

	// Counters survive dcosd being killed: the pinned links keep counting.
	dev.kill()
	e.startDev("--resources", "cpus=2,mem=2Gi", "--usage-interval", "500ms")
	e.eventually("counters after the restart", func() (bool, string) {
		u := taskByID(e, send.GetId()).GetUsage()
		return u.GetTxBytes() >= tx && u.GetSampled() != nil, sprint(u)
	})
	for _, k := range []*pb.Task{send, steady} {
		e.mustCtl("revoke", k.GetAllocationId())
	}
}

// TestDev_NetworkAccountingOff: with the kernel feature check forced off,
// the agent starts, says exactly why, and reports usage without network
// counters.
func TestDev_NetworkAccountingOff(t *testing.T) {
	t.Parallel()
	needRoot(t)
	port, got := sink(t)
	e := newEnv(t)
	e.extraEnv = []string{"DCOS_EBPF_DISABLE=forced off by the test"}
	dev := e.startDev("--resources", "cpus=2,mem=2Gi", "--usage-interval", "500ms")
	if s := dev.stderr.String(); !strings.Contains(s, "WITHOUT network accounting") || !strings.Contains(s, "forced off by the test") {
		t.Errorf("dcosd dev did not say why network accounting is off; stderr:\n%s", tail(s, 30))
	}
	k := runTask(e, "--cpus", "0.5", "--mem", "64Mi", "--", "bash", "-c", "head -c 100000 /dev/zero > /dev/tcp/127.0.0.1/"+port+" && exec sleep 600")
	e.eventually("bytes at the sink", func() (bool, string) { return got.Load() >= 100000, sprint(got.Load()) })
	e.eventually("usage without network counters", func() (bool, string) {
		u := taskByID(e, k.GetId()).GetUsage()
		return u.GetMemBytes() > 0 && u.GetSampled().AsTime().Unix() > 0, sprint(u)
	})
	if u := taskByID(e, k.GetId()).GetUsage(); u.GetTxBytes() != 0 || u.GetTxPackets() != 0 {
		t.Errorf("usage has network counters with accounting off: %v", u)
	}
	e.mustCtl("revoke", k.GetAllocationId())
}

// needRoot skips t unless it runs as root, which cgroup isolation, eBPF
// and network namespaces need.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: cgroup isolation, eBPF accounting, network namespaces")
	}
}
