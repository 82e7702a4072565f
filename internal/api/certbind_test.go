package api_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	"github.com/dcos-kernel/dcos/internal/pki"
	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

const (
	agentAToken = "agent-a-token-0123456789ab"
	agentBToken = "agent-b-token-0123456789ab"
)

// testIssuer is an api.CertIssuer on a test CA, as the daemon's.
type testIssuer struct{ ca *pki.CA }

func (i testIssuer) IssueFor(p kernel.Principal, csrPEM []byte) ([]byte, []byte, error) {
	csr, err := pki.ParseCSR(csrPEM)
	if err != nil {
		return nil, nil, err
	}
	der, err := i.ca.Sign(csr.PublicKey, pki.Leaf{CommonName: p.Name, Identity: pki.IdentityURI(p.Role.String(), p.Name), Client: true, Validity: time.Hour}, time.Now())
	if err != nil {
		return nil, nil, err
	}
	return append(pki.EncodeCert(der), i.ca.CertPEM()...), i.ca.CertPEM(), nil
}

// tlsKernel serves a real kernel's API over TLS, with a serving
// certificate of ca, client certificates verified if given, and
// CertRenew issuing from ca. It returns the base URL.
func tlsKernel(t *testing.T, ca *pki.CA) string {
	t.Helper()
	tokens := append(kerneltest.DefaultTokens(),
		api.TokenEntry{Token: agentAToken, Name: "agent-a", Role: "agent"},
		api.TokenEntry{Token: agentBToken, Name: "agent-b", Role: "agent"})
	var cfg api.Config
	srv := kerneltest.Start(t, kerneltest.Options{Tokens: tokens, API: func(c *api.Config) { c.Certs = testIssuer{ca}; cfg = *c }})
	kp, _, _, err := ca.Issue(pki.Leaf{CommonName: "k", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true, Validity: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r := pki.NewReloader(&kp, pki.Bundle{ca.Cert})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- api.ServeTLSWith(ctx, ln, api.NewHandler(srv.Kernel, cfg), slog.New(slog.DiscardHandler), api.DefaultTimeouts(), r.ServerConfig(tls.VerifyClientCertIfGiven))
	}()
	t.Cleanup(func() { cancel(); <-done })
	return "https://" + ln.Addr().String()
}

// clientOf returns a TLS client config trusting ca and presenting cert
// (nil: none).
func clientOf(ca *pki.CA, cert *tls.Certificate) *tls.Config {
	return pki.NewReloader(cert, pki.Bundle{ca.Cert}).ClientConfig("")
}

// certFor gets a client certificate for token by CertRenew.
func certFor(t *testing.T, url string, ca *pki.CA, token string) *tls.Certificate {
	t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.CreateCSR(key, "whatever the client asks")
	if err != nil {
		t.Fatal(err)
	}
	res, err := kclient.NewTLS(url, token, clientOf(ca, nil)).CertRenew(context.Background(), connect.NewRequest(&pb.CertRenewRequest{Csr: csr}))
	if err != nil {
		t.Fatalf("CertRenew: %v", err)
	}
	certs, err := pki.ParseCerts(res.Msg.GetCertificate())
	if err != nil {
		t.Fatal(err)
	}
	if b, err := pki.ParseBundle(res.Msg.GetCaBundle()); err != nil || !b[0].Equal(ca.Cert) {
		t.Errorf("CertRenew's ca_bundle: %v, %v", b, err)
	}
	tc := tls.Certificate{PrivateKey: key, Leaf: certs[0]}
	for _, c := range certs {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return &tc
}

// handshake stands for "refused by the TLS handshake" in
// TestDoor_CertBinding.
const handshake = connect.Code(999)

// TestDoor_CertBinding: over TLS, a client certificate must be the
// token's principal's; agents must present one except to get one;
// operators and frameworks may go without; the handshake refuses
// foreign-CA and expired certificates.
func TestDoor_CertBinding(t *testing.T) {
	ca, err := pki.NewCA("test CA", 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	url := tlsKernel(t, ca)
	ctx := context.Background()

	certA := certFor(t, url, ca, agentAToken)
	if role, name, ok := pki.IdentityOf(certA.Leaf); !ok || role != "agent" || name != "agent-a" {
		t.Fatalf("agent A's certificate is %s %s (%v); want agent agent-a", role, name, ok)
	}
	if certA.Leaf.Subject.CommonName != "agent-a" {
		t.Errorf("the CSR's name was used: %q", certA.Leaf.Subject.CommonName)
	}
	certOps := certFor(t, url, ca, kerneltest.OperatorToken)

	foreign, err := pki.NewCA("another CA", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	foreignA, _, _, err := foreign.Issue(pki.Leaf{CommonName: "agent-a", Identity: pki.AgentIdentity("agent-a"), Client: true, Validity: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	expiredA, _, _, err := ca.Issue(pki.Leaf{CommonName: "agent-a", Identity: pki.AgentIdentity("agent-a"), Client: true, Validity: time.Minute}, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		token    string
		cert     *tls.Certificate
		code     connect.Code // 0: OK
		contains string
	}{
		{"agent with its own certificate", agentAToken, certA, 0, ""},
		{"agent with another agent's certificate", agentBToken, certA, connect.CodePermissionDenied, "this certificate is agent agent-a's; the token is agent agent-b's"},
		{"agent without a certificate", agentBToken, nil, connect.CodeUnauthenticated, api.ErrAgentNeedsCert},
		{"operator without a certificate", kerneltest.OperatorToken, nil, 0, ""},
		{"operator with its own certificate", kerneltest.OperatorToken, certOps, 0, ""},
		{"operator with an agent's certificate", kerneltest.OperatorToken, certA, connect.CodePermissionDenied, "this certificate is agent agent-a's; the token is operator ops's"},
		{"framework without a certificate", kerneltest.FrameworkToken, nil, 0, ""},
		{"agent with a foreign CA's certificate", agentAToken, &foreignA, handshake, ""},
		{"agent with an expired certificate", agentAToken, &expiredA, handshake, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := kclient.NewTLS(url, tt.token, clientOf(ca, tt.cert)).ListAgents(ctx, connect.NewRequest(&pb.ListAgentsRequest{}))
			if tt.code == 0 {
				if err != nil {
					t.Fatalf("ListAgents: %v", err)
				}
				return
			}
			if tt.code == handshake {
				// TLS 1.3 checks the client's certificate after the
				// client's side of the handshake: the client sees the
				// alert, or a connection closed under its request.
				if err == nil || connect.CodeOf(err) == connect.CodePermissionDenied || connect.CodeOf(err) == connect.CodeUnauthenticated {
					t.Fatalf("ListAgents = %v; want the handshake refused", err)
				}
				return
			}
			if connect.CodeOf(err) != tt.code || !strings.Contains(err.Error(), tt.contains) {
				t.Fatalf("ListAgents = %v; want %v containing %q", err, tt.code, tt.contains)
			}
		})
	}

	// CertRenew checks its CSR.
	_, err = kclient.NewTLS(url, agentBToken, clientOf(ca, nil)).CertRenew(ctx, connect.NewRequest(&pb.CertRenewRequest{Csr: []byte("not a csr")}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "csr:") {
		t.Errorf("CertRenew(bad csr) = %v; want InvalidArgument naming csr", err)
	}
	// Agent B renews with its own certificate; not with A's.
	certB := certFor(t, url, ca, agentBToken)
	key, _ := pki.NewKey()
	csr, _ := pki.CreateCSR(key, "b")
	if _, err := kclient.NewTLS(url, agentBToken, clientOf(ca, certB)).CertRenew(ctx, connect.NewRequest(&pb.CertRenewRequest{Csr: csr})); err != nil {
		t.Errorf("CertRenew with B's own certificate: %v", err)
	}
	if _, err := kclient.NewTLS(url, agentBToken, clientOf(ca, certA)).CertRenew(ctx, connect.NewRequest(&pb.CertRenewRequest{Csr: csr})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("CertRenew as B with A's certificate = %v; want PermissionDenied", err)
	}
}
