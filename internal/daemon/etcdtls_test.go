package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/pki"
	"github.com/dcos-kernel/dcos/internal/seal"
	"github.com/dcos-kernel/dcos/internal/store"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// dcosd runs dcosd with args to its end and returns its exit code, stdout
// and stderr.
func dcosd(args ...string) (int, string, string) {
	var out, errb syncBuffer
	code := Run(context.Background(), append([]string{"dcosd"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// TestCACommands: ca init makes the KEK and the CA and refuses to replace
// them; ca issue writes an etcd member's files, which verify against the
// CA as server and client; ca show lists the CA.
func TestCACommands(t *testing.T) {
	d := filepath.Join(t.TempDir(), "admin")
	code, out, errs := dcosd("ca", "init", "--data-dir", d)
	if code != 0 || !strings.Contains(out, "CA fingerprint: sha256:") {
		t.Fatalf("ca init: %d\n%s%s", code, out, errs)
	}
	if fi, err := os.Stat(filepath.Join(d, "kek")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kek: %v %v, want mode 0600", fi, err)
	}
	if code, _, errs := dcosd("ca", "init", "--data-dir", d); code == 0 || !strings.Contains(errs, "already holds a CA") {
		t.Fatalf("second ca init: %d %s, want a refusal", code, errs)
	}
	outDir := filepath.Join(t.TempDir(), "certs")
	if code, out, errs := dcosd("ca", "issue", "--data-dir", d, "--name", "etcd-1", "--dns", "etcd-1", "--dns", "127.0.0.1", "--ip", "10.0.0.1", "--peer", "--out", outDir, "--validity", "2h"); code != 0 {
		t.Fatalf("ca issue: %d\n%s%s", code, out, errs)
	}
	for _, f := range []string{"etcd-1.crt", "etcd-1.key", "ca.crt"} {
		if fi, err := os.Stat(filepath.Join(outDir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want mode 0600", f, fi, err)
		}
	}
	certPEM, _ := os.ReadFile(filepath.Join(outDir, "etcd-1.crt"))
	caPEM, _ := os.ReadFile(filepath.Join(outDir, "ca.crt"))
	keyPEM, _ := os.ReadFile(filepath.Join(outDir, "etcd-1.key"))
	if _, err := pki.KeyPair(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	certs, err := pki.ParseCerts(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := pki.ParseBundle(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		for _, host := range []string{"etcd-1", "127.0.0.1", "10.0.0.1"} {
			if _, err := certs[0].Verify(x509.VerifyOptions{Roots: bundle.Pool(), DNSName: host, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("verify for %s, usage %v: %v", host, usage, err)
			}
		}
	}
	if role, name, ok := pki.IdentityOf(certs[0]); !ok || role != pki.RoleEtcd || name != "etcd-1" {
		t.Errorf("identity %q %q %v, want etcd etcd-1", role, name, ok)
	}
	if got := certs[0].NotAfter.Sub(certs[0].NotBefore); got > 2*time.Hour+pki.ClockSkew {
		t.Errorf("lifetime %v, want --validity 2h", got)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--name", "x", "--out", outDir}, "--server, --client or --peer"},
		{[]string{"--name", "x", "--server", "--out", outDir}, "--dns or --ip"},
		{[]string{"--name", "x", "--client", "--ip", "nope", "--out", outDir}, `--ip "nope"`},
		{[]string{"--name", "../x", "--client", "--out", outDir}, "--name"},
		{[]string{"--name", "x", "--client", "--validity", "-1h", "--out", outDir}, "--validity"},
	} {
		code, _, errs := dcosd(append([]string{"ca", "issue", "--data-dir", d}, bad.args...)...)
		if code == 0 || !strings.Contains(errs, bad.want) {
			t.Errorf("ca issue %q: %d %q, want an error naming %s", bad.args, code, errs, bad.want)
		}
	}
	code, out, errs = dcosd("ca", "show", "--data-dir", d, "-o", "json")
	var rows []caShowRow
	if code != 0 || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 || !rows[0].Active || rows[0].Fingerprint != "sha256:"+pki.Fingerprint(bundle[0]) {
		t.Fatalf("ca show -o json: %d %s %s", code, out, errs)
	}
}

// runKernel runs dcosd kernel with args until it prints that it listens,
// then stops it; it fails the test if the kernel exits first.
func runKernel(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, append([]string{"dcosd", "kernel", "--listen", "127.0.0.1:0", "--wasm-cache-dir", ""}, args...), &out, &errb)
	}()
	defer func() {
		cancel()
		<-done
	}()
	deadline := time.After(60 * time.Second)
	for !strings.Contains(out.String(), "dcos kernel: listening at") {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("kernel exited %d:\n%s%s", code, out.String(), errb.String())
		case <-deadline:
			t.Fatalf("kernel not listening after 60s:\n%s%s", out.String(), errb.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// copyCA copies an admin dir's kek and pki to a kernel's data dir, as
// docs/operations.md says to.
func copyCA(t *testing.T, admin, dataDir string) {
	t.Helper()
	for _, f := range []string{"kek", filepath.Join("pki", pki.BundleFile), filepath.Join("pki", pki.SealedKeyFile)} {
		b, err := os.ReadFile(filepath.Join(admin, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dataDir, f)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dataDir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKernel_ExternalEtcdTLS: a kernel reaches an etcd that requires
// client certificates of the cluster CA, with a certificate it issues
// itself from the CA in its data dir, or with --etcd-cert/--etcd-key;
// without either it refuses to start with an error naming the flags.
func TestKernel_ExternalEtcdTLS(t *testing.T) {
	admin := filepath.Join(t.TempDir(), "admin")
	if code, out, errs := dcosd("ca", "init", "--data-dir", admin); code != 0 {
		t.Fatalf("ca init: %s%s", out, errs)
	}
	kr, err := seal.LoadKeyring(filepath.Join(admin, "kek"))
	if err != nil {
		t.Fatal(err)
	}
	ca, bundle, err := pki.LoadLocal(filepath.Join(admin, "pki"), kr)
	if err != nil {
		t.Fatal(err)
	}
	etcdDir := t.TempDir()
	e, err := store.StartEmbedded(store.EmbeddedConfig{Dir: etcdDir, MinFree: -1, TLS: &store.EmbeddedTLS{CA: ca, Bundle: bundle, Dir: filepath.Join(etcdDir, "tls")}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ep := e.ClientURLs()[0]

	t.Run("self-issued", func(t *testing.T) {
		k := t.TempDir()
		copyCA(t, admin, k)
		runKernel(t, "--data-dir", k, "--etcd-endpoints", ep)
	})
	t.Run("--etcd-cert", func(t *testing.T) {
		certs := t.TempDir()
		if code, out, errs := dcosd("ca", "issue", "--data-dir", admin, "--name", "kernel-x", "--client", "--out", certs); code != 0 {
			t.Fatalf("ca issue: %s%s", out, errs)
		}
		k := t.TempDir()
		copyCA(t, admin, k) // every kernel of a cluster holds its KEK (the CA in the store is sealed under it)
		runKernel(t, "--data-dir", k, "--etcd-endpoints", ep,
			"--etcd-cert", filepath.Join(certs, "kernel-x.crt"), "--etcd-key", filepath.Join(certs, "kernel-x.key"), "--etcd-cacert", filepath.Join(certs, "ca.crt"))
	})
	for _, bad := range []struct {
		name string
		args []string
		want string
	}{
		{"no certificate", []string{"--etcd-endpoints", ep}, "no client certificate: give --etcd-cert/--etcd-key or a --pki-dir holding the cluster CA"},
		{"cert without key", []string{"--etcd-endpoints", ep, "--etcd-cert", "x.crt"}, "--etcd-cert and --etcd-key go together"},
		{"http with a cert", []string{"--etcd-endpoints", "http://127.0.0.1:1", "--etcd-cert", "x.crt", "--etcd-key", "x.key"}, "--etcd-cert: the --etcd-endpoints are http://"},
		{"mixed schemes", []string{"--etcd-endpoints", ep + ",http://127.0.0.1:1"}, "some are https:// and some not"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			code, out, errs := dcosd(append([]string{"kernel", "--listen", "127.0.0.1:0", "--wasm-cache-dir", "", "--data-dir", t.TempDir()}, bad.args...)...)
			if code == 0 || !strings.Contains(errs, bad.want) {
				t.Fatalf("exit %d, stderr %q (stdout %q); want an error containing %q", code, errs, out, bad.want)
			}
		})
	}
}

// TestRenewEtcdCert: the kernel's own etcd client certificate is
// reissued once two thirds of its lifetime have passed, and handed to
// the TLS configuration clientv3 uses.
func TestRenewEtcdCert(t *testing.T) {
	ca, err := pki.NewCA("test CA", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	issue := func() (*tls.Certificate, error) {
		kp, _, _, err := ca.Issue(pki.Leaf{CommonName: "kernel k", Identity: pki.KernelIdentity("k"), Client: true, Validity: 3 * time.Second}, time.Now())
		return &kp, err
	}
	first, err := issue()
	if err != nil {
		t.Fatal(err)
	}
	r := pki.NewReloader(first, pki.Bundle{ca.Cert})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { renewEtcdCert(ctx, slog.New(slog.DiscardHandler), r, issue); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(30 * time.Second)
	for r.Certificate().Leaf.Equal(first.Leaf) {
		if time.Now().After(deadline) {
			t.Fatal("the certificate was not renewed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !r.Certificate().Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Errorf("renewed certificate expires %v, not after the first's %v", r.Certificate().Leaf.NotAfter, first.Leaf.NotAfter)
	}
}
