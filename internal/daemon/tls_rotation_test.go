package daemon

import (
	"context"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/agent"
	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	"github.com/dcos-kernel/dcos/internal/seal"
	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/plugins/contract"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// noPlugins is the plugin host of an agent that runs no task here: no
// driver, isolator or net driver.
type noPlugins struct{}

var errNoPlugin = errors.New("no plugins in this test")

func (noPlugins) Driver(string) (contract.Driver, error)     { return nil, errNoPlugin }
func (noPlugins) Isolator(string) (contract.Isolator, error) { return nil, errNoPlugin }
func (noPlugins) Net(string) (contract.NetDriver, error)     { return nil, errNoPlugin }
func (noPlugins) Info() []*pb.PluginInfo                     { return nil }

// issuerOnly hides every optional interface of a CertIssuer: the API of
// a kernel older than HeartbeatResponse.ca_bundle_fingerprint.
type issuerOnly struct{ api.CertIssuer }

// rotationEnv is a kernel over TLS on a cluster CA in etcd, counting the
// ClusterInfo calls it serves, and an agent (agent.Agent with its
// certificate loop, wired as dcosd agent wires them) heartbeating every
// 200 ms.
type rotationEnv struct {
	kt           *kernelTLS
	ac           *agentCert
	a            *agent.Agent
	url          string
	clusterInfos atomic.Int64 // ClusterInfo calls served
	heard        atomic.Int64 // heartbeat answers the agent handed to OnCABundle
}

// startRotationEnv starts a rotationEnv; old makes the API an older
// kernel's (no fingerprint in heartbeats); fallback is the agent's
// ClusterInfo fallback pace.
func startRotationEnv(t *testing.T, old bool, fallback time.Duration) *rotationEnv {
	t.Helper()
	ctx := context.Background()
	cli3 := startEtcd(t)
	file, err := api.NewTokens(kerneltest.DefaultTokens())
	if err != nil {
		t.Fatal(err)
	}
	toks, err := startTokens(ctx, discard, os.Stderr, cli3, "", file, "https://x", "sha256:00")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(toks.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &rotationEnv{kt: testKernelTLS(t, ln, time.Hour), url: "https://" + ln.Addr().String()}
	kr, err := seal.NewKeyring(seal.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.kt.attach(ctx, cli3, "/t/", kr); err != nil {
		t.Fatal(err)
	}
	counted := func(context.Context) (*pb.ClusterInfoResponse, error) {
		e.clusterInfos.Add(1)
		return &pb.ClusterInfoResponse{}, nil
	}
	var cfg api.Config
	srv := kerneltest.Start(t, kerneltest.Options{
		Kernel: func(c *kernel.Config) { c.HeartbeatInterval = 200 * time.Millisecond },
		API: func(c *api.Config) {
			*c = toks.config(*c)
			c.Certs, c.Cluster = e.kt, e.kt.clusterInfo(counted)
			if old {
				c.Certs = issuerOnly{e.kt}
			}
			cfg = *c
		},
	})
	sctx, cancel := context.WithCancel(ctx)
	served, renewed, ran := make(chan error, 1), make(chan error, 1), make(chan error, 1)
	go func() {
		served <- api.ServeTLSWith(sctx, ln, api.NewHandler(srv.Kernel, cfg), discard, api.DefaultTimeouts(), e.kt.serverConfig())
	}()
	t.Cleanup(func() { cancel(); <-served })

	if e.ac, err = newAgentCert(t.TempDir(), e.kt.state().Bundle, discard); err != nil {
		t.Fatal(err)
	}
	e.ac.fallback = fallback
	if err := e.ac.ensure(ctx, e.url, kerneltest.AgentToken); err != nil {
		t.Fatal(err)
	}
	go func() { renewed <- e.ac.run(sctx, e.url, kerneltest.AgentToken) }()
	t.Cleanup(func() { cancel(); <-renewed })
	e.a, err = agent.New(agent.Config{
		KernelURL: e.url, Token: kerneltest.AgentToken, DataDir: t.TempDir(), Logger: discard,
		Plugins: noPlugins{}, TLS: e.ac.conf, CABundle: e.ac.r.Bundle().PEM(),
		OnCABundle: func(fp string) { e.heard.Add(1); e.ac.caBundle(fp) },
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { ran <- e.a.Run(sctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("agent Run: %v", err)
		}
	})
	select {
	case <-e.a.Registered():
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not register")
	}
	return e
}

// heartbeat calls Heartbeat as the agent and returns the answer's
// fingerprint.
func (e *rotationEnv) heartbeat(t *testing.T) string {
	t.Helper()
	res, err := kclient.NewTLS(e.url, kerneltest.AgentToken, e.ac.conf).Heartbeat(context.Background(), connect.NewRequest(&pb.HeartbeatRequest{AgentId: e.a.ID()}))
	if err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	return res.Msg.GetCaBundleFingerprint()
}

// clusterFP is the fingerprint ClusterInfo answers (not counted).
func (e *rotationEnv) clusterFP(t *testing.T) string {
	t.Helper()
	res, err := e.kt.clusterInfo(func(context.Context) (*pb.ClusterInfoResponse, error) { return &pb.ClusterInfoResponse{}, nil })(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res.GetCaBundleFingerprint()
}

// rotate rotates the cluster CA and waits until the agent holds a
// certificate of the new CA and the new bundle.
func (e *rotationEnv) rotate(t *testing.T, within time.Duration) {
	t.Helper()
	oldCert, oldCA := e.ac.r.Certificate().Leaf, e.kt.state().Active.ID()
	if _, err := e.kt.RotateCA(context.Background(), api.MinCAOverlap, 0); err != nil {
		t.Fatal(err)
	}
	active, fp := e.kt.state().Active, e.clusterFP(t)
	if active.ID() == oldCA {
		t.Fatal("the rotation left the active CA")
	}
	deadline := time.Now().Add(within)
	for {
		c := e.ac.r.Certificate().Leaf
		if c.CheckSignatureFrom(active.Cert) == nil && !e.ac.bundleDiffers(fp) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after the rotation the agent's certificate (renewed: %v) is not of the new CA, or its bundle is not the cluster's", within, !c.Equal(oldCert))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAgentCert_RotationFromHeartbeat: a kernel's Heartbeat answers the
// cluster's bundle fingerprint (ClusterInfo's), from memory without an
// allocation, and after a CA rotation the new one; an agent calls no
// ClusterInfo over a window twice the old 3 s poll while it heartbeats,
// and after the rotation ends, within seconds and still without
// ClusterInfo, on a certificate of the new CA and the new bundle.
func TestAgentCert_RotationFromHeartbeat(t *testing.T) {
	e := startRotationEnv(t, false, caFallbackPoll)
	old := e.heartbeat(t)
	if old == "" || old != e.clusterFP(t) {
		t.Fatalf("Heartbeat's fingerprint %q, want ClusterInfo's %q", old, e.clusterFP(t))
	}
	if n := testing.AllocsPerRun(100, func() { e.kt.CABundleFingerprint() }); n != 0 {
		t.Errorf("CABundleFingerprint: %v allocations per call, want 0 (cached per CA state)", n)
	}

	// Twice the old per-agent poll (3 s): heartbeats, no ClusterInfo.
	e.heard.Store(0)
	time.Sleep(6500 * time.Millisecond)
	if n := e.clusterInfos.Load(); n != 0 {
		t.Errorf("the agent called ClusterInfo %d times in 6.5 s, want 0 (its heartbeats carry the fingerprint)", n)
	}
	if n := e.heard.Load(); n < 5 {
		t.Fatalf("the agent heard %d heartbeat answers in 6.5 s at a 200 ms interval; want at least 5", n)
	}

	e.rotate(t, 15*time.Second)
	if n := e.clusterInfos.Load(); n != 0 {
		t.Errorf("the agent called ClusterInfo %d times, want 0", n)
	}
	// The agent's calls present its new certificate; the answer is the
	// new fingerprint.
	if fp := e.heartbeat(t); fp == old || fp != e.clusterFP(t) {
		t.Errorf("after the rotation, Heartbeat's fingerprint %q (was %q), want ClusterInfo's %q", fp, old, e.clusterFP(t))
	}
}

// TestAgentCert_RotationFallback: against a kernel whose heartbeats
// carry no fingerprint (an older one), the agent asks ClusterInfo at the
// fallback pace and still ends on the new CA's certificate after a
// rotation.
func TestAgentCert_RotationFallback(t *testing.T) {
	const fallback = 500 * time.Millisecond
	e := startRotationEnv(t, true, fallback)
	if fp := e.heartbeat(t); fp != "" {
		t.Fatalf("an older kernel's Heartbeat answered fingerprint %q", fp)
	}
	time.Sleep(2 * time.Second)
	if n := e.clusterInfos.Load(); n < 2 {
		t.Errorf("the agent called ClusterInfo %d times in 2 s with no fingerprint in heartbeats and a %v fallback; want at least 2", n, fallback)
	}
	e.rotate(t, 15*time.Second)
}
