package pki

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func mustCA(t *testing.T, name string) *CA {
	t.Helper()
	ca, err := NewCA(name, 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func serverLeaf(t *testing.T, ca *CA, validity time.Duration) *tls.Certificate {
	t.Helper()
	kp, _, _, err := ca.Issue(Leaf{CommonName: "kernel-1", Identity: KernelIdentity("kernel-1"), IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}, Server: true, Client: true, Validity: validity}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &kp
}

func TestCA_RoundTripAndIdentity(t *testing.T) {
	ca := mustCA(t, "dcos cluster CA")
	back, err := ParseCA(ca.CertPEM(), ca.KeyPEM())
	if err != nil || back.ID() != ca.ID() {
		t.Fatalf("ParseCA: %v", err)
	}
	other := mustCA(t, "other")
	if _, err := ParseCA(ca.CertPEM(), other.KeyPEM()); err == nil {
		t.Error("ParseCA accepted another CA's key")
	}
	key, _ := NewKey()
	csrPEM, _ := CreateCSR(key, "ignored")
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	der, err := ca.Sign(csr.PublicKey, Leaf{CommonName: "agent-node-1", Identity: AgentIdentity("agent-node-1"), Client: true, Validity: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certs, _ := ParseCerts(EncodeCert(der))
	role, name, ok := IdentityOf(certs[0])
	if !ok || role != RoleAgent || name != "agent-node-1" {
		t.Errorf("IdentityOf = %q %q %v", role, name, ok)
	}
	if _, err := certs[0].Verify(x509VerifyClient(Bundle{ca.Cert})); err != nil {
		t.Errorf("the agent certificate does not verify as a client: %v", err)
	}
	if _, err := certs[0].Verify(x509VerifyClient(Bundle{other.Cert})); err == nil {
		t.Error("the agent certificate verifies against a foreign CA")
	}
	if got := RenewAt(certs[0]); got.Before(time.Now().Add(35*time.Minute)) || got.After(time.Now().Add(45*time.Minute)) {
		t.Errorf("RenewAt = %v, want about 40 minutes from now", got)
	}
	if _, err := ParseCSR([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")); err == nil {
		t.Error("ParseCSR accepted garbage")
	}
}

// TestReloader_RotatesWithoutDroppingCalls serves HTTPS with one
// Reloader and calls it with another while the server's certificate is
// renewed and the CA rotated with overlap: no call fails.
func TestReloader_RotatesWithoutDroppingCalls(t *testing.T) {
	ca1 := mustCA(t, "ca-1")
	srvR := NewReloader(serverLeaf(t, ca1, time.Hour), Bundle{ca1.Cert})
	cliR := NewReloader(nil, Bundle{ca1.Cert})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	srv.TLS = srvR.ServerConfig(tls.VerifyClientCertIfGiven)
	srv.StartTLS()
	defer srv.Close()
	tr := &http.Transport{TLSClientConfig: cliR.ClientConfig(""), ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	var calls, failed atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			res, err := client.Get(srv.URL)
			calls.Add(1)
			if err != nil {
				failed.Add(1)
				t.Log(err)
				continue
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			tr.CloseIdleConnections() // new handshakes, to meet each rotation step
		}
	}()
	step := func() { time.Sleep(50 * time.Millisecond) }
	step()
	srvR.Set(serverLeaf(t, ca1, time.Hour), nil) // renewal
	step()
	ca2 := mustCA(t, "ca-2")
	overlap := Bundle{ca1.Cert, ca2.Cert}
	srvR.Set(nil, overlap) // 1: everyone trusts both
	cliR.Set(nil, overlap)
	step()
	srvR.Set(serverLeaf(t, ca2, time.Hour), nil) // 2: issue from the new CA
	step()
	srvR.Set(nil, Bundle{ca2.Cert}) // 3: retire the old CA
	cliR.Set(nil, Bundle{ca2.Cert})
	step()
	cancel()
	<-done
	if calls.Load() < 5 || failed.Load() != 0 {
		t.Fatalf("%d of %d calls failed", failed.Load(), calls.Load())
	}

	// A client that trusts only the retired CA is refused, with a hint.
	stale := &http.Client{Transport: &http.Transport{TLSClientConfig: NewReloader(nil, Bundle{ca1.Cert}).ClientConfig("")}}
	if _, err := stale.Get(srv.URL); err == nil || !strings.Contains(err.Error(), "not trusted") {
		t.Errorf("a client of the retired CA: %v", err)
	}
	// A client certificate of a foreign CA is refused by the server.
	foreign := mustCA(t, "foreign")
	fr := NewReloader(serverLeaf(t, foreign, time.Hour), Bundle{ca2.Cert})
	fc := &http.Client{Transport: &http.Transport{TLSClientConfig: fr.ClientConfig("")}}
	if res, err := fc.Get(srv.URL); err == nil {
		res.Body.Close()
		t.Error("a client certificate of a foreign CA was accepted")
	}
}
