package store

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"

	"github.com/dcos-kernel/dcos/internal/atomicfile"
	"github.com/dcos-kernel/dcos/internal/pki"
)

// Files of an embedded etcd's TLS directory (EmbeddedTLS.Dir): the
// member's certificate and key, and the trust bundle it verifies clients
// and peers against. etcd reads them at every handshake, so rewriting
// them renews the certificate without a restart.
const (
	EtcdCertFile = "etcd.crt"
	EtcdKeyFile  = "etcd.key"
	EtcdCAFile   = "ca.crt"
)

// DefaultEtcdCertValidity is the lifetime of the embedded etcd's
// certificate when EmbeddedTLS.Validity is zero.
const DefaultEtcdCertValidity = 24 * time.Hour

// EmbeddedTLS makes an embedded etcd's client and peer listeners serve
// TLS and require a client certificate issued by the cluster CA
// (etcd's --client-cert-auth and --peer-client-cert-auth). The kernel's
// own client is in-process and never crosses them; they are for etcdctl
// and for nothing else, and no longer open to any local process.
type EmbeddedTLS struct {
	// CA issues the member's certificate (server and client usages, for
	// 127.0.0.1, ::1 and localhost, identity dcos://etcd/NAME) and renews
	// it when two thirds of its lifetime have passed (pki.RenewAt).
	CA *pki.CA
	// Bundle is the trust bundle clients and peers are verified against
	// (default: CA's certificate alone).
	Bundle pki.Bundle
	// Dir receives EtcdCertFile, EtcdKeyFile and EtcdCAFile (mode 0600;
	// the directory 0700; created if missing).
	Dir string
	// Name is the member's name in its identity (default "dcos").
	Name string
	// Validity is the certificate's lifetime (0: DefaultEtcdCertValidity).
	Validity time.Duration
	// Clock is the issue clock (default time.Now).
	Clock func() time.Time
}

// etcdCerts keeps an embedded etcd's certificate files current.
type etcdCerts struct {
	cfg  EmbeddedTLS
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	renewAt time.Time // when the current certificate is due
	err     error     // the last renewal's failure, nil after a success
}

// startEtcdCerts validates cfg, writes the first certificate and starts
// renewing it.
func startEtcdCerts(cfg EmbeddedTLS) (*etcdCerts, error) {
	if cfg.CA == nil {
		return nil, errors.New("embedded etcd: tls: CA is required")
	}
	if cfg.Dir == "" {
		return nil, errors.New("embedded etcd: tls: Dir is required")
	}
	if len(cfg.Bundle) == 0 {
		cfg.Bundle = pki.Bundle{cfg.CA.Cert}
	}
	if cfg.Name == "" {
		cfg.Name = "dcos"
	}
	if cfg.Validity <= 0 {
		cfg.Validity = DefaultEtcdCertValidity
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd: tls: %w", err)
	}
	if err := os.Chmod(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd: tls: %w", err)
	}
	c := &etcdCerts{cfg: cfg, stop: make(chan struct{}), done: make(chan struct{})}
	if err := c.issue(); err != nil {
		return nil, err
	}
	go c.renew()
	return c, nil
}

// issue writes a new certificate and key (the key first: a handshake
// that reads the files between the two renames pairs the new key with
// the old certificate and fails once; the kernel's client is in-process
// and never handshakes).
func (c *etcdCerts) issue() error {
	now := c.cfg.Clock()
	_, certPEM, keyPEM, err := c.cfg.CA.Issue(pki.Leaf{
		CommonName: c.cfg.Name,
		Identity:   pki.IdentityURI(pki.RoleEtcd, c.cfg.Name),
		DNSNames:   []string{"localhost"},
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		Server:     true,
		Client:     true, // etcd's gateway dials its own client URL with it
		Validity:   c.cfg.Validity,
	}, now)
	if err != nil {
		return fmt.Errorf("embedded etcd: tls: %w", err)
	}
	leaf, err := pki.ParseCerts(certPEM)
	if err != nil {
		return fmt.Errorf("embedded etcd: tls: %w", err)
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{EtcdCAFile, c.cfg.Bundle.PEM()}, {EtcdKeyFile, keyPEM}, {EtcdCertFile, certPEM}} {
		if err := atomicfile.WriteDurable(filepath.Join(c.cfg.Dir, f.name), f.b); err != nil {
			return fmt.Errorf("embedded etcd: tls: %w", err)
		}
	}
	c.mu.Lock()
	c.renewAt = pki.RenewAt(leaf[0])
	c.mu.Unlock()
	return nil
}

// renew reissues the certificate when it is due, until close; a failed
// renewal is retried every 10 s (at most) while the old one is valid.
func (c *etcdCerts) renew() {
	defer close(c.done)
	for {
		c.mu.Lock()
		wait := c.renewAt.Sub(c.cfg.Clock())
		if c.err != nil {
			wait = min(wait, 10*time.Second)
		}
		c.mu.Unlock()
		t := time.NewTimer(max(wait, 0))
		select {
		case <-c.stop:
			t.Stop()
			return
		case <-t.C:
		}
		err := c.issue()
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
	}
}

// tlsInfo is etcd's configuration of a listener served with the files.
func (c *etcdCerts) tlsInfo() transport.TLSInfo {
	return transport.TLSInfo{
		CertFile:       filepath.Join(c.cfg.Dir, EtcdCertFile),
		KeyFile:        filepath.Join(c.cfg.Dir, EtcdKeyFile),
		TrustedCAFile:  filepath.Join(c.cfg.Dir, EtcdCAFile),
		ClientCertAuth: true,
	}
}

// close stops the renewals; safe to call twice and on nil.
func (c *etcdCerts) close() {
	if c == nil {
		return
	}
	c.once.Do(func() { close(c.stop) })
	<-c.done
}
