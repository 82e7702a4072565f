package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	clientv3 "go.etcd.io/etcd/client/v3"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Benchmarks of the highly available control plane (issue 16,
// docs/benchmarks.md "Control plane failover"): 3 real `dcosd kernel`
// processes on a 3-member cluster of Debian's etcd-server, on this
// machine.

// haCluster starts the benchmark's cluster and returns it with an
// operator token.
func haCluster(b *testing.B) (*env, *etcdCluster, []*proc, []string, string) {
	etcd := startEtcd(b, 3) // before newEnv: see TestHA_LeaderKill
	e := newEnv(b)
	opTok := newToken()
	tokens := e.writeTokens(e.path("tokens.json"), tokenEntry{Token: opTok, Name: "ops", Role: "operator"})
	procs, urls := e.haKernels(3, etcd, tokens, opTok)
	e.leader(urls)
	return e, etcd, procs, urls, tokens
}

// BenchmarkHA_Allocate: the round trip of one Allocate (one instance,
// pending: no agents; revoked after, untimed) through the kernel list,
// sequentially: each call's cycle runs the policy over its own request
// alone. Goal p50 ≤ 3 ms.
func BenchmarkHA_Allocate(b *testing.B) {
	e, _, _, _, _ := haCluster(b)
	op := e.op()
	ctx := context.Background()
	req := &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.001, MemBytes: mi}}
	// revoke ends an allocation: without agents it would stay pending,
	// and every later cycle would run the policy over it too.
	revoke := func(res *connect.Response[pb.AllocateResponse]) {
		if _, err := op.Revoke(ctx, connect.NewRequest(&pb.RevokeRequest{Id: res.Msg.GetAllocations()[0].GetId()})); err != nil {
			b.Fatal(err)
		}
	}
	for range 20 { // warm the connection and the leader's path
		res, err := op.Allocate(ctx, connect.NewRequest(req))
		if err != nil {
			b.Fatal(err)
		}
		revoke(res)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		res, err := op.Allocate(ctx, connect.NewRequest(req))
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		b.StopTimer()
		revoke(res) // untimed
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
}

// BenchmarkHA_EtcdTxn: the floor under BenchmarkHA_Allocate — one etcd
// transaction (a put of 1 KiB) on the same kind of 3-member cluster,
// straight from clientv3 clients, sequentially, alternating between a
// client of every member (clientv3 round-robins its requests, and a
// follower forwards a write to the etcd leader: p50-ms) and a client of
// the etcd leader alone (what the kernel's commits use: leader-p50-ms).
func BenchmarkHA_EtcdTxn(b *testing.B) {
	etcd := startEtcd(b, 3)
	cfg := clientv3.Config{Endpoints: etcd.client, TLS: etcd.pki.tlsConfig(), DialTimeout: 5 * time.Second}
	rr, err := clientv3.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer rr.Close()
	ctx := context.Background()
	leader := ""
	for _, ep := range etcd.client {
		st, err := rr.Status(ctx, ep)
		if err != nil {
			b.Fatal(err)
		}
		if st.Header.GetMemberId() == st.Leader {
			leader = ep
		}
	}
	if leader == "" {
		b.Fatal("no etcd member says it leads")
	}
	cfg.Endpoints = []string{leader}
	lc, err := clientv3.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer lc.Close()
	val := strings.Repeat("x", 1024)
	lat := [2][]time.Duration{make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)}
	b.ResetTimer()
	for i := range b.N {
		cli := rr
		if i%2 == 1 {
			cli = lc
		}
		t0 := time.Now()
		if _, err := cli.Txn(ctx).Then(clientv3.OpPut(fmt.Sprintf("/bench/%d", i%100), val)).Commit(); err != nil {
			b.Fatal(err)
		}
		lat[i%2] = append(lat[i%2], time.Since(t0))
	}
	b.StopTimer()
	for i, unit := range []string{"", "leader-"} {
		slices.Sort(lat[i])
		b.ReportMetric(ms(percentile(lat[i], 50)), unit+"p50-ms")
		b.ReportMetric(ms(percentile(lat[i], 99)), unit+"p99-ms")
	}
}

// BenchmarkHA_Failover: SIGKILL of the leading kernel → the first
// Allocate that succeeds (through the kernel list, retried as soon as it
// fails), each iteration; the killed kernel is started again on its
// address before the next. Goal p50 ≤ 1 s.
func BenchmarkHA_Failover(b *testing.B) {
	e, etcd, procs, urls, tokens := haCluster(b)
	op := e.op()
	req := &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.001, MemBytes: mi}}
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		li := e.leader(urls)
		if _, err := op.Allocate(context.Background(), connect.NewRequest(req)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		procs[li].kill()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := op.Allocate(ctx, connect.NewRequest(req))
			cancel()
			if err == nil {
				break
			}
			if time.Since(t0) > time.Minute {
				b.Fatalf("no Allocate succeeded within a minute of the kill: %v", err)
			}
		}
		lat = append(lat, time.Since(t0))
		b.StopTimer()
		// The killed kernel back, on its address, as a standby.
		host := strings.TrimPrefix(urls[li], "https://")
		procs[li], _ = e.start(fmt.Sprintf("dcosd kernel %d (again %d)", li+1, i), "dcos kernel: listening at ",
			append([]string{"kernel", "--data-dir", e.path(fmt.Sprintf("kernel%d", li+1)), "--listen", host,
				"--tokens", tokens, "--etcd-endpoints", etcd.endpoints(), "--leader-lease", "2s"}, e.kernelPKI(etcd.pki)...)...)
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
}
