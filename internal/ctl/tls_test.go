package ctl

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/pki"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// serveTLS starts k over TLS, as a kernel serves (HTTP/2 and HTTP/1.1,
// a certificate of a new CA, the chain leaf then CA), and returns its
// URL, the CA's bundle file and the CA.
func (k *fakeKernel) serveTLS(t *testing.T) (url, caFile string, ca *pki.CA) {
	t.Helper()
	ca, err := pki.NewCA("test CA", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kp, _, _, err := ca.Issue(pki.Leaf{CommonName: "k", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true, Validity: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kp.Certificate = append(kp.Certificate, ca.Cert.Raw)
	mux := http.NewServeMux()
	mux.Handle(syscallsv1connect.NewKernelHandler(k))
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{kp}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return srv.URL, caFile, ca
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
