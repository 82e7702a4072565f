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

// TestAgentCert_RotationFromHeartbeat: a kernel's Heartbeat answers the
// cluster's bundle fingerprint (ClusterInfo's) and, after a CA rotation,
// the new one; an agent (agent.Agent over TLS, with its certificate loop
// as dcosd agent wires it) calls no ClusterInfo over a window twice the
// old 3 s poll while it heartbeats, and after the rotation ends, within
// seconds and still without ClusterInfo, on a certificate of the new CA
// and the new bundle.
func TestAgentCert_RotationFromHeartbeat(t *testing.T) {
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
	defer toks.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	kt := testKernelTLS(t, ln, time.Hour)
	kr, err := seal.NewKeyring(seal.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	if err := kt.attach(ctx, cli3, "/t/", kr); err != nil {
		t.Fatal(err)
	}
	var clusterInfos atomic.Int64
	counted := func(context.Context) (*pb.ClusterInfoResponse, error) {
		clusterInfos.Add(1)
		return &pb.ClusterInfoResponse{}, nil
	}
	var cfg api.Config
	srv := kerneltest.Start(t, kerneltest.Options{
		Kernel: func(c *kernel.Config) { c.HeartbeatInterval = 200 * time.Millisecond },
		API: func(c *api.Config) {
			*c = toks.config(*c)
			c.Certs, c.Cluster = kt, kt.clusterInfo(counted)
			cfg = *c
		},
	})
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	served := make(chan error, 1)
	go func() {
		served <- api.ServeTLSWith(sctx, ln, api.NewHandler(srv.Kernel, cfg), discard, api.DefaultTimeouts(), kt.serverConfig())
	}()
	defer func() { cancel(); <-served }()
	url := "https://" + ln.Addr().String()

	// The agent as dcosd agent runs it: its certificate by CertRenew,
	// renewed by run, and its heartbeats' fingerprints handed to it.
	ac, err := newAgentCert(t.TempDir(), kt.state().Bundle, discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := ac.ensure(ctx, url, kerneltest.AgentToken); err != nil {
		t.Fatal(err)
	}
	renewed := make(chan error, 1)
	go func() { renewed <- ac.run(sctx, url, kerneltest.AgentToken) }()
	defer func() { cancel(); <-renewed }()
	var heard atomic.Int64
	a, err := agent.New(agent.Config{
		KernelURL: url, Token: kerneltest.AgentToken, DataDir: t.TempDir(), Logger: discard,
		Plugins: noPlugins{}, TLS: ac.conf, CABundle: ac.r.Bundle().PEM(),
		OnCABundle: func(fp string) { heard.Add(1); ac.caBundle(fp) },
	})
	if err != nil {
		t.Fatal(err)
	}
	actx, stopAgent := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- a.Run(actx) }()
	defer func() {
		stopAgent()
		if err := <-ran; err != nil {
			t.Errorf("agent Run: %v", err)
		}
	}()
	select {
	case <-a.Registered():
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not register")
	}

	heartbeat := func() string {
		t.Helper()
		res, err := kclient.NewTLS(url, kerneltest.AgentToken, ac.conf).Heartbeat(ctx, connect.NewRequest(&pb.HeartbeatRequest{AgentId: a.ID()}))
		if err != nil {
			t.Fatalf("Heartbeat: %v", err)
		}
		return res.Msg.GetCaBundleFingerprint()
	}
	clusterFP := func() string {
		t.Helper()
		res, err := kt.clusterInfo(func(context.Context) (*pb.ClusterInfoResponse, error) { return &pb.ClusterInfoResponse{}, nil })(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return res.GetCaBundleFingerprint()
	}
	old := heartbeat()
	if old == "" || old != clusterFP() {
		t.Fatalf("Heartbeat's fingerprint %q, want ClusterInfo's %q", old, clusterFP())
	}

	// Twice the old per-agent poll (3 s): heartbeats, no ClusterInfo.
	heard.Store(0)
	time.Sleep(6500 * time.Millisecond)
	if n := clusterInfos.Load(); n != 0 {
		t.Errorf("the agent called ClusterInfo %d times in 6.5 s, want 0 (its heartbeats carry the fingerprint)", n)
	}
	if n := heard.Load(); n < 5 {
		t.Fatalf("the agent heard %d heartbeat answers in 6.5 s at a 200 ms interval; want at least 5", n)
	}

	oldCert, oldCA := ac.r.Certificate().Leaf, kt.state().Active.ID()
	if _, err := kt.RotateCA(ctx, api.MinCAOverlap, 0); err != nil {
		t.Fatal(err)
	}
	newFP := heartbeat()
	if newFP == old || newFP != clusterFP() {
		t.Fatalf("after the rotation, Heartbeat's fingerprint %q (was %q), want ClusterInfo's %q", newFP, old, clusterFP())
	}
	active := kt.state().Active
	if active.ID() == oldCA {
		t.Fatal("the rotation left the active CA")
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		c := ac.r.Certificate().Leaf
		if c.CheckSignatureFrom(active.Cert) == nil && !ac.bundleDiffers(newFP) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("15 s after the rotation the agent's certificate (renewed: %v) is not of the new CA, or its bundle is not the cluster's", !c.Equal(oldCert))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := clusterInfos.Load(); n != 0 {
		t.Errorf("the agent called ClusterInfo %d times, want 0", n)
	}
	// Its new certificate is the one its calls present.
	if fp := heartbeat(); fp != newFP {
		t.Errorf("Heartbeat with the new certificate: fingerprint %q, want %q", fp, newFP)
	}
}
