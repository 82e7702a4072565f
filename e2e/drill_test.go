//go:build linux

package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dcos-kernel/dcos/e2e/multihost"
	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/pki"
	"github.com/dcos-kernel/dcos/internal/seal"
	"github.com/dcos-kernel/dcos/internal/store"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// The fault drill (issue 16, item 7): the partition and quorum proofs.
// TestHA_LeaderKill (ha_test.go) is the crash proof.

// drillLease is the kernels' --leader-lease in the drill.
const drillLease = 2 * time.Second

// startEtcdAt is startEtcd with the members listening on ip (a test
// network's gateway, so that its hosts reach them) instead of 127.0.0.1.
// Clients and peers use TLS with certificates of a cluster CA, as
// docs/operations.md sets etcd up (etcdPKI).
func startEtcdAt(t testing.TB, n int, ip string) *etcdCluster {
	t.Helper()
	ports := freePortsAt(t, ip, 2*n)
	c := &etcdCluster{t: t, dir: t.TempDir()}
	var initial []string
	for i := range n {
		name := fmt.Sprintf("e%d", i+1)
		c.names = append(c.names, name)
		c.client = append(c.client, "https://"+net.JoinHostPort(ip, strconv.Itoa(ports[2*i])))
		c.peers = append(c.peers, "https://"+net.JoinHostPort(ip, strconv.Itoa(ports[2*i+1])))
		initial = append(initial, name+"="+c.peers[i])
	}
	c.pki = newEtcdPKI(t, filepath.Join(c.dir, "pki-admin"), ip, c.names...)
	c.initial = strings.Join(initial, ",")
	c.procs = make([]*exec.Cmd, n)
	c.exited = make([]chan struct{}, n)
	for i := range n {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.procs {
			c.kill(i)
		}
	})
	c.waitHealthy(n)
	return c
}

// etcdPKI is an e2e etcd's certificates, made as docs/operations.md's
// step 0 makes them: a cluster CA in an admin dir laid out as dcosd ca
// init lays it out (kek, pki/), a certificate per member for its clients
// and peers, and a client certificate for the test's own etcd clients.
// Kernels are pointed at the admin dir's kek and pki/ (kernelFlags) and
// issue themselves their client certificates.
type etcdPKI struct {
	admin  string // kek and pki/
	certs  string // NAME.crt, NAME.key, ca.crt, client.crt, client.key
	bundle pki.Bundle
	client tls.Certificate
}

// newEtcdPKI makes the CA in dir and certificates for the named members,
// which serve at ip (and dial their peers from 127.0.0.1 on loopback:
// etcd checks a peer's certificate against its source address).
func newEtcdPKI(t testing.TB, dir, ip string, names ...string) *etcdPKI {
	t.Helper()
	p := &etcdPKI{admin: dir, certs: filepath.Join(dir, "certs")}
	if err := os.MkdirAll(p.certs, 0o700); err != nil {
		t.Fatal(err)
	}
	kr, _, err := seal.LoadOrCreate(filepath.Join(dir, "kek"))
	if err != nil {
		t.Fatal(err)
	}
	ca, bundle, _, err := pki.LoadOrCreateLocal(filepath.Join(dir, "pki"), kr, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p.bundle = bundle
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(p.certs, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.crt", bundle.PEM())
	ips := []net.IP{net.ParseIP(ip), net.IPv4(127, 0, 0, 1)}
	for _, name := range names {
		_, cert, key, err := ca.Issue(pki.Leaf{CommonName: name, Identity: pki.IdentityURI(pki.RoleEtcd, name), IPs: ips, Server: true, Client: true, Validity: 24 * time.Hour}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		write(name+".crt", cert)
		write(name+".key", key)
	}
	kp, cert, key, err := ca.Issue(pki.Leaf{CommonName: "e2e", Identity: pki.IdentityURI(pki.RoleClient, "e2e"), Client: true, Validity: 24 * time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p.client = kp
	write("client.crt", cert)
	write("client.key", key)
	return p
}

// memberFlags are etcd's TLS flags for member name.
func (p *etcdPKI) memberFlags(name string) []string {
	crt, key, ca := filepath.Join(p.certs, name+".crt"), filepath.Join(p.certs, name+".key"), filepath.Join(p.certs, "ca.crt")
	return []string{"--cert-file", crt, "--key-file", key, "--trusted-ca-file", ca, "--client-cert-auth",
		"--peer-cert-file", crt, "--peer-key-file", key, "--peer-trusted-ca-file", ca, "--peer-client-cert-auth"}
}

// kernelFlags point a kernel at the cluster's KEK and CA.
func (p *etcdPKI) kernelFlags() []string {
	return []string{"--kek-file", filepath.Join(p.admin, "kek"), "--pki-dir", filepath.Join(p.admin, "pki")}
}

// tlsConfig is a clientv3 TLS configuration with the test's client
// certificate.
func (p *etcdPKI) tlsConfig() *tls.Config {
	return pki.NewReloader(&p.client, p.bundle).ClientConfig("")
}

// curlFlags make curl a client of the members.
func (p *etcdPKI) curlFlags() []string {
	return []string{"--cacert", filepath.Join(p.certs, "ca.crt"), "--cert", filepath.Join(p.certs, "client.crt"), "--key", filepath.Join(p.certs, "client.key")}
}

// freePortsAt returns n distinct free TCP ports of ip.
func freePortsAt(t testing.TB, ip string, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// directHTTP is a plain HTTP client: unlike kclient's (transport's),
// it does not follow a standby's Dcos-Leader hint. It trusts the tests'
// kernels (kernelTLS).
var directHTTP = &http.Client{Transport: &http.Transport{TLSClientConfig: kernelTLS.Clone(), ForceAttemptHTTP2: true}}

// direct is a client of the one kernel at url: no failover, no following
// a standby's hint, so an answer is that kernel's own.
func direct(url, token string) syscallsv1connect.KernelClient {
	return syscallsv1connect.NewKernelClient(directHTTP, url, connect.WithInterceptors(kclient.Bearer(token)))
}

// drillKernelArgs are the flags of HA kernel i of the drill.
func drillKernelArgs(e *env, i int, listen, tokens string, etcd *etcdCluster, extra ...string) []string {
	return append([]string{"kernel", "--data-dir", e.path(fmt.Sprintf("kernel%d", i)), "--listen", listen,
		"--tokens", tokens, "--etcd-endpoints", etcd.endpoints(), "--leader-lease", drillLease.String()}, append(e.kernelPKI(etcd.pki), extra...)...)
}

// drillAlloc is the small request the drill allocates (there are no
// agents in the HA drills: allocations stay pending, but they are
// committed like any other).
func drillAlloc(labels map[string]string) *pb.AllocateRequest {
	return &pb.AllocateRequest{Role: "web", Resources: &pb.Resources{Cpus: 0.001, MemBytes: mi}, Labels: labels}
}

// TestHA_Partition cuts the leading kernel off from etcd (and everything
// else) while it keeps running: kernel 1 runs in a host of its own
// (multihost), etcd and kernels 2 and 3 in the root namespace on the test
// network's gateway. A standby takes over within about a lease TTL; the
// late writes the test sends the old leader from inside its host while it
// is cut off (dcosctl allocations labelled late=1) never land; once the
// link is back, the old kernel says it stepped down and rejoins as a
// standby. Then the fence itself: a leader frozen past its lease (late=2)
// and a leader whose lease etcd ended before it knew (late=3, deposeLate)
// commit the writes they are sent, and etcd refuses them all.
func TestHA_Partition(t *testing.T) {
	t.Parallel()
	needRoot(t)
	// Before newEnv: cleanups run last-registered first, so the daemons
	// are stopped before their host goes.
	mh := multihost.New(t)
	// etcd before newEnv too: the kernels stop while it still answers
	// (a kernel whose store is gone takes long to stop).
	gw := mh.Gateway().String()
	etcd := startEtcdAt(t, 3, gw)
	e := newEnv(t)
	opTok := newToken()
	tokens := e.writeTokens(e.path("tokens.json"), tokenEntry{Token: opTok, Name: "ops", Role: "operator"})
	h := mh.AddHost("k1")

	// Kernel 1 starts alone, so that it leads.
	k1, url1 := e.startVia(h.Argv(), "dcosd kernel 1", "dcos kernel: listening at ", drillKernelArgs(e, 1, h.IP().String()+":0", tokens, etcd)...)
	if !strings.Contains(url1, "//"+h.IP().String()+":") {
		t.Fatalf("kernel 1 at %s, want it on its host's address %s", url1, h.IP())
	}
	e.eventually("kernel 1 leading", func() (bool, string) {
		res, err := direct(url1, opTok).ClusterInfo(context.Background(), connect.NewRequest(&pb.ClusterInfoRequest{}))
		if err != nil {
			return false, err.Error()
		}
		return res.Msg.GetLeader() == url1, sprint(res.Msg)
	})
	k2, url2 := e.start("dcosd kernel 2", "dcos kernel: listening at ", drillKernelArgs(e, 2, gw+":0", tokens, etcd)...)
	k3, url3 := e.start("dcosd kernel 3", "dcos kernel: listening at ", drillKernelArgs(e, 3, gw+":0", tokens, etcd)...)
	urls := []string{url1, url2, url3}
	e.mu.Lock()
	e.url, e.opToken = strings.Join(urls, ","), opTok
	e.mu.Unlock()
	for _, u := range urls[1:] {
		e.eventually("standby "+u+" listing 3 kernels led by kernel 1", func() (bool, string) {
			res, err := direct(u, opTok).ClusterInfo(context.Background(), connect.NewRequest(&pb.ClusterInfoRequest{}))
			if err != nil {
				return false, err.Error()
			}
			return res.Msg.GetLeader() == url1 && len(res.Msg.GetKernels()) == 3, sprint(res.Msg)
		})
	}

	// Allocations before the cut, through kernel 1.
	var before []string
	for i := range 5 {
		res, err := direct(url1, opTok).Allocate(ctx(t), connect.NewRequest(drillAlloc(map[string]string{"before": strconv.Itoa(i)})))
		if err != nil {
			t.Fatalf("allocation %d before the cut: %v", i, err)
		}
		before = append(before, res.Msg.GetAllocations()[0].GetId())
	}

	// Late writes: from inside kernel 1's host (which reaches nothing
	// else once cut, but still reaches kernel 1), dcosctl allocations sent
	// to kernel 1 alone, until the link is restored. They are stopped
	// before the link comes back: a dcosctl still waiting then would
	// follow the standby's hint to the new leader and legitimately land.
	const lateWorkers = 8
	lateCtx, stopLate := context.WithCancel(context.Background())
	defer stopLate()
	var (
		lateSent atomic.Int64
		lateMu   sync.Mutex
		lateOK   []string           // dcosctl outputs of late writes that exited 0
		lateErrs = map[string]int{} // dcosctl's error answers, by message
		lateWG   sync.WaitGroup
	)
	sendLate := func() {
		n := lateSent.Add(1)
		body, _ := json.Marshal(map[string]any{"role": "web", "resources": map[string]any{"cpus": 0.001, "memBytes": strconv.Itoa(mi)},
			"labels": map[string]string{"late": "1", "n": strconv.FormatInt(n, 10)}})
		// Each call gets a few seconds: the old leader answers a commit
		// that etcd never acknowledges after store.CommitTimeout (or when
		// it steps down), a standby without a leader only at dcosctl's
		// failover deadline.
		cctx, cancel := context.WithTimeout(lateCtx, 1500*time.Millisecond)
		defer cancel()
		cmd := h.CommandContext(cctx, bin.dcosctl, "--kernel", url1, "--token", opTok, "syscall", "allocate", string(body))
		cmd.Env = e.baseEnv()
		out, err := cmd.CombinedOutput()
		lateMu.Lock()
		defer lateMu.Unlock()
		switch {
		case err == nil:
			lateOK = append(lateOK, string(out))
		case cctx.Err() != nil:
			lateErrs["(no answer before the test stopped waiting)"]++
		default:
			lateErrs[strings.TrimSpace(tail(string(out), 2))]++
		}
	}

	// The measuring client: kernels 2 and 3 in turn, each call short, so
	// the first Allocate a new leader serves is seen within a few tens of
	// milliseconds.
	if err := h.Cut(); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	for range lateWorkers {
		lateWG.Go(func() {
			for lateCtx.Err() == nil {
				sendLate()
			}
		})
	}
	var takeover time.Duration
	newLeader := ""
	var lastErr error
	for i := 0; newLeader == ""; i++ {
		if time.Since(cut) > waitTimeout {
			t.Fatalf("no standby took over within %v of the cut; last: %v\nkernel 2:\n%s", waitTimeout, lastErr, tail(k2.stderr.String(), 30))
		}
		u := urls[1+i%2]
		cctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		res, err := direct(u, opTok).Allocate(cctx, connect.NewRequest(drillAlloc(map[string]string{"takeover": strconv.Itoa(i)})))
		cancel()
		if err != nil {
			lastErr = err
			time.Sleep(20 * time.Millisecond)
			continue
		}
		takeover, newLeader = time.Since(cut), u
		t.Logf("partition → first Allocate served by the new leader %s: %v (goal: lease TTL %v + 1 s); allocation %s",
			u, takeover.Round(time.Millisecond), drillLease, res.Msg.GetAllocations()[0].GetId())
	}

	// Stop the late writes and heal.
	stopLate()
	lateWG.Wait()
	if err := h.Restore(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d late writes sent to the old leader while cut off; their answers: %v", lateSent.Load(), lateErrs)
	if lateSent.Load() == 0 {
		t.Fatal("no late write was sent")
	}
	for _, out := range lateOK {
		t.Errorf("a late write to the cut-off leader was acknowledged: %s", out)
	}

	// The old kernel steps down and rejoins: a non-leader member again.
	e.eventually("kernel 1 listed again as a standby", func() (bool, string) {
		res, err := direct(newLeader, opTok).ClusterInfo(context.Background(), connect.NewRequest(&pb.ClusterInfoRequest{}))
		if err != nil {
			return false, err.Error()
		}
		if res.Msg.GetLeader() != newLeader {
			return false, sprint(res.Msg)
		}
		for _, k := range res.Msg.GetKernels() {
			if k.GetUrl() == url1 && !k.GetLeader() {
				return true, ""
			}
		}
		return false, sprint(res.Msg)
	})
	e.eventually("kernel 1 answering as a standby that names the new leader", func() (bool, string) {
		_, err := direct(url1, opTok).ListAllocations(context.Background(), connect.NewRequest(&pb.ListAllocationsRequest{}))
		return connect.CodeOf(err) == connect.CodeUnavailable && strings.Contains(err.Error(), newLeader), fmt.Sprint(err)
	})
	log1 := k1.stderr.String()
	if !strings.Contains(log1, "lease lost; stepping down") && !strings.Contains(log1, "kernel deposed") {
		t.Errorf("kernel 1's log does not say it lost the lead:\n%s", tail(log1, 40))
	}
	// Its late commit does not outlive the cut: the etcd client's TCP
	// connection gives up on unacknowledged data after its keepalive
	// timeout (2 s, no more than the lease), before a standby can take
	// over, so nothing it sent reaches etcd late. The fence's refusals are
	// shown by the frozen and deposed leaders below.
	t.Logf("kernel 1's commits refused by the fence: %d; outcomes unknown (connection lost): %d", strings.Count(log1, "commit refused by the leader fence"), strings.Count(log1, "commit outcome unknown"))
	if !k1.running() {
		t.Errorf("kernel 1 exited: %v", k1.err)
	}

	// Nothing late landed; everything acknowledged before is there.
	have := map[string]bool{}
	late := 0
	for _, a := range listAllocations(t, e.op()).GetAllocations() {
		have[a.GetId()] = true
		if a.GetLabels()["late"] != "" {
			late++
			t.Errorf("late write landed: allocation %s %v", a.GetId(), a.GetLabels())
		}
	}
	t.Logf("late writes attempted: %d; landed: %d", lateSent.Load(), late)
	for _, id := range before {
		if !have[id] {
			t.Errorf("allocation %s, acknowledged before the cut, is gone", id)
		}
	}

	// The fence itself. A kernel cut off from etcd cannot send its late
	// commits, so above they fail before etcd sees them. A leader frozen
	// past its lease (a long GC or VM pause, SIGSTOP here) still has its
	// etcd connection when it wakes: the writes it was sent meanwhile
	// reach its loop, which commits them before it notices that its lease
	// is gone — and etcd refuses them, their election key being gone.
	frozen := map[string]*proc{url2: k2, url3: k3}[newLeader]
	frozen.freeze(t)
	froze := time.Now()
	const frozenWrites = 8
	var fwg sync.WaitGroup
	var frozenOK atomic.Int64
	frozenErrs := make([]error, frozenWrites)
	for i := range frozenWrites {
		fwg.Go(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := direct(newLeader, opTok).Allocate(cctx, connect.NewRequest(drillAlloc(map[string]string{"late": "2", "n": strconv.Itoa(i)})))
			if err == nil {
				frozenOK.Add(1)
			}
			frozenErrs[i] = err
		})
	}
	others := []string{url1, url2, url3}
	next := ""
	e.eventually("a kernel leading in place of the frozen one", func() (bool, string) {
		for _, u := range others {
			if u == newLeader {
				continue
			}
			res, err := direct(u, opTok).ClusterInfo(context.Background(), connect.NewRequest(&pb.ClusterInfoRequest{}))
			if err == nil && res.Msg.GetLeader() != "" && res.Msg.GetLeader() != newLeader {
				next = res.Msg.GetLeader()
				return true, ""
			}
		}
		return false, ""
	})
	t.Logf("leader %s frozen; %s leads %v later", newLeader, next, time.Since(froze).Round(time.Millisecond))
	frozen.signal(syscall.SIGCONT)
	fwg.Wait()
	if n := frozenOK.Load(); n > 0 {
		t.Errorf("%d writes to the frozen leader acknowledged after it lost the lead", n)
	}
	answers := map[string]int{}
	for _, err := range frozenErrs {
		answers[fmt.Sprint(err)]++
		if connect.CodeOf(err) == connect.CodeDeadlineExceeded {
			// Known: a call that reaches a kernel whose loop has just
			// ended may be queued after the loop's last drain and never
			// answered (kernel.do); reported, not asserted here.
			t.Logf("a write to the woken kernel got no answer: %v", err)
		}
	}
	logF := frozen.stderr.String()
	t.Logf("%d writes sent to the frozen leader; answers: %v; its commits refused by the fence: %d",
		frozenWrites, answers, strings.Count(logF, "commit refused by the leader fence"))
	e.eventually("the woken kernel listed as a standby", func() (bool, string) {
		res, err := direct(next, opTok).ClusterInfo(context.Background(), connect.NewRequest(&pb.ClusterInfoRequest{}))
		if err != nil {
			return false, err.Error()
		}
		for _, k := range res.Msg.GetKernels() {
			if k.GetUrl() == newLeader && !k.GetLeader() && res.Msg.GetLeader() == next {
				return true, ""
			}
		}
		return false, sprint(res.Msg)
	})
	for _, a := range listAllocations(t, e.op()).GetAllocations() {
		if a.GetLabels()["late"] == "2" {
			t.Errorf("a write to the frozen leader landed: allocation %s %v", a.GetId(), a.GetLabels())
		}
	}

	// The fence, deterministically: a leader whose lease etcd has ended
	// before the leader itself knows (its keepalive answers lost or late —
	// here the test revokes the lease, as a standby's depose does) keeps
	// committing the writes it is sent until its session notices; etcd
	// refuses every one of them.
	deposeLate(t, e, etcd, opTok, next, map[string]*proc{url1: k1, url2: k2, url3: k3})
}

// deposeLate runs writers against the leader at url, ends its lease in
// etcd while they run, and checks that no write sent after that was
// acknowledged or landed and that another kernel leads. It counts the
// leader's commits refused by the fence, retrying on the next leader up to
// 3 times until one is (whether the leader's loop commits before its
// session notices is a race; the count is logged, not asserted).
func deposeLate(t *testing.T, e *env, etcd *etcdCluster, tok, url string, procs map[string]*proc) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: etcd.client, TLS: etcd.pki.tlsConfig(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	st := store.New(cli, "/dcos/")
	type write struct {
		sent  time.Time
		acked bool
	}
	refused, attempts := 0, 0
	var after []string // labels n of the writes sent after a depose
	for attempts < 3 && refused == 0 {
		attempts++
		p := procs[url]
		before := strings.Count(p.stderr.String(), "commit refused by the leader fence")
		var (
			mu     sync.Mutex
			writes = map[string]*write{}
			n      atomic.Int64
			wg     sync.WaitGroup
		)
		wctx, stop := context.WithCancel(context.Background())
		for range 4 {
			wg.Go(func() {
				for wctx.Err() == nil {
					id := fmt.Sprintf("%d-%d", attempts, n.Add(1))
					w := &write{sent: time.Now()}
					mu.Lock()
					writes[id] = w
					mu.Unlock()
					cctx, cancel := context.WithTimeout(wctx, 10*time.Second)
					_, err := direct(url, tok).Allocate(cctx, connect.NewRequest(drillAlloc(map[string]string{"late": "3", "n": id})))
					cancel()
					if err == nil {
						mu.Lock()
						w.acked = true
						mu.Unlock()
					}
				}
			})
		}
		time.Sleep(300 * time.Millisecond) // writes flowing
		gctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		li, ok, err := st.Leader(gctx)
		if err == nil && (!ok || li.URL != url) {
			err = fmt.Errorf("etcd says %q leads (ok %v), want %s", li.URL, ok, url)
		}
		var revoked bool
		if err == nil {
			revoked, err = st.Depose(gctx, li)
		}
		cancel()
		deposed := time.Now()
		if err != nil || !revoked {
			stop()
			wg.Wait()
			t.Fatalf("depose %s: revoked %v, %v", url, revoked, err)
		}
		next := ""
		e.eventually("another kernel leading after "+url+" was deposed", func() (bool, string) {
			for u := range procs {
				if u == url {
					continue
				}
				res, err := direct(u, tok).ClusterInfo(context.Background(), connect.NewRequest(&pb.ClusterInfoRequest{}))
				if err == nil && res.Msg.GetLeader() != "" && res.Msg.GetLeader() != url {
					next = res.Msg.GetLeader()
					return true, ""
				}
			}
			return false, ""
		})
		time.Sleep(200 * time.Millisecond)
		stop()
		wg.Wait()
		late, acked := 0, 0
		for id, w := range writes {
			if w.sent.After(deposed) {
				late++
				after = append(after, id)
				if w.acked {
					acked++
					t.Errorf("write %s, sent to %s after its lease ended, was acknowledged", id, url)
				}
			}
		}
		refused = strings.Count(p.stderr.String(), "commit refused by the leader fence") - before
		t.Logf("attempt %d: %d writes to %s, %d of them sent after its lease ended (%d acknowledged); its commits refused by the fence: %d; %s leads",
			attempts, len(writes), url, late, acked, refused, next)
		url = next
	}
	if refused == 0 {
		// Whether a deposed leader's loop commits before its session
		// notices the revoked lease is a race between two of its
		// goroutines (CI run 5 of session 10: 0 in 3 attempts; other runs:
		// 1 in the first). The fence refusing such commits is shown
		// deterministically against real etcd by internal/store
		// TestCandidacy_FenceRefusesLateWrites; here what is asserted is
		// the outcome: no late write acknowledged, none landed.
		t.Logf("in %d attempts, no deposed leader's commit reached etcd before it noticed the depose (nothing for the fence to refuse)", attempts)
	}
	lateSet := map[string]bool{}
	for _, id := range after {
		lateSet[id] = true
	}
	landed := 0
	for _, a := range listAllocations(t, e.op()).GetAllocations() {
		if a.GetLabels()["late"] == "3" && lateSet[a.GetLabels()["n"]] {
			landed++
			t.Errorf("a write sent after its leader was deposed landed: allocation %s %v", a.GetId(), a.GetLabels())
		}
	}
	t.Logf("writes sent after a depose: %d; landed: %d", len(after), landed)
}

// TestHA_Quorum kills etcd members under 3 kernels: with one of three
// gone every kernel keeps serving; with two gone (quorum lost) calls
// answer Unavailable saying the store has lost quorum and no dcosd
// exits; with the members back, service resumes with every allocation
// made before.
func TestHA_Quorum(t *testing.T) {
	t.Parallel()
	// etcd before newEnv: the kernels stop while it still answers.
	etcd := startEtcd(t, 3)
	e := newEnv(t)
	opTok := newToken()
	tokens := e.writeTokens(e.path("tokens.json"), tokenEntry{Token: opTok, Name: "ops", Role: "operator"})
	procs, urls := e.haKernels(3, etcd, tokens, opTok)
	e.leader(urls)
	var made []string
	alloc := func(what string) {
		t.Helper()
		var last error
		// A kernel whose etcd connection was to the killed member may
		// lose its lease while its client moves on: then a call may fail
		// once and the next goes to the new leader.
		for range 3 {
			cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			res, err := e.op().Allocate(cctx, connect.NewRequest(drillAlloc(map[string]string{"what": what})))
			cancel()
			if err == nil {
				made = append(made, res.Msg.GetAllocations()[0].GetId())
				return
			}
			t.Logf("allocate %s: %v (retrying)", what, err)
			last = err
		}
		t.Fatalf("allocate %s: %v", what, last)
	}
	clusterInfoEach := func(what string) {
		t.Helper()
		for _, u := range urls {
			e.eventually(what+": ClusterInfo of "+u, func() (bool, string) {
				res, err := direct(u, opTok).ClusterInfo(context.Background(), connect.NewRequest(&pb.ClusterInfoRequest{}))
				if err != nil {
					return false, err.Error()
				}
				return res.Msg.GetLeader() != "" && len(res.Msg.GetKernels()) == 3, sprint(res.Msg)
			})
		}
	}
	for i := range 3 {
		alloc(fmt.Sprintf("all-members-%d", i))
	}

	// One member of three gone: every kernel serves.
	etcd.kill(0)
	for i := range 5 {
		alloc(fmt.Sprintf("two-members-%d", i))
	}
	clusterInfoEach("one member killed")

	// Quorum lost.
	etcd.kill(1)
	lost := time.Now()
	// Each kernel's own answer, once it knows (a leader first fails the
	// commits etcd does not answer, then loses its lease and stands by).
	msgs := map[string]int{}
	noQuorum := 0 // calls made without quorum, each with its own label n
	for _, u := range urls {
		e.eventually("kernel "+u+" saying the store lost quorum", func() (bool, string) {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			noQuorum++
			_, err := direct(u, opTok).Allocate(cctx, connect.NewRequest(drillAlloc(map[string]string{"what": "no-quorum", "n": strconv.Itoa(noQuorum)})))
			if err == nil {
				t.Errorf("kernel %s allocated without quorum", u)
				return false, ""
			}
			msgs[err.Error()]++
			if connect.CodeOf(err) != connect.CodeUnavailable {
				t.Errorf("kernel %s without quorum: %v, want Unavailable", u, err)
			}
			return strings.Contains(err.Error(), "etcd") && strings.Contains(err.Error(), "quorum"), err.Error()
		})
	}
	t.Logf("answers without quorum: %v", msgs)
	// What a client of the cluster sees: its call goes round the kernels
	// for transport.DefaultFailoverWait (no deadline of its own), then
	// ends in the last standby's answer.
	_, err := e.op().Allocate(context.Background(), connect.NewRequest(drillAlloc(map[string]string{"what": "no-quorum-list"})))
	if connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(fmt.Sprint(err), "etcd") || !strings.Contains(fmt.Sprint(err), "quorum") {
		t.Errorf("Allocate through the list without quorum: %v; want Unavailable naming etcd and its quorum", err)
	} else {
		t.Logf("Allocate through the list without quorum: %v", err)
	}
	for i, p := range procs {
		if !p.running() {
			t.Errorf("kernel %d exited without quorum: %v\n%s", i+1, p.err, tail(p.stderr.String(), 30))
		}
	}

	// Quorum back.
	etcd.start(0)
	etcd.start(1)
	etcd.waitHealthy(3)
	healed := time.Now()
	e.leader(urls)
	alloc("healed")
	t.Logf("quorum lost for %v; a leader allocating %v after the members restarted", healed.Sub(lost).Round(time.Millisecond), time.Since(healed).Round(time.Millisecond))
	clusterInfoEach("members restarted")
	have := map[string]bool{}
	landed := map[string]int{}
	for _, a := range listAllocations(t, e.op()).GetAllocations() {
		have[a.GetId()] = true
		// A call that failed without quorum has an unknown outcome: its
		// transaction may sit in the etcd leader's log and commit once
		// quorum returns (raft), so it may exist — at most once.
		if w := a.GetLabels()["what"]; w == "no-quorum" || w == "no-quorum-list" {
			key := w + "/" + a.GetLabels()["n"]
			landed[key]++
			t.Logf("a call that failed without quorum took effect once quorum returned: %s %v", a.GetId(), a.GetLabels())
			if landed[key] > 1 {
				t.Errorf("a call made without quorum took effect %d times: %v", landed[key], a.GetLabels())
			}
		}
	}
	for _, id := range made {
		if !have[id] {
			t.Errorf("allocation %s, acknowledged, is gone", id)
		}
	}
	for i, p := range procs {
		if !p.running() {
			t.Errorf("kernel %d exited: %v", i+1, p.err)
		}
	}
}

// TestHA_AgentPartition cuts an agent (in a host of its own, running a
// task) off from the kernel: after --heartbeat-timeout the kernel marks
// it LOST, its task LOST and its allocation revoked; once the link is
// back the agent registers again and stops the task of the revoked
// allocation, and the task runs nowhere.
func TestHA_AgentPartition(t *testing.T) {
	t.Parallel()
	needRoot(t)
	mh := multihost.New(t)
	e := newEnv(t)
	opTok, agTok := newToken(), newToken()
	tokens := e.writeTokens(e.path("tokens.json"),
		tokenEntry{Token: opTok, Name: "ops", Role: "operator"},
		tokenEntry{Token: agTok, Name: "agent-a", Role: "agent"},
	)
	const hbTimeout = 3 * time.Second
	e.startKernel(tokens, opTok, "--listen", mh.Gateway().String()+":0", "--heartbeat-timeout", hbTimeout.String(), "--heartbeat-interval", "300ms")
	h := mh.AddHost("a")
	ag, agentID := e.startAgentVia(h.Argv(), "a", agTok, "--resources", "cpus=2,mem=1Gi")
	op := e.op()
	w := e.watch(op, listAgents(t, op).GetRevision())

	alloc := allocateOne(t, op, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.5, MemBytes: 64 * mi},
		Constraints: []*pb.Constraint{{Label: "e2e", Op: pb.Constraint_OP_EQUALS, Values: []string{"a"}}}})
	// The marker is the task shell's $0: an argument of its process alone.
	marker := "drill-" + newToken()[:10]
	task := launch(t, op, &pb.LaunchRequest{AllocationId: alloc.GetId(), Command: "sh", Args: []string{"-c", "sleep 300; :", marker}})
	running := w.waitFor(t, "RUNNING of "+task.GetId(), taskState(task.GetId(), pb.TaskState_TASK_STATE_RUNNING)).GetTask()
	pid := int(running.GetPid())
	e.notePID(running.GetPid())
	if running.GetAgentId() != agentID || !alive(pid) || !strings.Contains(cmdline(pid), marker) {
		t.Fatalf("RUNNING task %v: want pid running %q on %s", running, marker, agentID)
	}

	if err := h.Cut(); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	w.waitFor(t, "AGENT_LOST of "+agentID, agentEvent(agentID, pb.EventKind_EVENT_KIND_AGENT_LOST))
	t.Logf("agent marked LOST %v after the cut (--heartbeat-timeout %v)", time.Since(cut).Round(time.Millisecond), hbTimeout)
	w.waitFor(t, "TASK_STATE LOST of "+task.GetId(), taskState(task.GetId(), pb.TaskState_TASK_STATE_LOST))
	revoked := w.waitFor(t, "ALLOCATION_REVOKED of "+alloc.GetId(), allocEvent(alloc.GetId(), pb.EventKind_EVENT_KIND_ALLOCATION_REVOKED))
	if r := revoked.GetAllocation().GetRevokeReason() + revoked.GetReason(); !strings.Contains(r, "agent lost") {
		t.Errorf("ALLOCATION_REVOKED reason %q, want it to say the agent was lost", r)
	}
	// The partitioned agent cannot hear of it: its task runs on meanwhile
	// (docs/operations.md, "An agent cut off from the kernels").
	if !alive(pid) {
		t.Errorf("the task's process %d ended while its agent was cut off; the docs say it runs on until the agent hears from a kernel", pid)
	}

	if err := h.Restore(); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "AGENT_REGISTERED of "+agentID+" after the link is back", func(ev *pb.Event) bool {
		return agentEvent(agentID, pb.EventKind_EVENT_KIND_AGENT_REGISTERED)(ev) && ev.GetRevision() > revoked.GetRevision()
	})
	e.eventually("the revoked task's process stopped by its returning agent", func() (bool, string) {
		return !alive(pid), cmdline(pid)
	})
	e.eventually("no process of the task anywhere", func() (bool, string) {
		ps := pidsWithArg(marker)
		return len(ps) == 0, sprint(ps)
	})
	for _, k := range listTasks(t, op).GetTasks() {
		if k.GetState() <= pb.TaskState_TASK_STATE_RUNNING {
			t.Errorf("task %s is %v after the heal: nothing was to run", k.GetId(), k.GetState())
		}
	}
	for _, a := range listAllocations(t, op).GetAllocations() {
		if a.GetId() == alloc.GetId() {
			t.Errorf("the revoked allocation is listed again: %v", a)
		}
	}
	for _, g := range listAgents(t, op).GetAgents() {
		if g.GetId() == agentID && g.GetState() != pb.AgentState_AGENT_STATE_UP {
			t.Errorf("agent %s is %v after the heal, want UP", agentID, g.GetState())
		}
	}
	if !ag.running() {
		t.Errorf("the agent exited: %v\n%s", ag.err, tail(ag.stderr.String(), 30))
	}
}
