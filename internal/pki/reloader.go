package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/dcos-kernel/dcos/sdk/transport"
)

// Reloader holds a holder's current certificate and trust bundle and
// hands them to crypto/tls at every handshake, so that both can be
// replaced (Set) while connections are served and calls made: a renewed
// certificate or a rotated bundle applies to the next handshake, and
// established connections are left alone. It is safe for concurrent use.
type Reloader struct {
	cert   atomic.Pointer[tls.Certificate]
	trust  atomic.Pointer[trust]
	server atomic.Pointer[serverState]
}

type trust struct {
	bundle Bundle
	pool   *x509.CertPool
}

// serverState caches the per-handshake config of ServerConfig for one
// trust bundle.
type serverState struct {
	trust *trust
	conf  *tls.Config
}

// NewReloader returns a Reloader holding cert (nil: none yet, as for a
// client that has only the bundle) and bundle.
func NewReloader(cert *tls.Certificate, bundle Bundle) *Reloader {
	r := &Reloader{}
	r.Set(cert, bundle)
	return r
}

// Set replaces the certificate (nil: keep the current one) and the trust
// bundle (nil: keep the current one). A certificate must have its Leaf
// set (KeyPair and CA.Issue set it).
func (r *Reloader) Set(cert *tls.Certificate, bundle Bundle) {
	if cert != nil {
		if cert.Leaf == nil && len(cert.Certificate) > 0 {
			if leaf, err := x509.ParseCertificate(cert.Certificate[0]); err == nil {
				c := *cert
				c.Leaf = leaf
				cert = &c
			}
		}
		r.cert.Store(cert)
	}
	if bundle != nil {
		r.trust.Store(&trust{bundle: bundle, pool: bundle.Pool()})
	}
}

// Certificate is the current certificate (nil: none).
func (r *Reloader) Certificate() *tls.Certificate { return r.cert.Load() }

// Bundle is the current trust bundle.
func (r *Reloader) Bundle() Bundle {
	if t := r.trust.Load(); t != nil {
		return t.bundle
	}
	return nil
}

// NotAfter is the current certificate's expiry (zero: no certificate).
func (r *Reloader) NotAfter() time.Time {
	if c := r.cert.Load(); c != nil && c.Leaf != nil {
		return c.Leaf.NotAfter
	}
	return time.Time{}
}

// RenewAt is when the current certificate should be renewed: when two
// thirds of its lifetime (from its issue, NotBefore+ClockSkew) have
// passed. Zero: no certificate.
func (r *Reloader) RenewAt() time.Time {
	c := r.cert.Load()
	if c == nil || c.Leaf == nil {
		return time.Time{}
	}
	return RenewAt(c.Leaf)
}

// RenewAt is when cert should be renewed: two thirds into its lifetime,
// counted from its issue (NotBefore+ClockSkew).
func RenewAt(cert *x509.Certificate) time.Time {
	issued := cert.NotBefore.Add(ClockSkew)
	if issued.After(cert.NotAfter) {
		issued = cert.NotBefore
	}
	return issued.Add(cert.NotAfter.Sub(issued) * 2 / 3)
}

var errNoCertificate = errors.New("pki: no certificate yet")

func (r *Reloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := r.cert.Load(); c != nil {
		return c, nil
	}
	return nil, errNoCertificate
}

// ServerConfig returns a server configuration serving the current
// certificate, offering HTTP/2 and HTTP/1.1 by ALPN, TLS 1.2 or later,
// with session resumption, and asking clients for a certificate as
// clientAuth says, verified against the current bundle
// (tls.VerifyClientCertIfGiven: clients that have one must present a
// valid one; the caller decides what a call without one may do).
func (r *Reloader) ServerConfig(clientAuth tls.ClientAuthType) *tls.Config {
	base := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: r.getCertificate,
		ClientAuth:     clientAuth,
	}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		t := r.trust.Load()
		if st := r.server.Load(); st != nil && st.trust == t {
			return st.conf, nil
		}
		conf := base.Clone()
		conf.GetConfigForClient = nil
		if t != nil {
			conf.ClientCAs = t.pool
		}
		r.server.Store(&serverState{trust: t, conf: conf})
		return conf, nil
	}
	return base
}

// ClientConfig returns a client configuration that verifies the server's
// certificate against the current bundle at each handshake (so a rotated
// bundle applies without a new config) and for serverName when not empty
// (else the name dialled), presents the current certificate when there is
// one, and resumes sessions. Its own verification (VerifyConnection)
// checks the name only when it is a DNS name: crypto/tls does not tell it
// an IP address dialled. The clients of sdk/transport (Cluster.WithTLS,
// HTTPClientTLS, SetTLS) verify with crypto/tls itself instead, the IP
// address included (transport.FollowTrust); elsewhere — etcd's gRPC
// client — an IP-address endpoint's certificate is checked against the
// bundle but not for the address (docs/security.md, "Not covered yet").
func (r *Reloader) ClientConfig(serverName string) *tls.Config {
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         serverName,
		InsecureSkipVerify: true, // verified by VerifyConnection, against the bundle of the moment
		VerifyConnection:   r.verifyServer,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c := r.cert.Load(); c != nil {
				return c, nil
			}
			return &tls.Certificate{}, nil
		},
		ClientSessionCache: tls.NewLRUClientSessionCache(64),
	}
	transport.FollowTrust(conf, r)
	return conf
}

// TrustPool is the current bundle's pool (transport.TrustSource): the
// clients of sdk/transport given a ClientConfig verify each connection
// with crypto/tls against it, for the host or IP address dialled.
func (r *Reloader) TrustPool() *x509.CertPool {
	if t := r.trust.Load(); t != nil {
		return t.pool
	}
	return x509.NewCertPool() // no bundle: nothing verifies
}

func (r *Reloader) verifyServer(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("pki: the server sent no certificate")
	}
	if cs.DidResume {
		// As crypto/tls does itself: a resumed session's certificate was
		// verified by the full handshake that made the session (tickets
		// outlive neither the certificate nor a day).
		if time.Now().After(cs.PeerCertificates[0].NotAfter) {
			return errors.New("pki: the server's certificate has expired")
		}
		return nil
	}
	t := r.trust.Load()
	if t == nil {
		return errors.New("pki: no trust bundle to verify the server with")
	}
	opts := x509.VerifyOptions{Roots: t.pool, DNSName: cs.ServerName, Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("pki: the server's certificate is not trusted (is the client's CA, e.g. `dcosctl login --ca-cert`, this cluster's?): %w", err)
	}
	return nil
}
