package framework

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	"github.com/dcos-kernel/dcos/internal/pki"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestClient_TLS: a kernel serving TLS is reached with Config.CACert, or
// with the bundle Config.CAFile or $DCOS_CA_FILE names (what the agent
// gives tasks); a
// scheme-less endpoint is https://; without the CA the call fails.
func TestClient_TLS(t *testing.T) {
	ca, err := pki.NewCA("test CA", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var cfg api.Config
	k := kerneltest.Start(t, kerneltest.Options{API: func(c *api.Config) { cfg = *c }})
	kp, _, _, err := ca.Issue(pki.Leaf{CommonName: "k", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true, Validity: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- api.ServeTLSWith(ctx, ln, api.NewHandler(k.Kernel, cfg), slog.New(slog.DiscardHandler), api.DefaultTimeouts(), pki.NewReloader(&kp, pki.Bundle{ca.Cert}).ServerConfig(tls.VerifyClientCertIfGiven))
	}()
	t.Cleanup(func() { cancel(); <-done })
	endpoint := ln.Addr().String() // no scheme: https://

	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	list := func(c Config) error {
		c.Endpoints, c.Token, c.Retry = []string{endpoint}, fwToken, Backoff{Attempts: 1}
		cl, err := New(c)
		if err != nil {
			return err
		}
		_, err = cl.ListAllocations(testCtx(t), &pb.ListAllocationsRequest{})
		return err
	}
	t.Setenv(EnvCAFile, "")
	if err := list(Config{CACert: ca.CertPEM()}); err != nil {
		t.Errorf("with CACert: %v", err)
	}
	if err := list(Config{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without a CA: %v, want a certificate error", err)
	}
	if err := list(Config{CAFile: caFile}); err != nil {
		t.Errorf("with CAFile: %v", err)
	}
	if _, err := New(Config{Endpoints: []string{endpoint}, CAFile: filepath.Join(t.TempDir(), "missing")}); err == nil || !strings.Contains(err.Error(), "CAFile") {
		t.Errorf("a missing CAFile: %v, want an error naming it", err)
	}
	t.Setenv(EnvCAFile, caFile)
	if err := list(Config{}); err != nil {
		t.Errorf("with $%s: %v", EnvCAFile, err)
	}
	t.Setenv(EnvCAFile, filepath.Join(t.TempDir(), "missing"))
	if _, err := New(Config{Endpoints: []string{endpoint}}); err == nil || !strings.Contains(err.Error(), EnvCAFile) {
		t.Errorf("a missing $%s: %v, want an error naming it", EnvCAFile, err)
	}
}
