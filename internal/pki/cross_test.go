package pki

import (
	"crypto/x509"
	"testing"
	"time"
)

// TestCrossSign: a leaf of the new CA, served with the cross-certificate,
// verifies for a peer that trusts only the old CA and for one that
// trusts only the new; without it, not for the old.
func TestCrossSign(t *testing.T) {
	old, next := mustCA(t, "ca-old"), mustCA(t, "ca-new")
	cross, err := old.CrossSign(next, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kp := serverLeaf(t, next, time.Hour)
	leaf := kp.Leaf
	verify := func(roots Bundle, inter ...*x509.Certificate) error {
		ip := x509.NewCertPool()
		for _, c := range inter {
			ip.AddCert(c)
		}
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots.Pool(), Intermediates: ip, DNSName: "127.0.0.1"})
		return err
	}
	if err := verify(Bundle{old.Cert}, cross); err != nil {
		t.Errorf("old-CA peer with the cross-certificate: %v", err)
	}
	if err := verify(Bundle{next.Cert}, cross); err != nil {
		t.Errorf("new-CA peer with the cross-certificate: %v", err)
	}
	if err := verify(Bundle{old.Cert}); err == nil {
		t.Error("an old-CA peer verified a new-CA leaf without the cross-certificate")
	}
	foreign := mustCA(t, "foreign")
	if err := verify(Bundle{foreign.Cert}, cross); err == nil {
		t.Error("a foreign-CA peer verified it")
	}
}
