package e2e

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/pki"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestTLS_PlainHTTPRefused: dcosd dev serves only TLS. Plain HTTP to its
// port is answered 400 with a hint; curl with the bundle dev leaves in
// DATA_DIR/pki works (as the README shows); curl without it fails; and
// dcosctl, with the CA dev wrote into the client config, needs no flag.
func TestTLS_PlainHTTPRefused(t *testing.T) {
	t.Parallel()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl is not installed: %v", err)
	}
	e := newEnv(t)
	e.startDev("--resources", "cpus=1,mem=1Gi", "--init=false", "--jobs=false")
	if !strings.HasPrefix(e.url, "https://") {
		t.Fatalf("dcosd dev serves at %s, want https://", e.url)
	}
	host := strings.TrimPrefix(e.url, "https://")

	plain := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	res, err := plain.Get("http://" + host + "/healthz")
	if err != nil {
		t.Fatalf("plain HTTP: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || string(b) != api.PlainHTTPHint {
		t.Errorf("plain HTTP got %d %q; want 400 and the hint", res.StatusCode, b)
	}
	// A syscall with a token over plain HTTP: refused the same way,
	// before any of it is read as a request.
	res, err = plain.Post("http://"+host+"/dcos.syscalls.v1.Kernel/ListAgents", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("plain HTTP syscall: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("plain HTTP syscall got %d, want 400", res.StatusCode)
	}

	ca := e.path("data", "pki", "ca.crt")
	if out := e.run(curl, "-sS", "--fail-with-body", "--cacert", ca, e.url+"/healthz"); strings.TrimSpace(out) != "ok" {
		t.Errorf("curl --cacert %s /healthz = %q", ca, out)
	}
	if out, code := e.runStatus(curl, "-sS", e.url+"/healthz"); code == 0 {
		t.Errorf("curl without the CA succeeded: %q", out)
	}
	// dcosctl finds the CA in the client config dcosd dev wrote, even
	// without $DCOS_CA_FILE.
	cmd := e.ctlCmd(ctx(t), "agents")
	var env []string
	for _, kv := range cmd.Env {
		if !strings.HasPrefix(kv, "DCOS_CA_FILE=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "ID") {
		t.Errorf("dcosctl agents with dev's client config: %v\n%s", err, out)
	}
	// Metrics show the kernel certificate's expiry.
	if body := scrapeMetrics(t, e.url+"/metrics"); !strings.Contains(body, `dcos_tls_certificate_expiry_timestamp_seconds{holder="kernel"}`) {
		t.Errorf("/metrics lacks the kernel certificate's expiry")
	}
}

// TestTLS_AgentCertBinding: two agents, each with a token of its own,
// get certificates bound to their principals; agent A's certificate
// with agent B's token is refused, with a message naming both; B's
// token without a certificate is refused; A's own pair works; and a
// dcosctl trusting another CA is told what to do.
func TestTLS_AgentCertBinding(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opTok, aTok, bTok := newToken(), newToken(), newToken()
	tokens := e.writeTokens(e.path("tokens.json"),
		tokenEntry{Token: opTok, Name: "ops", Role: "operator"},
		tokenEntry{Token: aTok, Name: "agent-a", Role: "agent"},
		tokenEntry{Token: bTok, Name: "agent-b", Role: "agent"})
	e.startKernel(tokens, opTok)
	e.startAgent("a", aTok, "--task-isolation=false")
	e.startAgent("b", bTok, "--task-isolation=false")

	dirA := e.path("agents", "a")
	certA, err := tls.LoadX509KeyPair(filepath.Join(dirA, "agent.crt"), filepath.Join(dirA, "agent.key"))
	if err != nil {
		t.Fatalf("agent A's certificate: %v", err)
	}
	if certA.Leaf == nil {
		t.Fatal("agent A's certificate did not parse")
	}
	if role, name, ok := pki.IdentityOf(certA.Leaf); !ok || role != "agent" || name != "agent-a" {
		t.Fatalf("agent A's certificate is %s %s (%v), want agent agent-a", role, name, ok)
	}
	as := func(token string, cert *tls.Certificate) error {
		conf := kernelTLS.Clone()
		conf.ClientSessionCache = nil
		if cert != nil {
			conf.Certificates = []tls.Certificate{*cert}
		}
		_, err := kclient.NewTLS(e.url, token, conf).ListAgents(ctx(t), connect.NewRequest(&pb.ListAgentsRequest{}))
		return err
	}
	if err := as(aTok, &certA); err != nil {
		t.Errorf("agent A's token with A's certificate: %v", err)
	}
	err = as(bTok, &certA)
	if connect.CodeOf(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), "this certificate is agent agent-a's; the token is agent agent-b's") {
		t.Errorf("agent B's token with A's certificate = %v; want PermissionDenied naming both", err)
	}
	if err := as(bTok, nil); connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), api.ErrAgentNeedsCert) {
		t.Errorf("agent B's token without a certificate = %v; want Unauthenticated", err)
	}
	if err := as(opTok, nil); err != nil {
		t.Errorf("the operator's token without a certificate: %v", err)
	}

	// dcosctl with another CA: refused by the handshake, with a hint.
	other, err := pki.NewCA("another CA", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	otherFile := e.path("other-ca.crt")
	if err := os.WriteFile(otherFile, other.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := e.ctl("--kernel", e.url, "--token", opTok, "--ca-cert", otherFile, "agents")
	if code == 0 || !strings.Contains(errOut, "dcosctl login") || !strings.Contains(errOut, "--ca-fingerprint") {
		t.Errorf("dcosctl trusting another CA: exit %d, stderr %q; want a refusal saying how to pin the CA", code, errOut)
	}
	// A raw TLS client of another CA is refused at the handshake.
	conf := &tls.Config{RootCAs: pki.Bundle{other.Cert}.Pool()}
	if c, err := tls.Dial("tcp", strings.TrimPrefix(e.url, "https://"), conf); err == nil {
		c.Close()
		t.Error("a client trusting another CA completed a handshake")
	} else if _, ok := err.(*tls.CertificateVerificationError); !ok && !strings.Contains(err.Error(), "certificate") {
		t.Errorf("handshake error %v; want a certificate verification error", err)
	}
}
