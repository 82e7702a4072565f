package daemon

import (
	"context"
	"net"
	"os"
	"path/filepath"
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

// testKernelTLS returns a kernelTLS with a new CA, certificates valid
// validity, serving ln's address.
func testKernelTLS(t *testing.T, ln net.Listener, validity time.Duration) *kernelTLS {
	t.Helper()
	ca, err := pki.NewCA("test CA", 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kt := &kernelTLS{ca: ca, bundle: pki.Bundle{ca.Cert}, validity: validity, log: discard,
		leaf: servingLeaf("https://"+ln.Addr().String(), ln.Addr(), validity)}
	kt.reloader = pki.NewReloader(nil, kt.bundle)
	if err := kt.renew(time.Now()); err != nil {
		t.Fatal(err)
	}
	return kt
}

// TestKernelTLS_ServingCertificate: the kernel's certificate names the
// advertised host, loopback and localhost, carries its identity, chains
// to the CA it serves, and is renewed by run before it expires.
func TestKernelTLS_ServingCertificate(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	kt := testKernelTLS(t, ln, 3*time.Second)
	c := kt.reloader.Certificate()
	if len(c.Certificate) != 2 {
		t.Fatalf("chain of %d certificates, want leaf and CA", len(c.Certificate))
	}
	for _, name := range []string{"127.0.0.1", "::1", "localhost"} {
		if err := c.Leaf.VerifyHostname(name); err != nil {
			t.Errorf("serving certificate: %v", err)
		}
	}
	if role, name, ok := pki.IdentityOf(c.Leaf); !ok || role != pki.RoleKernel || name != "127.0.0.1" {
		t.Errorf("identity %s %s %v, want kernel 127.0.0.1", role, name, ok)
	}
	first := c.Leaf.SerialNumber
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- kt.run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(20 * time.Second)
	for kt.reloader.Certificate().Leaf.SerialNumber.Cmp(first) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the serving certificate was not renewed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !kt.reloader.NotAfter().After(c.Leaf.NotAfter) {
		t.Errorf("renewed certificate expires %v, not after the old one's %v", kt.reloader.NotAfter(), c.Leaf.NotAfter)
	}
}

// TestAgentToken_Certificates: over TLS, an agent joining with a join
// token gets its certificate with its token (AgentJoin's csr), saved
// 0600 and bound to its principal, and its calls present it; an agent
// with an ordinary token gets one by CertRenew; a restart reuses the
// saved one.
func TestAgentToken_Certificates(t *testing.T) {
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
	var cfg api.Config
	srv := kerneltest.Start(t, kerneltest.Options{API: func(c *api.Config) { *c = toks.config(*c); c.Certs = kt; cfg = *c }})
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- api.ServeTLSWith(sctx, ln, api.NewHandler(srv.Kernel, cfg), discard, api.DefaultTimeouts(), kt.serverConfig())
	}()
	defer func() { cancel(); <-done }()
	url := "https://" + ln.Addr().String()

	join, _, err := toks.store.Create(ctx, kernel.RoleAgentJoin, "joiner", 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for _, ok := toks.registry.Lookup(join); !ok; _, ok = toks.registry.Lookup(join) {
		if time.Now().After(deadline) {
			t.Fatal("join token not seen within 1s")
		}
		time.Sleep(10 * time.Millisecond)
	}

	dir := t.TempDir()
	ac, err := newAgentCert(dir, kt.bundle, discard)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := agentToken(ctx, discard, url, join, dir, "node-1", ac)
	if err != nil {
		t.Fatal(err)
	}
	if !ac.has() {
		t.Fatal("the join gave no certificate")
	}
	if role, name, _ := pki.IdentityOf(ac.r.Certificate().Leaf); role != "agent" || name != "agent-node-1" {
		t.Errorf("joined agent's certificate is %s %s, want agent agent-node-1", role, name)
	}
	for _, f := range []string{agentCertFile, agentKeyFile, agentCAFile} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", f, fi, err)
		}
	}
	register := func(ac *agentCert, token, host string) error {
		_, err := kclient.NewTLS(url, token, ac.conf).RegisterAgent(ctx, connect.NewRequest(&pb.RegisterAgentRequest{
			Hostname: host, Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 30}}))
		return err
	}
	if err := register(ac, tok, "node-1"); err != nil {
		t.Errorf("RegisterAgent with the joined token and certificate: %v", err)
	}
	// Restarted: the saved certificate is loaded.
	again, err := newAgentCert(dir, kt.bundle, discard)
	if err != nil || !again.has() || !again.r.Certificate().Leaf.Equal(ac.r.Certificate().Leaf) {
		t.Errorf("restart: certificate not reloaded (%v)", err)
	}

	// An ordinary agent token: no join; CertRenew gives the certificate.
	dir2 := t.TempDir()
	ac2, err := newAgentCert(dir2, kt.bundle, discard)
	if err != nil {
		t.Fatal(err)
	}
	got, err := agentToken(ctx, discard, url, kerneltest.AgentToken, dir2, "node-2", ac2)
	if err != nil || got != kerneltest.AgentToken {
		t.Fatalf("agentToken(agent token) = %q, %v", got, err)
	}
	if err := register(ac2, got, "node-2"); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("RegisterAgent before the certificate = %v, want Unauthenticated", err)
	}
	if err := ac2.ensure(ctx, url, got); err != nil {
		t.Fatal(err)
	}
	if role, name, _ := pki.IdentityOf(ac2.r.Certificate().Leaf); role != "agent" || name != "agents" {
		t.Errorf("certificate of %s %s, want agent agents", role, name)
	}
	if err := register(ac2, got, "node-2"); err != nil {
		t.Errorf("RegisterAgent with the renewed certificate: %v", err)
	}
	// Another agent's certificate with this token is refused.
	if err := register(ac, got, "node-2"); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("RegisterAgent with another agent's certificate = %v, want PermissionDenied", err)
	}
}

// TestServingLeaf_Names: a kernel listening on every address names every
// interface address; one on a single address names it and the
// advertised host.
func TestServingLeaf_Names(t *testing.T) {
	all := servingLeaf("https://kernel-1.example:7070", &net.TCPAddr{IP: net.IPv4zero, Port: 7070}, time.Hour)
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		found := false
		for _, ip := range all.IPs {
			found = found || ip.Equal(ipn.IP)
		}
		if !found {
			t.Errorf("listening on every address: %s not among %v", ipn.IP, all.IPs)
		}
	}
	one := servingLeaf("https://kernel-1.example:7070", &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 7070}, time.Hour)
	hasIP := false
	for _, ip := range one.IPs {
		hasIP = hasIP || ip.Equal(net.IPv4(10, 1, 2, 3))
	}
	hasName := false
	for _, n := range one.DNSNames {
		hasName = hasName || n == "kernel-1.example"
	}
	if !hasIP || !hasName {
		t.Errorf("names %v %v; want 10.1.2.3 and kernel-1.example", one.IPs, one.DNSNames)
	}
	if role, name := one.Identity.Host, one.Identity.Path; role != "kernel" || name != "/kernel-1.example" {
		t.Errorf("identity %v, want dcos://kernel/kernel-1.example", one.Identity)
	}
}

// TestAdvertiseURL: the URL other kernels and clients are sent to is an
// https:// one; a plain http:// one is refused with the https:// URL to
// use, since the API answers plain HTTP only with a 400.
func TestAdvertiseURL(t *testing.T) {
	ln := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7070}
	for _, tc := range []struct{ flag, want, err string }{
		{"", "https://127.0.0.1:7070", ""},
		{"https://k1.example:7070", "https://k1.example:7070", ""},
		{"https://k1.example:7070/", "https://k1.example:7070", ""},
		{"http://k1.example:7070", "", "serves TLS only; use https://k1.example:7070"},
		{"k1.example:7070", "", "want https://HOST:PORT"},
		{"ftp://k1", "", "want https://HOST:PORT"},
	} {
		got, err := advertiseURL(tc.flag, ln)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("advertiseURL(%q) = %q, %v; want an error saying %q", tc.flag, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("advertiseURL(%q) = %q, %v; want %q", tc.flag, got, err, tc.want)
		}
	}
}
