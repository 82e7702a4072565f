package authority

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/pki"
	"github.com/dcos-kernel/dcos/internal/seal"
	"github.com/dcos-kernel/dcos/internal/store"
)

func TestAuthority_BootstrapFollowRotateRetire(t *testing.T) {
	e, err := store.StartEmbedded(store.EmbeddedConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kr, _ := seal.NewKeyring(seal.GenerateKey())
	caA, _ := pki.NewCA("a", time.Hour, time.Now())
	caB, _ := pki.NewCA("b", time.Hour, time.Now())
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }

	a, err := Open(ctx, e.Client(), "/t/", kr, caA, nil, Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	dirB := filepath.Join(t.TempDir(), "pki")
	b, err := Open(ctx, e.Client(), "/t", kr, caB, nil, Options{LocalDir: dirB, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if b.State().Active.ID() != caA.ID() {
		t.Fatal("the second kernel's CA replaced the cluster's")
	}
	if got, _, err := pki.LoadLocal(dirB, kr); err != nil || got.ID() != caA.ID() {
		t.Fatalf("the joining kernel's CA directory was not rewritten with the cluster's CA: %v", err)
	}
	foreign, _ := seal.NewKeyring(seal.GenerateKey())
	if _, err := Open(ctx, e.Client(), "/t/", foreign, nil, nil, Options{}); err == nil || !strings.Contains(err.Error(), "--kek-file") {
		t.Errorf("a kernel with another KEK opened the CA: %v", err)
	}
	go b.Follow(ctx)

	// A leaf the old CA issued before the rotation.
	oldLeaf, err := a.State().Issue(pki.Leaf{CommonName: "k", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true, Validity: time.Hour}, now())
	if err != nil {
		t.Fatal(err)
	}
	changed := b.Changed()
	s, err := a.Rotate(ctx, time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("the following kernel did not see the rotation")
	}
	got := b.State()
	if got.Active.ID() != s.Active.ID() || len(got.Bundle) != 2 || !got.Rotating() || got.Fingerprint() != s.Fingerprint() {
		t.Fatalf("follower state after rotation: active %s bundle %d rotating %v", got.Active.ID(), len(got.Bundle), got.Rotating())
	}
	// A leaf of the new CA verifies for a peer that trusts only the old
	// CA (through the cross-certificate in its chain) and for one that
	// trusts the new bundle; the old leaf still verifies with the bundle.
	newLeaf, err := got.Issue(pki.Leaf{CommonName: "k", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true, Validity: time.Hour}, now())
	if err != nil {
		t.Fatal(err)
	}
	verify := func(leafChain [][]byte, roots pki.Bundle) error {
		leaf, _ := x509.ParseCertificate(leafChain[0])
		inter := x509.NewCertPool()
		for _, c := range leafChain[1:] {
			ic, _ := x509.ParseCertificate(c)
			inter.AddCert(ic)
		}
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots.Pool(), Intermediates: inter, CurrentTime: now()})
		return err
	}
	if err := verify(newLeaf.Certificate, pki.Bundle{caA.Cert}); err != nil {
		t.Errorf("new leaf for an old-CA peer: %v", err)
	}
	if err := verify(newLeaf.Certificate, got.Bundle); err != nil {
		t.Errorf("new leaf for a new-bundle peer: %v", err)
	}
	if err := verify(oldLeaf.Certificate, got.Bundle); err != nil {
		t.Errorf("old leaf during the overlap: %v", err)
	}
	if _, err := a.Rotate(ctx, time.Hour, 0); !errors.Is(err, ErrRotating) {
		t.Errorf("a second rotation during the overlap: %v", err)
	}
	if done, err := a.RetireDue(ctx); done || err != nil {
		t.Errorf("RetireDue before the overlap ended = %v, %v", done, err)
	}
	clock.Add(int64(time.Hour + time.Second))
	changed = b.Changed()
	if done, err := a.RetireDue(ctx); !done || err != nil {
		t.Fatalf("RetireDue after the overlap = %v, %v", done, err)
	}
	<-changed
	got = b.State()
	if len(got.Bundle) != 1 || got.Rotating() || !got.Bundle[0].Equal(s.Active.Cert) {
		t.Fatalf("after retirement: bundle %d rotating %v", len(got.Bundle), got.Rotating())
	}
	if err := verify(oldLeaf.Certificate, got.Bundle); err == nil {
		t.Error("a leaf of the retired CA still verifies")
	}
	if local, _, err := pki.LoadLocal(dirB, kr); err != nil || local.ID() != s.Active.ID() {
		t.Errorf("the follower's CA directory did not follow the rotation: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dirB, pki.BundleFile)); err != nil {
		t.Error(err)
	}
}

func FuzzDecode(f *testing.F) {
	kr, _ := seal.NewKeyring(seal.GenerateKey())
	ca, _ := pki.NewCA("f", time.Hour, time.Now())
	b, _ := encode(&State{Active: ca, Bundle: pki.Bundle{ca.Cert}}, kr)
	f.Add(b)
	f.Add([]byte(`{"version":1,"cert":"x","key":"eA==","bundle":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decode(b, kr)
		if err == nil && (s.Active == nil || len(s.Bundle) == 0 || !s.Bundle[0].Equal(s.Active.Cert)) {
			t.Fatal("decoded an inconsistent state")
		}
	})
}
