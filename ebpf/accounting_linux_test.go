package ebpf

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cebpf "github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary act as a task process (see TestMain).
const helperEnv = "DCOS_EBPF_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		if err := helper(mode, os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helper is a task process. "pingpong ADDR N": connect, send N bytes, read
// N bytes back, print the socket's count of bytes sent, close. "sender NET NETNS ADDR": see benchSender.
func helper(mode string, args []string) error {
	switch mode {
	case "pingpong":
		n, err := strconv.ParseInt(args[1], 10, 64)
		if err != nil {
			return err
		}
		c, err := net.Dial("tcp", args[0])
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := io.CopyN(c, zeros{}, n); err != nil {
			return err
		}
		if _, err := io.CopyN(io.Discard, c, n); err != nil {
			return err
		}
		// The sink has read all we sent before it answered: our count of
		// bytes put on the wire (retransmissions included) is final.
		sent, err := bytesSent(c.(*net.TCPConn))
		if err != nil {
			return err
		}
		_, err = fmt.Println(sent)
		return err
	case "sender":
		return benchSender(args[0], args[1], args[2])
	}
	return fmt.Errorf("unknown helper mode %q", mode)
}

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// loadTest loads accounting for a test, skipping when the kernel truly
// cannot (the skip names the feature), and on cleanup destroys it and checks
// that its programs and map are gone from the kernel.
func loadTest(t testing.TB, cfg Config) *Accounting {
	t.Helper()
	a, err := Load(cfg)
	if errors.Is(err, ErrNotSupported) {
		t.Skipf("kernel cannot run the accounting programs: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	progs, maps := objectIDs(t, a)
	t.Cleanup(func() {
		if err := a.Destroy(); err != nil {
			t.Errorf("Destroy: %v", err)
		}
		checkGone(t, progs, maps)
		if cfg.PinDir != "" {
			if _, err := os.Stat(cfg.PinDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("pin dir %s left behind: %v", cfg.PinDir, err)
			}
			_ = os.Remove(filepath.Dir(cfg.PinDir)) // BPFFS/dcos, if no other agent's

		}
	})
	return a
}

// objectIDs returns the kernel ids of a's programs and map.
func objectIDs(t testing.TB, a *Accounting) ([]cebpf.ProgramID, []cebpf.MapID) {
	t.Helper()
	var progs []cebpf.ProgramID
	for _, p := range []*cebpf.Program{a.objs.DcosIngress, a.objs.DcosEgress} {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, ok := info.ID()
		if !ok {
			t.Fatal("no program id")
		}
		progs = append(progs, id)
	}
	info, err := a.objs.DcosNet.Info()
	if err != nil {
		t.Fatal(err)
	}
	mid, ok := info.ID()
	if !ok {
		t.Fatal("no map id")
	}
	return progs, []cebpf.MapID{mid}
}

// checkGone fails t unless the programs and maps are freed. The kernel frees
// them when their last reference goes, possibly a moment later.
func checkGone(t testing.TB, progs []cebpf.ProgramID, maps []cebpf.MapID) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var alive []string
		for _, id := range progs {
			if p, err := cebpf.NewProgramFromID(id); err == nil {
				p.Close()
				alive = append(alive, fmt.Sprintf("program %d", id))
			}
		}
		for _, id := range maps {
			if m, err := cebpf.NewMapFromID(id); err == nil {
				m.Close()
				alive = append(alive, fmt.Sprintf("map %d", id))
			}
		}
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("left in the kernel: %v", alive)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// unifiedRoot returns the mount point of the cgroup v2 hierarchy.
func unifiedRoot(t testing.TB) string {
	t.Helper()
	for _, d := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		var fs unix.Statfs_t
		if unix.Statfs(d, &fs) == nil && fs.Type == unix.CGROUP2_SUPER_MAGIC {
			return d
		}
	}
	t.Skip("no cgroup v2 hierarchy mounted")
	return ""
}

var nonName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// newCgroup makes a fresh cgroup v2 directory for the test and, on cleanup,
// checks that it can be removed and that no link is attached to it.
func newCgroup(t testing.TB, suffix string) string {
	t.Helper()
	dir := filepath.Join(unifiedRoot(t), fmt.Sprintf("dcos-ebpf-test-%d-%s%s", os.Getpid(), nonName.ReplaceAllString(t.Name(), "_"), suffix))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	id, err := CgroupID(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if links := linksOn(t, id); len(links) > 0 {
			t.Errorf("links still attached to cgroup %d: %v", id, links)
		}
		if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("remove cgroup: %v", err)
		}
	})
	return dir
}

// linksOn returns the ids of the links attached to cgroup id, from the
// kernel's list of all links.
func linksOn(t testing.TB, id uint64) []link.ID {
	t.Helper()
	var ids []link.ID
	it := new(link.Iterator)
	defer it.Close()
	for it.Next() {
		info, err := it.Link.Info()
		if err != nil {
			continue
		}
		if cg := info.Cgroup(); cg != nil && cg.CgroupId == id {
			ids = append(ids, it.ID)
		}
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// attachedPrograms returns how many programs are attached to dir per
// direction (ingress, egress), from BPF_PROG_QUERY.
func attachedPrograms(t testing.TB, dir string) [2]int {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var n [2]int
	for i, d := range directions {
		r, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: d.attach})
		if err != nil {
			t.Fatal(err)
		}
		n[i] = len(r.Programs)
	}
	return n
}

// startTask starts the test binary as a task process in cgroup dir (clone3
// into the cgroup, as the exec driver does).
func startTask(t testing.TB, dir string, stdin io.Reader, stdout io.Writer, mode string, args ...string) *exec.Cmd {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// pingpong runs a task in dir that sends n bytes to a sink in this process
// (outside the cgroup) and reads n bytes back. It returns what each socket
// says it put on the wire, retransmissions included: the task's (egress of
// the cgroup) and the sink's (ingress).
func pingpong(t testing.TB, dir string, n int64) (taskSent, sinkSent uint64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		if _, err := io.CopyN(io.Discard, c, n); err != nil {
			done <- err
			return
		}
		if _, err = io.CopyN(c, zeros{}, n); err != nil {
			done <- err
			return
		}
		// The task closes once it read everything: our count is final.
		io.Copy(io.Discard, c)
		sinkSent, err = bytesSent(c.(*net.TCPConn))
		done <- err
	}()
	var out strings.Builder
	cmd := startTask(t, dir, nil, &out, "pingpong", ln.Addr().String(), strconv.FormatInt(n, 10))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("task: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("sink: %v", err)
	}
	if taskSent, err = strconv.ParseUint(strings.TrimSpace(out.String()), 10, 64); err != nil {
		t.Fatalf("task's bytes sent: %v", err)
	}
	return taskSent, sinkSent
}

// bytesSent is the payload bytes c's socket sent, retransmissions
// included (tcp_info's tcpi_bytes_sent).
func bytesSent(c *net.TCPConn) (uint64, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var info *unix.TCPInfo
	var ierr error
	if err := raw.Control(func(fd uintptr) { info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		return 0, err
	}
	if ierr != nil {
		return 0, fmt.Errorf("tcp_info: %w", ierr)
	}
	return info.Bytes_sent, nil
}

// checkSent fails t unless got bytes in packets are at least the payload
// and at most what the sending socket put on the wire (retransmissions
// included) plus 120 bytes of IPv4 and TCP headers per packet.
func checkSent(t testing.TB, what string, got, packets, payload, sent uint64) {
	t.Helper()
	if packets == 0 {
		t.Errorf("%s: 0 packets", what)
	}
	if got < payload || got > sent+120*packets {
		t.Errorf("%s: %d bytes in %d packets, want at least %d and at most the %d the socket sent + headers", what, got, packets, payload, sent)
	}
}

func TestAccounting_Attach_tcp(t *testing.T) {
	a := loadTest(t, Config{})
	dir := newCgroup(t, "")
	at, err := a.Attach(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := a.Attach(dir); err != nil || again != at {
		t.Fatalf("second Attach = %p, %v; want the first attachment %p", again, err, at)
	}
	if n := attachedPrograms(t, dir); n != [2]int{1, 1} {
		t.Fatalf("programs attached (ingress, egress) = %v, want [1 1]", n)
	}
	if c, err := at.Counters(); err != nil || c != (Counters{}) {
		t.Fatalf("counters before traffic = %+v, %v; want zero", c, err)
	}

	const payload = 10 << 20
	taskSent, sinkSent := pingpong(t, dir, payload)

	c, err := a.Counters(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("10 MiB each way over loopback: %+v; sockets sent %d (task) and %d (sink)", c, taskSent, sinkSent)
	checkSent(t, "egress", c.TxBytes, c.TxPackets, payload, taskSent)
	checkSent(t, "ingress", c.RxBytes, c.RxPackets, payload, sinkSent)
	if byID, err := a.CountersOf(at.CgroupID()); err != nil || byID != c {
		t.Errorf("CountersOf = %+v, %v; want %+v", byID, err, c)
	}
	// Traffic of processes outside the cgroup (this test's sink) is not
	// counted anywhere.
	if ids, err := a.Registered(); err != nil || !slices.Equal(ids, []uint64{at.CgroupID()}) {
		t.Errorf("Registered = %v, %v; want only %d", ids, err, at.CgroupID())
	}
	if err := at.Detach(); err != nil {
		t.Fatal(err)
	}
}

func TestAttachment_Detach(t *testing.T) {
	a := loadTest(t, Config{})
	dir := newCgroup(t, "")
	at, err := a.Attach(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l := linksOn(t, at.CgroupID()); len(l) != 2 {
		t.Fatalf("links on the cgroup = %v, want 2", l)
	}
	pingpong(t, dir, 1<<20)
	if err := at.Detach(); err != nil {
		t.Fatal(err)
	}
	if l := linksOn(t, at.CgroupID()); len(l) != 0 {
		t.Errorf("links on the cgroup after Detach = %v, want none", l)
	}
	if n := attachedPrograms(t, dir); n != [2]int{0, 0} {
		t.Errorf("programs attached after Detach = %v, want none", n)
	}
	if _, err := a.Counters(dir); !errors.Is(err, ErrNotAttached) {
		t.Errorf("Counters after Detach: %v, want ErrNotAttached", err)
	}
	if ids, err := a.Registered(); err != nil || len(ids) != 0 {
		t.Errorf("Registered after Detach = %v, %v; want none", ids, err)
	}
	if err := at.Detach(); err != nil {
		t.Errorf("second Detach: %v", err)
	}
	// Traffic after Detach creates no entry.
	pingpong(t, dir, 1<<20)
	if ids, err := a.Registered(); err != nil || len(ids) != 0 {
		t.Errorf("Registered after traffic of a detached cgroup = %v, %v; want none", ids, err)
	}
	if err := os.Remove(dir); err != nil {
		t.Errorf("cgroup not removable after Detach: %v", err)
	}
}

func TestAccounting_Attach_errors(t *testing.T) {
	a := loadTest(t, Config{})
	for _, dir := range []string{t.TempDir(), "/nonexistent/cgroup"} {
		if _, err := a.Attach(dir); err == nil {
			t.Errorf("Attach(%s) succeeded", dir)
		}
	}
	if _, err := a.CountersOf(1); !errors.Is(err, ErrNotAttached) {
		t.Errorf("CountersOf(unknown) = %v, want ErrNotAttached", err)
	}
}

// TestAccounting_restart: with a PinDir, counting goes on while no agent
// runs, and the next agent's Load and Attach carry the counters on.
func TestAccounting_restart(t *testing.T) {
	pinDir := PinDirFor(fmt.Sprintf("test-%d", os.Getpid()))
	t.Cleanup(func() {
		// Safety net when the test stops early (registered first, runs
		// last): removing the pins releases the links and the map.
		if _, err := os.Stat(pinDir); err == nil {
			t.Errorf("pin dir %s left behind; removing it", pinDir)
			os.RemoveAll(pinDir)
		}
	})
	first, err := Load(Config{PinDir: pinDir})
	if errors.Is(err, ErrNotSupported) {
		t.Skipf("kernel cannot run the accounting programs: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	firstProgs, _ := objectIDs(t, first)
	dir := newCgroup(t, "")
	gone := newCgroup(t, "-gone") // its task ends while no agent runs
	at, err := first.Attach(dir)
	if err != nil {
		first.Destroy()
		t.Fatal(err)
	}
	atGone, err := first.Attach(gone)
	if err != nil {
		first.Destroy()
		t.Fatal(err)
	}
	const chunk = 1 << 20
	pingpong(t, dir, chunk)
	before, err := at.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil { // the agent stops
		t.Fatal(err)
	}

	// No agent: the pinned links go on counting.
	if n := attachedPrograms(t, dir); n != [2]int{1, 1} {
		t.Fatalf("programs attached while no agent runs = %v, want [1 1]", n)
	}
	pingpong(t, dir, chunk)
	if err := os.Remove(gone); err != nil {
		t.Fatalf("remove a cgroup with pinned links: %v", err)
	}

	second := loadTest(t, Config{PinDir: pinDir})
	ids, err := second.Registered()
	if err != nil || !slices.Contains(ids, at.CgroupID()) || !slices.Contains(ids, atGone.CgroupID()) {
		t.Fatalf("Registered after restart = %v, %v; want %d and %d", ids, err, at.CgroupID(), atGone.CgroupID())
	}
	if err := second.Forget(atGone.CgroupID()); err != nil {
		t.Fatal(err)
	}
	at2, err := second.Attach(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !at2.Adopted() {
		t.Error("Attach after restart did not adopt the pinned links")
	}
	if n := attachedPrograms(t, dir); n != [2]int{1, 1} {
		t.Fatalf("programs attached after adoption = %v, want [1 1]", n)
	}
	// The links now run the second agent's programs, the forgotten links
	// are gone: nothing holds the first agent's programs any more.
	checkGone(t, firstProgs, nil)
	down, err := at2.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if down.TxBytes < before.TxBytes+chunk || down.RxBytes < before.RxBytes+chunk {
		t.Errorf("counters after restart = %+v, want those before (%+v) plus the %d bytes each way sent while no agent ran", down, before, chunk)
	}
	pingpong(t, dir, chunk)
	after, err := at2.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if after.TxBytes < down.TxBytes+chunk || after.RxBytes < down.RxBytes+chunk {
		t.Errorf("counters with the second agent's programs = %+v, want %+v plus %d each way", after, down, chunk)
	}
	if ids, _ := second.Registered(); !slices.Equal(ids, []uint64{at.CgroupID()}) {
		t.Errorf("Registered after Forget = %v, want only %d", ids, at.CgroupID())
	}
	if ents, _ := os.ReadDir(filepath.Join(pinDir, "links")); len(ents) != 2 {
		t.Errorf("pinned links = %v, want the 2 of the attached cgroup", ents)
	}
	// Cleanup (loadTest) destroys second and checks that the pins, links,
	// programs and the map are gone.
}

func TestLoad_notSupported(t *testing.T) {
	t.Run("disabled", func(t *testing.T) {
		_, err := Load(Config{Disable: "operator said no"})
		var fe *FeatureError
		if !errors.Is(err, ErrNotSupported) || !errors.As(err, &fe) || !strings.Contains(fe.Feature, "operator said no") {
			t.Fatalf("Load(Disable) = %v, want a FeatureError with the reason", err)
		}
	})
	saved := requiredFeatures
	t.Cleanup(func() { requiredFeatures = saved })
	for i, f := range saved {
		t.Run(f.name, func(t *testing.T) {
			requiredFeatures = slices.Clone(saved)
			requiredFeatures[i].probe = func() error { return fmt.Errorf("probe: %w", cebpf.ErrNotSupported) }
			_, err := Load(Config{})
			var fe *FeatureError
			if !errors.Is(err, ErrNotSupported) || !errors.As(err, &fe) || fe.Feature != f.name {
				t.Fatalf("Load = %v, want a FeatureError naming %q", err, f.name)
			}
			if !strings.Contains(err.Error(), f.name) {
				t.Errorf("error %q does not name the feature", err)
			}
		})
	}
	t.Run("permission", func(t *testing.T) {
		requiredFeatures = slices.Clone(saved)
		requiredFeatures[0].probe = func() error { return fmt.Errorf("probe: %w", unix.EPERM) }
		_, err := Load(Config{})
		if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "permission") {
			t.Fatalf("Load = %v, want ErrNotSupported naming the permission", err)
		}
	})
}

// benchSender runs in a task process: from netns nsPath it dials addr
// (network "tcp" or "udp"), then for every line N on stdin sends N bytes
// (tcp) or N datagrams of 64 bytes and then "ok" on stdout (udp).
func benchSender(network, nsPath, addr string) error {
	if err := enterNetns(nsPath); err != nil {
		return err
	}
	c, err := net.Dial(network, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	dgram := make([]byte, 64)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		n, err := strconv.ParseInt(sc.Text(), 10, 64)
		if err != nil {
			return err
		}
		if network == "tcp" {
			if _, err := io.CopyN(c, zeros{}, n); err != nil {
				return err
			}
			continue
		}
		for range n {
			// A full receive queue on the other side drops, it does not
			// fail the send.
			if _, err := c.Write(dgram); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
				return err
			}
		}
		if _, err := fmt.Println("ok"); err != nil {
			return err
		}
	}
	return sc.Err()
}

// TestPrograms_allow: both programs let every packet through, counted or
// not (BPF_PROG_TEST_RUN; its socket is in this process's cgroup).
func TestPrograms_allow(t *testing.T) {
	a := loadTest(t, Config{})
	self, err := ownCgroupID()
	if err != nil {
		t.Skipf("own cgroup v2 id: %v", err)
	}
	pkt := make([]byte, 100)
	for _, counted := range []bool{false, true} {
		if counted {
			if _, err := a.register(self); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range []*cebpf.Program{a.objs.DcosIngress, a.objs.DcosEgress} {
			ret, _, err := p.Test(pkt)
			if err != nil {
				t.Fatal(err)
			}
			if ret != 1 {
				t.Errorf("%v (counted %v) returned %d, want 1", p, counted, ret)
			}
		}
	}
	c, err := a.CountersOf(self)
	if err != nil {
		t.Fatal(err)
	}
	// The test run takes pkt as an Ethernet frame; the programs see the IP
	// packet after its 14-byte header, as in real traffic.
	if c != (Counters{RxBytes: 86, RxPackets: 1, TxBytes: 86, TxPackets: 1}) {
		t.Errorf("counters after one test run each = %+v, want 86 bytes (100 - Ethernet header) and 1 packet each way", c)
	}
	if err := a.Forget(self); err != nil {
		t.Fatal(err)
	}
}

// TestAccounting_concurrent: Attach, Counters and Detach of several
// cgroups at once (run with -race).
func TestAccounting_concurrent(t *testing.T) {
	a := loadTest(t, Config{})
	dirs := make([]string, 4)
	for i := range dirs {
		dirs[i] = newCgroup(t, fmt.Sprintf("-%d", i))
	}
	errs := make(chan error, len(dirs)+1)
	stop := make(chan struct{})
	go func() { // a reader meanwhile
		for {
			select {
			case <-stop:
				errs <- nil
				return
			default:
			}
			if _, err := a.Registered(); err != nil {
				errs <- err
				return
			}
		}
	}()
	done := make(chan error, len(dirs))
	for _, dir := range dirs {
		go func() {
			for range 20 {
				at, err := a.Attach(dir)
				if err != nil {
					done <- err
					return
				}
				if _, err := a.Counters(dir); err != nil {
					done <- err
					return
				}
				if err := at.Detach(); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range dirs {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	close(stop)
	if err := <-errs; err != nil {
		t.Error(err)
	}
	if ids, err := a.Registered(); err != nil || len(ids) != 0 {
		t.Errorf("Registered after all detached = %v, %v", ids, err)
	}
}
