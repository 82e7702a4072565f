package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"
)

// ClockSkew is how far NotBefore of every certificate is set back from
// the moment it is issued: a peer whose clock is behind the issuer's by
// less than this accepts it at once. (Expiry tolerates a peer ahead by up
// to a third of the certificate's lifetime, because certificates are
// renewed when two thirds of it have passed: see Reloader.RenewAt.)
const ClockSkew = 5 * time.Minute

// CA is a certificate authority: its certificate and private key.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewCA creates a self-signed CA named name ("dcos cluster CA"), valid
// from now-ClockSkew for validity.
func NewCA(name string, validity time.Duration, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: new CA: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"dcos"}},
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// One intermediate below it: the next CA's cross-certificate
		// during a rotation (CrossSign).
		MaxPathLen: 1,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: new CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: new CA: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial: %w", err)
	}
	return s, nil
}

// CertPEM is the CA's certificate in PEM.
func (ca *CA) CertPEM() []byte { return EncodeCert(ca.Cert.Raw) }

// KeyPEM is the CA's private key in PEM (PKCS #8). Keep it sealed.
func (ca *CA) KeyPEM() []byte { return EncodeKey(ca.Key) }

// ID is the CA's fingerprint: hex of the SHA-256 of its certificate
// (what `dcosctl login --ca-fingerprint` pins and `dcosctl cert ls` shows).
func (ca *CA) ID() string { return Fingerprint(ca.Cert) }

// Fingerprint is hex of the SHA-256 of cert's DER.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// ParseCA parses a CA from its certificate and key PEM, checking that they
// belong together and that the certificate is a CA's.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	certs, err := ParseCerts(certPEM)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 || !certs[0].IsCA {
		return nil, errors.New("pki: the CA certificate PEM must hold exactly one CA certificate")
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(certs[0].PublicKey) {
		return nil, errors.New("pki: the CA key does not match its certificate")
	}
	return &CA{Cert: certs[0], Key: key}, nil
}

// Leaf describes a certificate to issue.
type Leaf struct {
	// CommonName names the holder (an agent's or kernel's name).
	CommonName string
	// Identity is the holder's dcos identity, written as a URI SAN (see
	// AgentIdentity, KernelIdentity); peers check it, not CommonName.
	Identity *url.URL
	// DNSNames and IPs are the names a server is reached at.
	DNSNames []string
	IPs      []net.IP
	// Server and Client choose the extended key usages.
	Server, Client bool
	// Validity is the lifetime from now (NotBefore is now-ClockSkew).
	Validity time.Duration
}

// Sign issues a certificate for pub as described by l, valid from
// now-ClockSkew to now+l.Validity (never past the CA's own expiry), and
// returns its DER.
func (ca *CA) Sign(pub crypto.PublicKey, l Leaf, now time.Time) ([]byte, error) {
	if l.Validity <= 0 {
		return nil, errors.New("pki: sign: validity must be positive")
	}
	if !l.Server && !l.Client {
		return nil, errors.New("pki: sign: a certificate must be for a server, a client, or both")
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: l.CommonName, Organization: []string{"dcos"}},
		NotBefore:    now.Add(-ClockSkew),
		NotAfter:     now.Add(l.Validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		DNSNames:     l.DNSNames,
		IPAddresses:  l.IPs,
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	if l.Identity != nil {
		tmpl.URIs = []*url.URL{l.Identity}
	}
	if l.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if l.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign: %w", err)
	}
	return der, nil
}

// Issue makes a new key and signs a certificate for it: the key pair
// ready for crypto/tls (its Leaf set), and the certificate and key in PEM.
func (ca *CA) Issue(l Leaf, now time.Time) (tls.Certificate, []byte, []byte, error) {
	key, err := NewKey()
	if err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	der, err := ca.Sign(key.Public(), l, now)
	if err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	certPEM, keyPEM := EncodeCert(der), EncodeKey(key)
	kp, err := KeyPair(certPEM, keyPEM)
	return kp, certPEM, keyPEM, err
}

// NewKey returns a new ECDSA P-256 private key.
func NewKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: new key: %w", err)
	}
	return k, nil
}

// KeyPair parses a certificate chain and key in PEM into a tls.Certificate
// with its Leaf set.
func KeyPair(certPEM, keyPEM []byte) (tls.Certificate, error) {
	kp, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return kp, fmt.Errorf("pki: key pair: %w", err)
	}
	return kp, nil
}

// CreateCSR returns a PEM certificate request for key, naming cn.
func CreateCSR(key *ecdsa.PrivateKey, cn string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		return nil, fmt.Errorf("pki: csr: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// ParseCSR parses a PEM certificate request from outside and checks its
// signature; only its public key is used (an ECDSA P-256 or Ed25519 key,
// or RSA of 2048 bits or more): the issuer, not the request, decides
// names and identities.
func ParseCSR(b []byte) (*x509.CertificateRequest, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("pki: csr: not a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: csr: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("pki: csr: %w", err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, errors.New("pki: csr: ECDSA keys must be P-256 or P-384")
		}
	case interface{ Size() int }: // *rsa.PublicKey
		if k.Size() < 256 {
			return nil, errors.New("pki: csr: RSA keys must be at least 2048 bits")
		}
	default:
		if fmt.Sprintf("%T", k) != "ed25519.PublicKey" {
			return nil, fmt.Errorf("pki: csr: unsupported key type %T", k)
		}
	}
	return csr, nil
}

// EncodeCert returns a certificate's DER in PEM.
func EncodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// EncodeKey returns k in PEM (PKCS #8).
func EncodeKey(k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err) // a P-256 key always marshals
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// ParseKey parses a PEM ECDSA private key (PKCS #8 or SEC 1).
func ParseKey(b []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("pki: key: not PEM")
	}
	if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
		if ek, ok := k.(*ecdsa.PrivateKey); ok {
			return ek, nil
		}
		return nil, fmt.Errorf("pki: key: %T is not an ECDSA key", k)
	}
	k, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: key: %w", err)
	}
	return k, nil
}

// ParseCerts parses every CERTIFICATE block of a PEM text (other blocks
// are an error); at least one is required.
func ParseCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("pki: unexpected PEM block %q", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("pki: no PEM certificate")
	}
	return out, nil
}
