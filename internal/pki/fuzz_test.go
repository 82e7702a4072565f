package pki

import (
	"testing"
	"time"
)

// FuzzParse feeds outside PEM to the decoders a kernel runs on what
// clients send (CSRs) or operators give (bundles, keys): no panic, and
// what parses is what it claims.
func FuzzParse(f *testing.F) {
	ca, _ := NewCA("fuzz", time.Hour, time.Now())
	key, _ := NewKey()
	csr, _ := CreateCSR(key, "x")
	f.Add(csr)
	f.Add(ca.CertPEM())
	f.Add(ca.KeyPEM())
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := ParseCSR(b); err == nil && r.PublicKey == nil {
			t.Fatal("a CSR without a public key parsed")
		}
		if bd, err := ParseBundle(b); err == nil {
			for _, c := range bd {
				if !c.IsCA {
					t.Fatal("a bundle with a non-CA certificate parsed")
				}
			}
		}
		ParseKey(b)
		ParseCA(b, b)
	})
}
