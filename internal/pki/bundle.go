package pki

import (
	"bytes"
	"crypto/x509"
	"time"
)

// Bundle is a trust bundle: the CA certificates a peer accepts. During a
// CA rotation it holds the old CA and the new one, so that certificates
// of either verify until the old one is retired.
type Bundle []*x509.Certificate

// ParseBundle parses a PEM trust bundle; every certificate must be a CA's.
func ParseBundle(b []byte) (Bundle, error) {
	certs, err := ParseCerts(b)
	if err != nil {
		return nil, err
	}
	for _, c := range certs {
		if !c.IsCA {
			return nil, errNotCA(c)
		}
	}
	return Bundle(certs), nil
}

type notCAError struct{ subject string }

func (e notCAError) Error() string {
	return "pki: bundle: " + e.subject + " is not a CA certificate"
}

func errNotCA(c *x509.Certificate) error { return notCAError{c.Subject.String()} }

// PEM is the bundle in PEM, in order.
func (b Bundle) PEM() []byte {
	var out bytes.Buffer
	for _, c := range b {
		out.Write(EncodeCert(c.Raw))
	}
	return out.Bytes()
}

// Pool is the bundle as a certificate pool.
func (b Bundle) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range b {
		p.AddCert(c)
	}
	return p
}

// Contains reports whether c is in the bundle.
func (b Bundle) Contains(c *x509.Certificate) bool {
	for _, x := range b {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

// Valid returns the bundle's CAs that are valid at t.
func (b Bundle) Valid(t time.Time) Bundle {
	var out Bundle
	for _, c := range b {
		if !t.Before(c.NotBefore) && !t.After(c.NotAfter) {
			out = append(out, c)
		}
	}
	return out
}

// Fingerprints are the bundle's CA fingerprints, in order.
func (b Bundle) Fingerprints() []string {
	out := make([]string, len(b))
	for i, c := range b {
		out[i] = Fingerprint(c)
	}
	return out
}
