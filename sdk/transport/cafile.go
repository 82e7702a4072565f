package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// CAFileCheckInterval is how often, at most, a CAFile looks whether its
// file changed (one stat; the file is read again only when its size,
// modification time or inode changed).
const CAFileCheckInterval = time.Second

// CAFile is a trust bundle (PEM CA certificates) that follows a file:
// the file the agent keeps a task's $DCOS_CA_FILE in, which it replaces
// (by rename) with the cluster's new bundle after a CA rotation. Every
// new TLS connection of a client made from TLSConfig is verified against
// the file's content of the moment, so that a long-running client keeps
// reaching the kernels after the previous CA retires.
//
// A file that can no longer be read, or no longer holds a PEM
// certificate, changes nothing: the last good bundle stays in force and
// the problem is logged once per change of the file. Verification is
// never weaker than with a fixed bundle (TLSConfig). It is safe for
// concurrent use.
type CAFile struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	checked time.Time   // last stat
	seen    os.FileInfo // the file as last read (or found unreadable)
	lastErr string      // the problem last logged, so as to log it once
	trust   *caTrust
}

// caTrust is one content of the file: its pool and the session cache of
// the connections verified against it (sessions are not resumed across
// a change of trust).
type caTrust struct {
	pool  *x509.CertPool
	cache tls.ClientSessionCache
}

// OpenCAFile reads the trust bundle at path; log receives reloads and
// problems (nil: discarded). A file that cannot be read or holds no PEM
// certificate is an error naming it.
func OpenCAFile(path string, log *slog.Logger) (*CAFile, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("transport: CA file: %w", err)
	}
	pool, err := readPool(path)
	if err != nil {
		return nil, err
	}
	return &CAFile{path: path, log: log, checked: time.Now(), seen: fi, trust: newTrust(pool)}, nil
}

func newTrust(pool *x509.CertPool) *caTrust {
	return &caTrust{pool: pool, cache: tls.NewLRUClientSessionCache(64)}
}

func readPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("transport: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("transport: CA file %s: holds no PEM certificate", path)
	}
	return pool, nil
}

// Path is the file's path.
func (f *CAFile) Path() string { return f.path }

// Pool returns the CA certificates of the file's current content (the
// last good one), looking at the file first if it was not looked at in
// the last CAFileCheckInterval. The caller must not modify the pool.
func (f *CAFile) Pool() *x509.CertPool { return f.current().pool }

// current is the trust of the moment (see Pool).
func (f *CAFile) current() *caTrust {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if now.Sub(f.checked) < CAFileCheckInterval && !now.Before(f.checked) {
		return f.trust
	}
	f.checked = now
	fi, err := os.Stat(f.path)
	if err != nil {
		f.problem(err)
		return f.trust
	}
	if sameContent(f.seen, fi) {
		return f.trust
	}
	// Stat before reading: a file replaced meanwhile differs from seen
	// at the next look and is read again then.
	f.seen = fi
	pool, err := readPool(f.path)
	if err != nil {
		f.problem(fmt.Errorf("%w; the previous bundle stays trusted", err))
		return f.trust
	}
	f.trust, f.lastErr = newTrust(pool), ""
	f.log.Info("transport: CA file changed: new connections are verified against its bundle", "file", f.path)
	return f.trust
}

// problem logs err unless it is the one last logged.
func (f *CAFile) problem(err error) {
	if msg := err.Error(); msg != f.lastErr {
		f.lastErr = msg
		f.log.Warn("transport: CA file: keeping the last good bundle", "file", f.path, "err", err)
	}
}

// sameContent reports whether b is, by size, modification time and
// inode, the file a was.
func sameContent(a, b os.FileInfo) bool {
	return a != nil && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && os.SameFile(a, b)
}

// trustSources are the TrustSources of the configurations given to
// FollowTrust (CAFile.TLSConfig's among them), by configuration: the
// package's transports dial those with the source's bundle of the
// moment (dialTLS).
var trustSources sync.Map // *tls.Config → TrustSource

// TrustSource is a trust bundle that changes while clients use it: a
// CAFile, or a program's own certificate reloader (dcosd's agents and
// kernels follow the cluster's bundle through a CA rotation).
// TrustPool returns the bundle of the moment; the caller does not modify
// it.
type TrustSource interface {
	TrustPool() *x509.CertPool
}

// FollowTrust makes the package's clients given cfg (Cluster.WithTLS,
// HTTPClientTLS, H2CClientTLS, SetTLS) verify each new TLS connection as
// crypto/tls does with a fixed bundle — the chain up to a CA of src's
// bundle of the moment, the intermediates the server sends, the host
// name or IP address dialled — instead of with cfg's own verification.
// cfg is one whose crypto/tls verification is replaced
// (InsecureSkipVerify with a VerifyConnection against src), which alone
// cannot check an IP-address endpoint: crypto/tls does not tell
// VerifyConnection the address dialled. cfg keeps its own verification
// wherever else it is used. Register a configuration once: the
// registration lasts as long as the program.
func FollowTrust(cfg *tls.Config, src TrustSource) {
	trustSources.Store(cfg, src)
}

// TLSConfig returns a client TLS configuration that verifies the
// kernels against the file's bundle of the moment. Give it to the
// package's clients (Cluster.WithTLS, HTTPClientTLS, H2CClientTLS): they
// verify each new connection as crypto/tls does with a fixed bundle
// (the chain up to a CA of the file, the intermediates the kernel sends,
// the host name or IP address dialled), with the bundle the file holds
// when the connection is made. Sessions verified against one content of
// the file are not resumed once it changed.
//
// Used by another http.Transport, or through an HTTPS proxy, the
// configuration verifies in VerifyConnection (crypto/tls's own
// verification is replaced, hence InsecureSkipVerify): there it needs a
// server name (a DNS name or Config.ServerName), and refuses IP-address
// endpoints, whose address crypto/tls does not tell VerifyConnection.
func (f *CAFile) TLSConfig() *tls.Config {
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // verified by VerifyConnection, or by dialTLS without it
		VerifyConnection:   f.verifyConnection,
	}
	FollowTrust(conf, f)
	return conf
}

// verifyConnection verifies a connection made outside the package's
// transports: the chain against the current bundle, for cs.ServerName.
func (f *CAFile) verifyConnection(cs tls.ConnectionState) error {
	if cs.ServerName == "" {
		return errors.New("transport: CA file: no server name to verify the kernel's certificate for (an IP address dialled outside sdk/transport's clients)")
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("transport: the kernel sent no certificate")
	}
	opts := x509.VerifyOptions{Roots: f.Pool(), DNSName: cs.ServerName, Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("tls: failed to verify certificate against %s: %w", f.path, err)
	}
	return nil
}

// SetTLS gives t the TLS configuration cfg (a copy of it: a Transport
// sets NextProtos in place). A configuration given to FollowTrust (a
// CAFile's among them) also gets t a TLS dialer that verifies with the
// source's bundle of the moment and for the host dialled.
func SetTLS(t *http.Transport, cfg *tls.Config) {
	t.TLSClientConfig = cloneTLS(cfg)
	if cfg == nil {
		return
	}
	if src, ok := trustSources.Load(cfg); ok {
		t.DialTLSContext = dialTLS(t, src.(TrustSource))
	}
}

// TrustPool implements TrustSource: Pool.
func (f *CAFile) TrustPool() *x509.CertPool { return f.Pool() }

// dialTLS returns t's TLS dialer for src: t's dialer, then a handshake
// with t's TLS configuration (its ALPN protocols, client certificate and
// session cache included) in which crypto/tls verifies the server's
// certificate itself, against src's bundle of the moment and for the
// host dialled. A CAFile's sessions are kept per content of its file:
// a session verified against one bundle is not resumed once it changed.
func dialTLS(t *http.Transport, src TrustSource) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		dial := t.DialContext
		if dial == nil {
			dial = (&net.Dialer{}).DialContext
		}
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cfg := t.TLSClientConfig.Clone()
		cfg.InsecureSkipVerify, cfg.VerifyConnection = false, nil
		if f, ok := src.(*CAFile); ok {
			trust := f.current()
			cfg.RootCAs, cfg.ClientSessionCache = trust.pool, trust.cache
		} else {
			cfg.RootCAs = src.TrustPool()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		return tc, nil
	}
}
