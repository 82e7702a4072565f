package pki

import (
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// CrossSign returns next's certificate re-issued by ca: the same subject
// and public key, so that a certificate next issues also verifies, through
// this cross-certificate, for a peer that trusts only ca. A kernel serves
// it after its own certificate while a CA rotation overlaps, so that
// clients that pinned the old CA keep working until they learn the new
// one. It is valid while both CAs are (never past either).
func (ca *CA) CrossSign(next *CA, now time.Time) (*x509.Certificate, error) {
	if next == nil || next.Cert == nil {
		return nil, errors.New("pki: cross-sign: no CA to sign")
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               next.Cert.Subject,
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              next.Cert.NotAfter,
		KeyUsage:              next.Cert.KeyUsage,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          next.Cert.SubjectKeyId,
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, next.Cert.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: cross-sign: %w", err)
	}
	return x509.ParseCertificate(der)
}
