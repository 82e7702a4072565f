package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/sdk/framework"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// etcdCluster is a real etcd cluster of Debian's etcd-server, one
// process per member on 127.0.0.1, as an operator would run it for dcos
// (docs/operations.md).
type etcdCluster struct {
	t       testing.TB
	dir     string
	names   []string
	client  []string // client URLs by member
	peers   []string
	initial string
	procs   []*exec.Cmd
	exited  []chan struct{}
	pki     *etcdPKI // the members' and clients' certificates
}

// startEtcd starts an n-member etcd cluster on 127.0.0.1 and waits
// until it answers (startEtcdAt).
func startEtcd(t testing.TB, n int) *etcdCluster {
	t.Helper()
	return startEtcdAt(t, n, "127.0.0.1")
}

// start (re)starts member i on its data dir.
func (c *etcdCluster) start(i int) {
	c.t.Helper()
	cmd := exec.Command("etcd", "--name", c.names[i], "--data-dir", c.dir+"/"+c.names[i],
		"--listen-client-urls", c.client[i], "--advertise-client-urls", c.client[i],
		"--listen-peer-urls", c.peers[i], "--initial-advertise-peer-urls", c.peers[i],
		"--initial-cluster", c.initial, "--initial-cluster-state", "new", "--initial-cluster-token", "dcos-e2e",
		"--logger", "zap", "--log-outputs", c.dir+"/"+c.names[i]+".log")
	cmd.Args = append(cmd.Args, c.pki.memberFlags(c.names[i])...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("etcd (Debian's etcd-server; scripts/test installs it): %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	c.procs[i], c.exited[i] = cmd, done
}

// kill SIGKILLs member i and waits for it.
func (c *etcdCluster) kill(i int) {
	if c.procs[i] == nil {
		return
	}
	syscall.Kill(-c.procs[i].Process.Pid, syscall.SIGKILL)
	<-c.exited[i]
	c.procs[i] = nil
}

// endpoints is the client URLs, comma-separated (--etcd-endpoints).
func (c *etcdCluster) endpoints() string { return strings.Join(c.client, ",") }

// waitHealthy waits until want members answer /health.
func (c *etcdCluster) waitHealthy(want int) {
	c.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		ok := 0
		for _, u := range c.client {
			if out, err := exec.Command("curl", append(append([]string{"-sf", "--max-time", "1"}, c.pki.curlFlags()...), u+"/health")...).Output(); err == nil && strings.Contains(string(out), `"true"`) {
				ok++
			}
		}
		if ok >= want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(c.dir + "/" + c.names[0] + ".log")
	c.t.Fatalf("etcd: fewer than %d members healthy within %v; e1's log:\n%s", want, waitTimeout, tail(string(b), 30))
}

// haKernels starts n `dcosd kernel` processes on the etcd cluster, each
// with its own data dir, sharing the tokens file; it points e at all of
// them (a comma-separated URL, which e.op and e.client fail over across)
// and returns them with their URLs, in start order.
func (e *env) haKernels(n int, etcd *etcdCluster, tokens, opToken string, extra ...string) ([]*proc, []string) {
	e.t.Helper()
	var ps []*proc
	var urls []string
	for i := range n {
		args := append([]string{"kernel", "--data-dir", e.path(fmt.Sprintf("kernel%d", i+1)), "--listen", "127.0.0.1:0",
			"--tokens", tokens, "--etcd-endpoints", etcd.endpoints(), "--leader-lease", "2s"}, append(e.kernelPKI(etcd.pki), extra...)...)
		p, url := e.start(fmt.Sprintf("dcosd kernel %d", i+1), "dcos kernel: listening at ", args...)
		ps = append(ps, p)
		urls = append(urls, url)
	}
	e.mu.Lock()
	e.url, e.opToken = strings.Join(urls, ","), opToken
	e.mu.Unlock()
	return ps, urls
}

// leader waits until the kernels agree on a leader and returns its index
// in urls.
func (e *env) leader(urls []string) int {
	e.t.Helper()
	idx := -1
	e.eventually("a leading kernel", func() (bool, string) {
		res, err := e.op().ClusterInfo(context.Background(), connect.NewRequest(&pb.ClusterInfoRequest{}))
		if err != nil {
			return false, err.Error()
		}
		for i, u := range urls {
			if u == res.Msg.GetLeader() {
				idx = i
				return true, ""
			}
		}
		return false, sprint(res.Msg)
	})
	return idx
}

// TestHA_LeaderKill is the fault drill's first proof: 4 frameworks make
// 500 allocations against 3 kernels on a 3-member etcd cluster, each
// watching its events through the SDK; the leading kernel is SIGKILLed
// after 150 are acknowledged. Every allocation a client saw acknowledged
// exists exactly once, with the id it was told; an unacknowledged one
// exists at most once (whole, or not at all); and each client's Watch
// saw exactly the events the store holds for it — no gap, no duplicate —
// across the failover.
func TestHA_LeaderKill(t *testing.T) {
	t.Parallel()
	// etcd first: cleanups run last-registered first, so the kernels
	// stop while their store still answers (a kernel without its etcd
	// takes long to stop).
	etcd := startEtcd(t, 3)
	e := newEnv(t)
	opTok := newToken()
	entries := []tokenEntry{{Token: opTok, Name: "ops", Role: "operator"}}
	const clients, per = 4, 125
	fwTok := make([]string, clients)
	for i := range clients {
		fwTok[i] = newToken()
		entries = append(entries, tokenEntry{Token: fwTok[i], Name: fmt.Sprintf("fw%d", i), Role: "framework"})
	}
	tokens := e.writeTokens(e.path("tokens.json"), entries...)
	procs, urls := e.haKernels(3, etcd, tokens, opTok)
	first := e.leader(urls)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start, err := e.op().ListAgents(ctx, connect.NewRequest(&pb.ListAgentsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	r0 := start.Msg.GetRevision()

	type seen struct {
		rev  int64
		kind pb.EventKind
		id   string
	}
	watched := make([][]seen, clients)
	var wmu sync.Mutex
	wctx, stopWatch := context.WithCancel(ctx)
	var wwg sync.WaitGroup
	fws := make([]*framework.Client, clients)
	for i := range clients {
		fw, err := framework.New(framework.Config{TLS: kernelTLS, Endpoints: urls, Token: fwTok[i], Retry: framework.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond, Factor: 2, Attempts: 1}})
		if err != nil {
			t.Fatal(err)
		}
		fws[i] = fw
		wwg.Go(func() {
			err := fw.Watch(wctx, &pb.WatchRequest{AfterRevision: r0}, func(ev *pb.Event) error {
				wmu.Lock()
				watched[i] = append(watched[i], seen{ev.GetRevision(), ev.GetKind(), ev.GetAllocation().GetId()})
				wmu.Unlock()
				return nil
			})
			if wctx.Err() == nil {
				t.Errorf("client %d: watch ended: %v", i, err)
			}
		})
	}

	var acked atomic.Int64
	killed := make(chan time.Time, 1)
	ackedIDs := make([]map[int]string, clients) // seq → id
	failed := make([]map[int]error, clients)
	var firstAfter atomic.Int64 // ns from the kill to the first acknowledged allocation after it
	var cwg sync.WaitGroup
	for i := range clients {
		ackedIDs[i], failed[i] = map[int]string{}, map[int]error{}
		cwg.Go(func() {
			for j := range per {
				began := time.Now()
				cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
				res, err := fws[i].Allocate(cctx, &pb.AllocateRequest{Role: "web", Resources: &pb.Resources{Cpus: 0.001, MemBytes: mi},
					Labels: map[string]string{"c": strconv.Itoa(i), "j": strconv.Itoa(j)}})
				ccancel()
				if err != nil {
					failed[i][j] = err
					continue
				}
				ackedIDs[i][j] = res.GetAllocations()[0].GetId()
				if acked.Add(1) == 150 {
					procs[first].kill()
					killed <- time.Now()
				}
				select {
				case k := <-killed:
					killed <- k
					if began.After(k) {
						firstAfter.CompareAndSwap(0, int64(time.Since(k)))
					}
				default:
				}
			}
		})
	}
	cwg.Wait()
	select {
	case <-killed:
	default:
		t.Fatalf("fewer than 150 allocations acknowledged: %d", acked.Load())
	}
	second := e.leader(urls)
	if second == first {
		t.Fatalf("kernel %d still leads after its SIGKILL", first)
	}
	nfailed := 0
	for i := range clients {
		nfailed += len(failed[i])
	}
	t.Logf("%d allocations acknowledged, %d failed (Unavailable across the failover); first acknowledged %v after the kill; new leader %s",
		acked.Load(), nfailed, time.Duration(firstAfter.Load()).Round(time.Millisecond), urls[second])
	for i := range clients {
		for j, err := range failed[i] {
			t.Logf("client %d allocation %d: %v", i, j, err)
			break
		}
	}
	if acked.Load() < clients*per/2 {
		t.Errorf("only %d of %d allocations acknowledged: the cluster did not serve through the failover", acked.Load(), clients*per)
	}

	// Exactly once: by each framework's labels.
	end, err := e.op().ListAllocations(ctx, connect.NewRequest(&pb.ListAllocationsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	count := map[[2]int][]string{}
	for _, a := range end.Msg.GetAllocations() {
		c, err1 := strconv.Atoi(a.GetLabels()["c"])
		j, err2 := strconv.Atoi(a.GetLabels()["j"])
		if err1 != nil || err2 != nil {
			t.Errorf("allocation %s without the test's labels: %v", a.GetId(), a.GetLabels())
			continue
		}
		if a.GetOwner() != fmt.Sprintf("fw%d", c) {
			t.Errorf("allocation %s of client %d owned by %s", a.GetId(), c, a.GetOwner())
		}
		count[[2]int{c, j}] = append(count[[2]int{c, j}], a.GetId())
	}
	for i := range clients {
		for j, id := range ackedIDs[i] {
			if got := count[[2]int{i, j}]; len(got) != 1 || got[0] != id {
				t.Errorf("client %d allocation %d acknowledged as %s; the store holds %v", i, j, id, got)
			}
		}
		for j, err := range failed[i] {
			if got := count[[2]int{i, j}]; len(got) > 1 {
				t.Errorf("client %d allocation %d (unacknowledged: %v) exists %d times", i, j, err, len(got))
			}
		}
	}

	// Watches: what each saw equals a replay of the store's history for
	// it, from the same revision to the end.
	rEnd := end.Msg.GetRevision()
	// A marker allocation per framework, after rEnd: its events end both
	// the live watch's wait and the replay (a revision may hold several
	// events, so only a later one says rEnd is whole).
	for i := range clients {
		if _, err := fws[i].Allocate(ctx, &pb.AllocateRequest{Role: "web", Resources: &pb.Resources{Cpus: 0.001, MemBytes: mi}}); err != nil {
			t.Fatalf("marker allocation of client %d: %v", i, err)
		}
	}
	for i := range clients {
		e.eventually(fmt.Sprintf("client %d's watch past revision %d", i, rEnd), func() (bool, string) {
			wmu.Lock()
			defer wmu.Unlock()
			n := len(watched[i])
			return n > 0 && watched[i][n-1].rev > rEnd, fmt.Sprintf("%d events", n)
		})
	}
	stopWatch()
	wwg.Wait()
	for i := range clients {
		var replay []seen
		rctx, rcancel := context.WithCancel(ctx)
		err := fws[i].Watch(rctx, &pb.WatchRequest{AfterRevision: r0}, func(ev *pb.Event) error {
			if ev.GetRevision() > rEnd {
				rcancel()
				return nil
			}
			replay = append(replay, seen{ev.GetRevision(), ev.GetKind(), ev.GetAllocation().GetId()})
			return nil
		})
		rcancel()
		if ctx.Err() != nil {
			t.Fatalf("client %d: replay: %v", i, err)
		}
		var got []seen
		for _, s := range watched[i] {
			if s.rev <= rEnd {
				got = append(got, s)
			}
		}
		if len(got) != len(replay) {
			t.Errorf("client %d: watch saw %d events up to revision %d, the store holds %d", i, len(got), rEnd, len(replay))
			continue
		}
		for k := range got {
			if got[k] != replay[k] {
				t.Errorf("client %d: event %d: watch saw %+v, the store holds %+v", i, k, got[k], replay[k])
				break
			}
		}
	}
}
