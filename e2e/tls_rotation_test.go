package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/clientconfig"
	"github.com/dcos-kernel/dcos/internal/pki"
	"github.com/dcos-kernel/dcos/sdk/transport"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// TestTLS_RotationUnderLoad is issue 17's rotation proof: dcosd dev with
// 45-second certificates (the kernel's and its agents' renewed every 30
// s) and a second agent, 4 clients calling Allocate, Revoke and
// ListAgents for 2 minutes with new TLS handshakes every second, and,
// half a minute in, a CA rotation with a 40-second overlap, retired
// while the clients call. No client call fails, no agent call fails, the
// agents end with certificates of the new CA, and a client that kept
// only the old CA is refused once it is retired.
func TestTLS_RotationUnderLoad(t *testing.T) {
	t.Parallel()
	const (
		burst     = 2 * time.Minute
		rotateAt  = 30 * time.Second
		overlap   = 40 * time.Second
		validity  = 45 * time.Second
		clients   = 4
		handshake = time.Second
		pace      = 10 * time.Millisecond // per client, between rounds of 3 calls
	)
	e := newEnv(t)
	dev := e.startDev("--init=false", "--jobs=false", "--cert-validity", validity.String())
	agentTok := strings.TrimSpace(e.mustCtl("token", "create", "--role", "agent", "--name", "node-2"))
	agent2, _ := e.startAgent("node-2", agentTok, "--resources", "cpus=2,mem=1Gi")

	caPEM, err := os.ReadFile(e.caFile)
	if err != nil {
		t.Fatal(err)
	}
	oldBundle, err := pki.ParseBundle(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	var calls, failed atomic.Int64
	var leavesMu sync.Mutex
	leaves := map[string]bool{} // serving certificates the clients were shown
	var failures []string
	newClient := func(r *pki.Reloader) (syscallsv1connect.KernelClient, *http.Transport) {
		cfg := r.ClientConfig("")
		verify := cfg.VerifyConnection
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if err := verify(cs); err != nil {
				return err
			}
			leavesMu.Lock()
			leaves[pki.Fingerprint(cs.PeerCertificates[0])] = true
			leavesMu.Unlock()
			return nil
		}
		tr := &http.Transport{TLSClientConfig: cfg}
		return syscallsv1connect.NewKernelClient(&http.Client{Transport: tr, Timeout: 30 * time.Second}, e.url, connect.WithInterceptors(transport.Bearer(e.opToken))), tr
	}
	ctx, cancel := context.WithTimeout(context.Background(), burst)
	defer cancel()
	var wg sync.WaitGroup
	var followers []*pki.Reloader
	for i := range clients {
		r := pki.NewReloader(nil, oldBundle)
		followers = append(followers, r)
		k, tr := newClient(r)
		defer tr.CloseIdleConnections()
		fail := func(what string, err error) {
			failed.Add(1)
			leavesMu.Lock()
			failures = append(failures, fmt.Sprintf("client %d: %s: %v", i, what, err))
			leavesMu.Unlock()
		}
		wg.Go(func() {
			last := time.Now()
			for ctx.Err() == nil {
				if time.Since(last) > handshake {
					// A new handshake every second, so that every step of the
					// rotation meets fresh connections; and the client follows
					// the cluster's bundle, as a long-running client should.
					tr.CloseIdleConnections()
					last = time.Now()
					calls.Add(1)
					ci, err := k.ClusterInfo(ctx, connect.NewRequest(&pb.ClusterInfoRequest{}))
					if err != nil {
						if ctx.Err() == nil {
							fail("ClusterInfo", err)
						}
						continue
					}
					if b, err := pki.ParseBundle(ci.Msg.GetCaBundle()); err == nil {
						r.Set(nil, b)
					}
				}
				calls.Add(1)
				res, err := k.Allocate(ctx, connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.01, MemBytes: 1 << 20}}))
				if err != nil {
					if ctx.Err() == nil {
						fail("Allocate", err)
					}
					continue
				}
				for _, a := range res.Msg.GetAllocations() {
					calls.Add(1)
					if _, err := k.Revoke(context.Background(), connect.NewRequest(&pb.RevokeRequest{Id: a.GetId()})); err != nil {
						fail("Revoke", err)
					}
				}
				calls.Add(1)
				if _, err := k.ListAgents(ctx, connect.NewRequest(&pb.ListAgentsRequest{})); err != nil && ctx.Err() == nil {
					fail("ListAgents", err)
				}
				// A steady burst, not a flood: the kernel's commits are
				// what is measured elsewhere (docs/benchmarks.md).
				time.Sleep(pace)
			}
		})
	}

	// A client that keeps only the old CA, and never follows.
	pinned, pinnedTr := newClient(pki.NewReloader(nil, oldBundle))
	defer pinnedTr.CloseIdleConnections()

	time.Sleep(rotateAt)
	out := e.mustCtl("ca", "rotate", "--overlap", overlap.String())
	t.Log(strings.TrimSpace(out))
	rotated := time.Now()
	// During the overlap the pinned client still verifies the kernel (the
	// new CA cross-signed by the old is in every chain served).
	time.Sleep(overlap / 2)
	pinnedTr.CloseIdleConnections()
	if _, err := pinned.ListAgents(context.Background(), connect.NewRequest(&pb.ListAgentsRequest{})); err != nil {
		t.Errorf("during the overlap, a client that trusts only the old CA was refused: %v", err)
	}
	wg.Wait()
	if since := time.Since(rotated); since < overlap+5*time.Second {
		t.Fatalf("the burst ended %v after the rotation, before the old CA's retirement could be seen", since)
	}
	leavesMu.Lock()
	t.Logf("%d calls, %d failed; the clients saw %d serving certificates", calls.Load(), failed.Load(), len(leaves))
	for _, f := range failures[:min(len(failures), 20)] {
		t.Error(f)
	}
	if len(leaves) < 4 {
		t.Errorf("the clients saw %d serving certificates in %v of 45 s certificates and a rotation, want at least 4", len(leaves), burst)
	}
	leavesMu.Unlock()
	if failed.Load() != 0 {
		t.Errorf("%d of %d calls failed", failed.Load(), calls.Load())
	}

	// Retired: the pinned client is refused, with the hint.
	pinnedTr.CloseIdleConnections()
	if _, err := pinned.ListAgents(context.Background(), connect.NewRequest(&pb.ListAgentsRequest{})); err == nil {
		t.Error("after the old CA's retirement, a client that trusts only it was served")
	}
	// dcosctl pinned the old CA too: it is given the bundle the clients
	// followed (what "dcosctl login --ca-fingerprint" with the new
	// fingerprint records).
	newCA := e.path("new-ca.crt")
	if err := os.WriteFile(newCA, followers[0].Bundle().PEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	e.trustCA(newCA)
	cc, err := clientconfig.Load(e.ccPath)
	if err != nil {
		t.Fatal(err)
	}
	cc.CA = string(followers[0].Bundle().PEM())
	if err := clientconfig.Save(e.ccPath, cc); err != nil {
		t.Fatal(err)
	}
	// The agents never failed a call, and hold certificates of the new CA.
	var certs pb.CertListResponse
	unmarshalJSON(t, e.mustCtl("cert", "ls", "-o", "json"), &certs)
	var active string
	cas := 0
	for _, c := range certs.GetCerts() {
		if c.GetKind() == "ca" {
			cas++
			if c.GetStatus() == "active" {
				active = c.GetFingerprint()
			}
		}
	}
	if cas != 1 || active == "" || active == pki.Fingerprint(oldBundle[0]) {
		t.Errorf("after retirement: %d CAs, active %q (old %s); want only the new one", cas, active, pki.Fingerprint(oldBundle[0]))
	}
	agents := 0
	for _, c := range certs.GetCerts() {
		if c.GetKind() == "agent" {
			agents++
			if c.GetIssuer() != active || c.GetStatus() != "valid" {
				t.Errorf("agent %s: certificate of issuer %s, status %s; want a valid one of the new CA %s", c.GetName(), c.GetIssuer(), c.GetStatus(), active)
			}
		}
	}
	if agents != 2 {
		t.Errorf("%d agent certificates listed, want 2:\n%s", agents, e.mustCtl("cert", "ls"))
	}
	for _, a := range listAgents(t, e.op()).GetAgents() {
		if a.GetState() != pb.AgentState_AGENT_STATE_UP {
			t.Errorf("agent %s is %s", a.GetHostname(), a.GetState())
		}
	}
	for name, log := range map[string]string{"dcosd dev": dev.stderr.String(), "agent node-2": agent2.stderr.String()} {
		for _, l := range strings.Split(log, "\n") {
			if (strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR")) && (strings.Contains(l, "component=agent") || strings.Contains(l, "component=tls") || name == "agent node-2") {
				t.Errorf("%s: %s", name, l)
			}
		}
	}
}
