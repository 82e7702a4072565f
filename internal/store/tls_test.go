package store

import (
	"bytes"
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dcos-kernel/dcos/internal/pki"
)

func startTLSEmbedded(t *testing.T, validity time.Duration) (*Embedded, *pki.CA, string) {
	t.Helper()
	ca, err := pki.NewCA("test cluster CA", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certDir := filepath.Join(dir, "pki", "etcd")
	e, err := StartEmbedded(EmbeddedConfig{Dir: dir, MinFree: -1, TLS: &EmbeddedTLS{CA: ca, Dir: certDir, Validity: validity}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e, ca, certDir
}

// tlsGet dials endpoints with conf (nil: plain) and reads a key.
func tlsGet(t *testing.T, endpoints []string, conf *tls.Config) error {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: conf, DialTimeout: 2 * time.Second})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = cli.Get(ctx, "k")
	return err
}

func clientCert(t *testing.T, ca *pki.CA) *tls.Certificate {
	t.Helper()
	kp, _, _, err := ca.Issue(pki.Leaf{CommonName: "c", Identity: pki.KernelIdentity("c"), Client: true, Validity: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &kp
}

// TestEmbedded_TLS: the embedded etcd's client URL refuses a plain
// client, a TLS client without a certificate and one with a foreign CA's
// certificate; a client with a cluster-CA certificate reads and writes.
// The kernel's in-process client is unaffected.
func TestEmbedded_TLS(t *testing.T) {
	e, ca, certDir := startTLSEmbedded(t, time.Hour)
	urls := e.ClientURLs()
	if len(urls) != 1 || !strings.HasPrefix(urls[0], "https://127.0.0.1:") {
		t.Fatalf("ClientURLs %v, want one https://127.0.0.1:PORT", urls)
	}
	if p := e.PeerURLs(); len(p) != 1 || !strings.HasPrefix(p[0], "https://") {
		t.Fatalf("PeerURLs %v, want one https:// URL", p)
	}
	for _, f := range []string{EtcdCertFile, EtcdKeyFile, EtcdCAFile} {
		fi, err := os.Stat(filepath.Join(certDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	if _, err := e.Client().Put(context.Background(), "k", "v"); err != nil {
		t.Fatalf("in-process client: %v", err)
	}
	foreign, err := pki.NewCA("foreign CA", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	bundle := pki.Bundle{ca.Cert}
	plainURL := "http://" + strings.TrimPrefix(urls[0], "https://")
	cases := []struct {
		name      string
		endpoints []string
		conf      *tls.Config
		ok        bool
	}{
		{"plain", []string{plainURL}, nil, false},
		{"no client certificate", urls, pki.NewReloader(nil, bundle).ClientConfig(""), false},
		{"foreign CA certificate", urls, pki.NewReloader(clientCert(t, foreign), bundle).ClientConfig(""), false},
		{"cluster CA certificate", urls, pki.NewReloader(clientCert(t, ca), bundle).ClientConfig(""), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tlsGet(t, tc.endpoints, tc.conf)
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatal("served, want refused")
			}
		})
	}
}

// TestEmbedded_TLSRenewal: the member's certificate is rewritten when
// two thirds of its lifetime have passed, and new connections get the
// new one.
func TestEmbedded_TLSRenewal(t *testing.T) {
	e, ca, certDir := startTLSEmbedded(t, 3*time.Second)
	path := filepath.Join(certDir, EtcdCertFile)
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var now []byte
	for {
		if now, err = os.ReadFile(path); err == nil && !bytes.Equal(now, first) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the member's certificate was not renewed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var served []byte
	conf := pki.NewReloader(clientCert(t, ca), pki.Bundle{ca.Cert}).ClientConfig("")
	conf.ClientSessionCache = nil
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		served = pki.EncodeCert(cs.PeerCertificates[0].Raw)
		return nil
	}
	if err := tlsGet(t, e.ClientURLs(), conf); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(served, first) {
		t.Error("a new connection still got the first certificate")
	}
}
