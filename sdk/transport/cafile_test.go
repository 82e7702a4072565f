package transport

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testCA is a CA of the test's own (crypto/x509 only: the package is a
// leaf).
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key}
}

func (ca *testCA) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// serve starts an HTTPS server on 127.0.0.1 with a certificate of ca for
// ips, answering 200.
func (ca *testCA) serve(t *testing.T, ips ...net.IP) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "k"}, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: ips, DNSNames: []string{"localhost"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the test's
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// replace writes b to path by rename, as the agent does.
func replace(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// logBuf is a concurrency-safe log sink.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// eventually polls cond every 50 ms for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10 s: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCAFile_FollowsFile: a client of a CAFile's configuration verifies
// new connections against the file's bundle of the moment (a bundle
// renamed into place applies within CAFileCheckInterval); a file that
// stops parsing keeps the last good bundle and is logged once; the
// address dialled is verified (a certificate for another IP is refused),
// over HTTP/1.1 and HTTP/2 clients alike.
func TestCAFile_FollowsFile(t *testing.T) {
	oldCA, newCA := newTestCA(t, "old"), newTestCA(t, "new")
	url := newCA.serve(t, net.IPv4(127, 0, 0, 1))
	path := filepath.Join(t.TempDir(), "ca.crt")
	replace(t, path, oldCA.pem())
	var logs logBuf
	f, err := OpenCAFile(path, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	conf := f.TLSConfig()
	get := func(c *http.Client) error {
		CloseIdleConnections(conf)
		c.CloseIdleConnections()
		res, err := c.Get(url)
		if err == nil {
			res.Body.Close()
		}
		return err
	}
	h1, h2 := HTTPClientTLS(conf), H2CClientTLS(conf)
	for _, c := range []*http.Client{h1, h2} {
		if err := get(c); err == nil || !strings.Contains(err.Error(), "x509") {
			t.Fatalf("with the old CA in the file: %v, want an x509 error", err)
		}
	}

	replace(t, path, append(newCA.pem(), oldCA.pem()...))
	eventually(t, "a call verified against the bundle renamed into the file", func() bool { return get(h1) == nil })
	if err := get(h2); err != nil {
		t.Errorf("HTTP/2 client after the file changed: %v", err)
	}

	replace(t, path, []byte("not PEM"))
	eventually(t, "the unparsable file logged", func() bool { _ = get(h1); return strings.Contains(logs.String(), "keeping the last good bundle") })
	for i := 0; i < 3; i++ {
		if err := get(h1); err != nil {
			t.Fatalf("with an unparsable file, the last good bundle: %v", err)
		}
	}
	time.Sleep(CAFileCheckInterval + 100*time.Millisecond) // another look at the same bad file
	_ = get(h1)
	if n := strings.Count(logs.String(), "keeping the last good bundle"); n != 1 {
		t.Errorf("the unparsable file logged %d times, want once:\n%s", n, logs.String())
	}

	// The IP dialled is verified: a certificate of the trusted CA for
	// another address is refused.
	other := newCA.serve(t, net.IPv4(127, 0, 0, 2))
	if res, err := h1.Get(other); err == nil || !strings.Contains(err.Error(), "127.0.0.1") {
		if err == nil {
			res.Body.Close()
		}
		t.Errorf("a certificate for 127.0.0.2 at 127.0.0.1: %v, want a name error", err)
	}

	// Outside the package's transports: VerifyConnection needs a name.
	plain := &http.Client{Transport: &http.Transport{TLSClientConfig: conf.Clone()}}
	if res, err := plain.Get(url); err == nil || !strings.Contains(err.Error(), "no server name") {
		if err == nil {
			res.Body.Close()
		}
		t.Errorf("an IP endpoint through another transport: %v, want a refusal", err)
	}
	named := conf.Clone()
	named.ServerName = "localhost"
	plain = &http.Client{Transport: &http.Transport{TLSClientConfig: named}}
	if res, err := plain.Get(url); err != nil {
		t.Errorf("with ServerName localhost through another transport: %v", err)
	} else {
		res.Body.Close()
	}
	replace(t, path, oldCA.pem())
	eventually(t, "the old CA alone refused again", func() bool {
		res, err := plain.Get(url)
		if err == nil {
			res.Body.Close()
			plain.CloseIdleConnections()
		}
		return err != nil
	})
}

// TestOpenCAFile_Errors: a missing or unparsable file is an error naming
// it.
func TestOpenCAFile_Errors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.crt")
	if err := os.WriteFile(bad, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "missing"), bad} {
		if _, err := OpenCAFile(p, nil); err == nil || !strings.Contains(err.Error(), filepath.Base(p)) {
			t.Errorf("OpenCAFile(%s): %v, want an error naming it", p, err)
		}
	}
}
