package framework

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/authority"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	"github.com/dcos-kernel/dcos/internal/pki"
	"github.com/dcos-kernel/dcos/internal/seal"
	"github.com/dcos-kernel/dcos/internal/store"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// rotatingKernel is a real kernel served over TLS with certificates of a
// cluster CA kept by internal/authority in an embedded etcd, as a
// kernel serves them: leaf, then the cross-certificate during a
// rotation's overlap. The authority's clock runs skew ahead of the
// wall clock, so that a test retires the previous CA without waiting
// the overlap out.
type rotatingKernel struct {
	auth *authority.Authority
	addr string
	skew atomic.Int64

	mu     sync.Mutex
	rev    int64
	served *tls.Certificate
}

func startRotatingKernel(t *testing.T) *rotatingKernel {
	t.Helper()
	e, err := store.StartEmbedded(store.EmbeddedConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	kr, err := seal.NewKeyring(seal.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA("test CA", 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rk := &rotatingKernel{}
	rk.auth, err = authority.Open(context.Background(), e.Client(), "/t/", kr, ca, nil, authority.Options{
		Now: func() time.Time { return time.Now().Add(time.Duration(rk.skew.Load())) },
	})
	if err != nil {
		t.Fatal(err)
	}
	var cfg api.Config
	k := kerneltest.Start(t, kerneltest.Options{API: func(c *api.Config) { cfg = *c }})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rk.addr = ln.Addr().String()
	// No session tickets: every connection is a full handshake, as with
	// a kernel the client holds no session of (restarted, or another
	// one); a resumed session would skip the verification under test.
	server := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}, GetCertificate: rk.certificate, SessionTicketsDisabled: true}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- api.ServeTLSWith(ctx, ln, api.NewHandler(k.Kernel, cfg), slog.New(slog.DiscardHandler), api.DefaultTimeouts(), server)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return rk
}

// certificate serves a certificate of the authority's state of the
// moment, issued once per state.
func (rk *rotatingKernel) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	st := rk.auth.State()
	if rk.served == nil || rk.rev != st.Revision {
		c, err := st.Issue(pki.Leaf{CommonName: "k", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true, Validity: time.Hour}, time.Now())
		if err != nil {
			return nil, err
		}
		rk.served, rk.rev = &c, st.Revision
	}
	return rk.served, nil
}

// rotate rotates the CA with the shortest overlap a kernel accepts.
func (rk *rotatingKernel) rotate(t *testing.T) {
	t.Helper()
	if _, err := rk.auth.Rotate(context.Background(), api.MinCAOverlap, 0); err != nil {
		t.Fatal(err)
	}
}

// retire moves the authority's clock past the overlap and retires the
// previous CA.
func (rk *rotatingKernel) retire(t *testing.T) {
	t.Helper()
	rk.skew.Store(int64(api.MinCAOverlap + time.Second))
	if ok, err := rk.auth.RetireDue(context.Background()); err != nil || !ok {
		t.Fatalf("RetireDue: %v %v, want the previous CA retired", ok, err)
	}
	if st := rk.auth.State(); st.Rotating() || len(st.Bundle) != 1 {
		t.Fatalf("after the retirement, a bundle of %d CAs", len(st.Bundle))
	}
}

// writeBundle replaces path with the authority's bundle by rename, as
// the agent rewrites a task's $DCOS_CA_FILE.
func (rk *rotatingKernel) writeBundle(t *testing.T, path string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, rk.auth.State().Bundle.PEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestClient_FollowsCAFileThroughRotation: a client built from
// $DCOS_CA_FILE keeps calling a kernel across a CA rotation and the
// previous CA's retirement, because it verifies each new connection
// against the file the agent rewrote (every call here makes a new
// connection: a kept-alive one would hide the verification);
// a client that read the same file once at start (CACert, what New did
// with $DCOS_CA_FILE before) fails once the previous CA retired.
func TestClient_FollowsCAFileThroughRotation(t *testing.T) {
	rk := startRotatingKernel(t)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	rk.writeBundle(t, caFile)
	t.Setenv(EnvCAFile, caFile)
	ctx := testCtx(t)

	following, err := New(Config{Endpoints: []string{rk.addr}, Token: fwToken})
	if err != nil {
		t.Fatal(err)
	}
	readOnce, err := New(Config{Endpoints: []string{rk.addr}, Token: fwToken, CACert: mustReadFile(t, caFile), Retry: Backoff{Attempts: 2}})
	if err != nil {
		t.Fatal(err)
	}
	call := func(c *Client) error {
		// A new connection for every call: what is checked is the
		// verification of a handshake, not a kept-alive connection.
		c.closeIdle()
		_, err := c.ListAllocations(ctx, &pb.ListAllocationsRequest{})
		return err
	}
	for name, c := range map[string]*Client{"following": following, "read once": readOnce} {
		if err := call(c); err != nil {
			t.Fatalf("%s, before the rotation: %v", name, err)
		}
	}

	rk.rotate(t)
	// During the overlap the kernel's chain carries the cross-certificate:
	// both still verify, the agent rewrites the file.
	for name, c := range map[string]*Client{"following": following, "read once": readOnce} {
		if err := call(c); err != nil {
			t.Fatalf("%s, during the overlap: %v", name, err)
		}
	}
	rk.writeBundle(t, caFile)

	rk.retire(t)
	rk.writeBundle(t, caFile)
	if err := call(following); err != nil {
		t.Errorf("the client following $%s, after the retirement: %v", EnvCAFile, err)
	}
	if err := call(readOnce); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("the client that read the bundle once, after the retirement: %v, want a certificate error", err)
	}
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
