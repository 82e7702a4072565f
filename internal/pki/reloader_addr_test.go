package pki

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/sdk/transport"
)

// TestReloader_ClientChecksTheAddress: a client of ClientConfig("") on
// sdk/transport's clients refuses a server whose certificate, though of
// the cluster CA, is for another IP address than the one dialled, and
// accepts one for that address, also after the bundle changed. (Verified
// in VerifyConnection only, the address went unchecked: crypto/tls does
// not tell VerifyConnection an IP address dialled.)
func TestReloader_ClientChecksTheAddress(t *testing.T) {
	ca := mustCA(t, "ca-1")
	serve := func(ips ...net.IP) *httptest.Server {
		kp, _, _, err := ca.Issue(Leaf{CommonName: "kernel-x", Identity: KernelIdentity("kernel-x"), IPs: ips, Server: true, Validity: time.Hour}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
		srv.TLS = NewReloader(&kp, Bundle{ca.Cert}).ServerConfig(tls.VerifyClientCertIfGiven)
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv
	}
	other := serve(net.IPv4(10, 9, 9, 9))
	right := serve(net.IPv4(127, 0, 0, 1))
	cli := NewReloader(nil, Bundle{ca.Cert})
	get := func(u string) error {
		tr := &http.Transport{}
		transport.SetTLS(tr, cli.ClientConfig(""))
		defer tr.CloseIdleConnections()
		res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(u)
		if err != nil {
			return err
		}
		res.Body.Close()
		return nil
	}
	if err := get(other.URL); err == nil || !strings.Contains(err.Error(), "10.9.9.9") {
		t.Errorf("a certificate for 10.9.9.9 at %s: %v, want refused for the address", other.URL, err)
	}
	if err := get(right.URL); err != nil {
		t.Errorf("a certificate for 127.0.0.1: %v", err)
	}
	// The bundle of the moment is the one used: without the CA, refused.
	cli.Set(nil, Bundle{mustCA(t, "ca-2").Cert})
	if err := get(right.URL); err == nil {
		t.Error("a server of a CA no longer in the bundle was accepted")
	}
	cli.Set(nil, Bundle{ca.Cert})
	if err := get(right.URL); err != nil {
		t.Errorf("the CA back in the bundle: %v", err)
	}
}
