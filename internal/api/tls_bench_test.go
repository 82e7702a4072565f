package api_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	"github.com/dcos-kernel/dcos/internal/pki"
	"github.com/dcos-kernel/dcos/internal/store"
	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/sdk/transport"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// BenchmarkAllocate_TLSvsPlain serves one kernel on two ports, one in
// clear text (HTTP/1.1 keep-alive, what http:// clients speak) and one
// over TLS, and alternates Allocate calls between three clients in the
// same loop — plain, TLS as the SDK speaks it (transport.HTTPClientTLS:
// HTTP/1.1 keep-alive) and TLS with HTTP/2, both reusing connections and
// resuming sessions — so that all see the
// same kernel, store and machine load. It reports each one's p50 and
// the ratios (issue 17's goal: TLS/plain ≤ 1.1).
func BenchmarkAllocate_TLSvsPlain(b *testing.B) {
	e, err := store.StartEmbedded(store.EmbeddedConfig{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	k, err := kernel.New(ctx, kernel.Config{Store: store.New(e.Client(), ""), HeartbeatTimeout: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	kdone := make(chan struct{})
	go func() { k.Run(ctx); close(kdone) }()
	defer func() { cancel(); <-kdone }()
	tokens, err := api.NewTokens(kerneltest.DefaultTokens())
	if err != nil {
		b.Fatal(err)
	}
	h := api.NewHandler(k, api.Config{Tokens: tokens, RateLimits: map[kernel.Role]api.RateLimit{}})
	log := slog.New(slog.DiscardHandler)

	ca, _ := pki.NewCA("bench CA", time.Hour, time.Now())
	kp, _, _, err := ca.Issue(pki.Leaf{CommonName: "k", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true, Validity: time.Hour}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	srvR := pki.NewReloader(&kp, pki.Bundle{ca.Cert})
	plainLn, _ := net.Listen("tcp", "127.0.0.1:0")
	tlsLn, _ := net.Listen("tcp", "127.0.0.1:0")
	go api.ServeWith(ctx, plainLn, h, log, api.DefaultTimeouts())
	go api.ServeTLSWith(ctx, tlsLn, h, log, api.DefaultTimeouts(), srvR.ServerConfig(tls.VerifyClientCertIfGiven))

	plainHC := transport.HTTPClient()
	cliR := pki.NewReloader(nil, pki.Bundle{ca.Cert})
	sdkTLS := transport.HTTPClientTLS(cliR.ClientConfig("")) // what dcosctl and the SDK use
	h2Tr := &http.Transport{TLSClientConfig: cliR.ClientConfig(""), ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64}
	defer sdkTLS.CloseIdleConnections()
	defer h2Tr.CloseIdleConnections()
	bearer := connect.WithInterceptors(transport.Bearer(kerneltest.OperatorToken))
	plain := syscallsv1connect.NewKernelClient(plainHC, "http://"+plainLn.Addr().String(), bearer)
	secure := syscallsv1connect.NewKernelClient(sdkTLS, "https://"+tlsLn.Addr().String(), bearer)
	secure2 := syscallsv1connect.NewKernelClient(&http.Client{Transport: h2Tr}, "https://"+tlsLn.Addr().String(), bearer)

	agent := syscallsv1connect.NewKernelClient(plainHC, "http://"+plainLn.Addr().String(), connect.WithInterceptors(transport.Bearer(kerneltest.AgentToken)))
	if _, err := agent.RegisterAgent(ctx, connect.NewRequest(&pb.RegisterAgentRequest{Hostname: "bench", Resources: &pb.Resources{Cpus: 1e5, MemBytes: 1 << 44}})); err != nil {
		b.Fatal(err)
	}
	req := &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.001, MemBytes: 1 << 20}}
	call := func(c syscallsv1connect.KernelClient) time.Duration {
		start := time.Now()
		res, err := c.Allocate(ctx, connect.NewRequest(req))
		d := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		for _, a := range res.Msg.GetAllocations() {
			if _, err := c.Revoke(ctx, connect.NewRequest(&pb.RevokeRequest{Id: a.GetId()})); err != nil {
				b.Fatal(err)
			}
		}
		return d
	}
	call(plain) // warm the connections
	call(secure)
	call(secure2)
	var dp, dt, dt2 []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dp = append(dp, call(plain))
		dt = append(dt, call(secure))
		dt2 = append(dt2, call(secure2))
	}
	b.StopTimer()
	p50 := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Microseconds()) / 1000
	}
	pp, pt, pt2 := p50(dp), p50(dt), p50(dt2)
	b.ReportMetric(pp, "plain-p50-ms")
	b.ReportMetric(pt, "tls-h1-p50-ms")
	b.ReportMetric(pt2, "tls-h2-p50-ms")
	b.ReportMetric(pt/pp, "tls-h1/plain")
	b.ReportMetric(pt2/pp, "tls-h2/plain")
}
