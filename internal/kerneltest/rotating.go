package kerneltest

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/authority"
	"github.com/dcos-kernel/dcos/internal/pki"
	"github.com/dcos-kernel/dcos/internal/seal"
	"github.com/dcos-kernel/dcos/internal/store"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Rotating is a real kernel served over TLS at Addr with certificates of
// a cluster CA kept by internal/authority (Auth) in an embedded etcd, as
// a kernel serves them (leaf, then the cross-certificate during an
// overlap), answering ClusterInfo's bundle from it. The authority's
// clock can be moved past a rotation's overlap (Retire), so that a test
// retires the previous CA without waiting the overlap out. Every
// connection is a full handshake (no session tickets): a resumed session
// would skip the verification a test checks.
type Rotating struct {
	Auth *authority.Authority
	Addr string // host:port
	skew atomic.Int64

	mu     sync.Mutex
	rev    int64
	served *tls.Certificate
}

// StartRotating starts a Rotating kernel until t ends; with, if not nil,
// adjusts its API configuration (e.g. Certs, for CARotate).
func StartRotating(t testing.TB, with func(*api.Config, *Rotating)) *Rotating {
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
	rk := &Rotating{}
	rk.Auth, err = authority.Open(context.Background(), e.Client(), "/t/", kr, ca, nil, authority.Options{
		Now: func() time.Time { return time.Now().Add(time.Duration(rk.skew.Load())) },
	})
	if err != nil {
		t.Fatal(err)
	}
	var cfg api.Config
	k := Start(t, Options{API: func(c *api.Config) {
		c.Cluster = func(context.Context) (*pb.ClusterInfoResponse, error) {
			st := rk.Auth.State()
			return &pb.ClusterInfoResponse{CaBundle: st.Bundle.PEM(), CaBundleFingerprint: st.Fingerprint()}, nil
		}
		if with != nil {
			with(c, rk)
		}
		cfg = *c
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rk.Addr = ln.Addr().String()
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
func (rk *Rotating) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	rk.mu.Lock()
	defer rk.mu.Unlock()
	st := rk.Auth.State()
	if rk.served == nil || rk.rev != st.Revision {
		c, err := st.Issue(pki.Leaf{CommonName: "k", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true, Validity: time.Hour}, time.Now())
		if err != nil {
			return nil, err
		}
		rk.served, rk.rev = &c, st.Revision
	}
	return rk.served, nil
}

// Retire moves the authority's clock past the shortest overlap a kernel
// accepts (api.MinCAOverlap) and retires the previous CA, failing t
// unless the bundle then holds the new CA alone.
func (rk *Rotating) Retire(t testing.TB) {
	t.Helper()
	rk.skew.Store(int64(api.MinCAOverlap + time.Second))
	if ok, err := rk.Auth.RetireDue(context.Background()); err != nil || !ok {
		t.Fatalf("RetireDue: %v %v, want the previous CA retired", ok, err)
	}
	if st := rk.Auth.State(); st.Rotating() || len(st.Bundle) != 1 {
		t.Fatalf("after the retirement, a bundle of %d CAs", len(st.Bundle))
	}
}
