package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/authority"
	"github.com/dcos-kernel/dcos/internal/pki"
	"github.com/dcos-kernel/dcos/internal/seal"
	"github.com/dcos-kernel/dcos/kernel"
)

// DefaultCertValidity is the lifetime of the certificates a kernel
// issues (its own serving certificate, agents' and clients'): hours, so
// that a leaked key is useful briefly; they are renewed when two thirds
// of it have passed (pki.RenewAt).
const DefaultCertValidity = 24 * time.Hour

// tlsFlags configure the kernel's TLS (docs/security.md), besides
// kekFlags.
var tlsFlags = []cli.Flag{
	&cli.DurationFlag{Name: "cert-validity", Value: DefaultCertValidity, Usage: "lifetime of the certificates the kernel issues (its own, agents', clients'); they are renewed two thirds into it"},
}

// kernelTLS is a kernel's TLS: the cluster CA it issues certificates
// with, and its own serving certificate (also its client certificate to
// other kernels) in a Reloader, renewed by run. It implements
// api.CertIssuer.
type kernelTLS struct {
	ca       *pki.CA                             // the CA directory's: until attach, and for the store's certificates
	bundle   pki.Bundle                          // its bundle
	auth     atomic.Pointer[authority.Authority] // the cluster's CA in etcd, once attached (tls_ca.go)
	served   atomic.Int64                        // the store revision of the CA the serving certificate is of
	issued   *issuedStore                        // where issued certificates are recorded; nil until attach
	validity time.Duration
	leaf     pki.Leaf // the serving certificate's names
	reloader *pki.Reloader
	trust    *pki.Reloader // the bundle alone, for the frameworks dev runs in its process (frameworkTLS)
	log      *slog.Logger
	expiring atomic.Bool                      // less than a sixth of the serving certificate's lifetime left
	fp       atomic.Pointer[stateFingerprint] // CABundleFingerprint's cache (tls_ca.go)
}

var _ api.CertIssuer = (*kernelTLS)(nil)

// setupKernelTLS issues the kernel's serving certificate for its
// advertised URL and listen address from ca, the CA directory's
// (clusterCA; nil: loaded, or created sealed under kr, here).
func setupKernelTLS(c *cli.Context, log *slog.Logger, dataDir string, kr *seal.Keyring, ca *pki.CA, bundle pki.Bundle, listen net.Addr, advertised string) (*kernelTLS, error) {
	validity := c.Duration("cert-validity")
	if validity < 30*time.Second {
		return nil, fmt.Errorf("--cert-validity %s: want at least 30s", validity)
	}
	if ca == nil {
		var err error
		if ca, bundle, err = clusterCA(c, log, dataDir, kr); err != nil {
			return nil, err
		}
	}
	t := &kernelTLS{ca: ca, bundle: bundle, validity: validity, log: log.With("component", "tls"),
		leaf: servingLeaf(advertised, listen, validity)}
	t.reloader, t.trust = pki.NewReloader(nil, bundle), pki.NewReloader(nil, bundle)
	if err := t.renew(time.Now()); err != nil {
		return nil, err
	}
	return t, nil
}

// servingLeaf describes a kernel's serving certificate: identity
// KernelIdentity(advertised host); names the advertised host, the listen
// IP (every interface's when it listens on all), loopback, localhost and
// the host name.
func servingLeaf(advertised string, listen net.Addr, validity time.Duration) pki.Leaf {
	host := advertised
	if u, err := url.Parse(advertised); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	l := pki.Leaf{CommonName: host, Identity: pki.KernelIdentity(host), Server: true, Client: true, Validity: validity,
		IPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, DNSNames: []string{"localhost"}}
	add := func(h string) {
		if h == "" {
			return
		}
		if ip := net.ParseIP(h); ip != nil {
			for _, x := range l.IPs {
				if x.Equal(ip) {
					return
				}
			}
			l.IPs = append(l.IPs, ip)
			return
		}
		for _, x := range l.DNSNames {
			if x == h {
				return
			}
		}
		l.DNSNames = append(l.DNSNames, h)
	}
	add(host)
	if ta, ok := listen.(*net.TCPAddr); ok && !ta.IP.IsUnspecified() {
		add(ta.IP.String())
	} else if ok {
		// Listening on every address: every address of the host's
		// interfaces, so that clients may dial any of them.
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLinkLocalUnicast() {
					add(ipn.IP.String())
				}
			}
		}
	}
	if hn, err := os.Hostname(); err == nil {
		add(hn)
	}
	return l
}

// renew issues a new serving certificate from the cluster CA of the
// moment (chain: leaf, the cross-certificate during a CA rotation, CA)
// and serves it and the bundle from the next handshake on.
func (t *kernelTLS) renew(now time.Time) error {
	st := t.state()
	kp, err := st.Issue(t.leaf, now)
	if err != nil {
		return fmt.Errorf("kernel certificate: %w", err)
	}
	kp.Certificate = append(kp.Certificate, st.Active.Cert.Raw)
	t.reloader.Set(&kp, st.Bundle)
	if t.trust != nil {
		t.trust.Set(nil, st.Bundle)
	}
	t.served.Store(st.Revision)
	t.expiring.Store(false)
	t.record(pki.RoleKernel, t.leaf.CommonName, kp.Leaf)
	return nil
}

// run renews the serving certificate at its RenewAt until ctx ends,
// retrying with backoff; when less than a sixth of its lifetime is left
// it logs a warning and sets dcos_tls_certificate_expiring.
func (t *kernelTLS) run(ctx context.Context) error {
	go t.follow(ctx)
	backoff := time.Second
	for {
		wait := time.Until(t.reloader.RenewAt())
		if !t.sleepOrRotate(ctx, wait) {
			return nil
		}
		err := t.renew(time.Now())
		if err == nil {
			backoff = time.Second
			t.log.Debug("kernel certificate renewed", "not_after", t.reloader.NotAfter())
			continue
		}
		t.checkExpiry(time.Now(), err)
		if !sleepUntil(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// checkExpiry warns when less than a sixth of the serving certificate's
// lifetime is left.
func (t *kernelTLS) checkExpiry(now time.Time, err error) {
	c := t.reloader.Certificate()
	if c == nil || c.Leaf == nil {
		return
	}
	left := c.Leaf.NotAfter.Sub(now)
	if left < c.Leaf.NotAfter.Sub(c.Leaf.NotBefore)/6 {
		t.expiring.Store(true)
		t.log.Warn("the kernel's certificate expires soon and could not be renewed", "not_after", c.Leaf.NotAfter, "left", left.Round(time.Second), "err", err)
	}
}

// sleepUntil waits d (or not at all when d <= 0); false: ctx ended.
func sleepUntil(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// IssueFor implements api.CertIssuer: a client certificate bound to p.
func (t *kernelTLS) IssueFor(p kernel.Principal, csrPEM []byte) ([]byte, []byte, error) {
	csr, err := pki.ParseCSR(csrPEM)
	if err != nil {
		return nil, nil, err
	}
	st := t.state()
	chain, err := st.Sign(csr.PublicKey, pki.Leaf{CommonName: p.Name, Identity: pki.IdentityURI(p.Role.String(), p.Name), Client: true, Validity: t.validity}, time.Now())
	if err != nil {
		return nil, nil, err
	}
	if certs, err := pki.ParseCerts(chain); err == nil {
		t.record(p.Role.String(), p.Name, certs[0])
	}
	return append(chain, st.Active.CertPEM()...), st.Bundle.PEM(), nil
}

// serverConfig is the API port's TLS configuration: the current serving
// certificate; client certificates verified when given (the door decides
// what a call without one may do).
func (t *kernelTLS) serverConfig() *tls.Config {
	return t.reloader.ServerConfig(tls.VerifyClientCertIfGiven)
}

// clientConfig is the configuration of this kernel's calls to other
// kernels: it verifies them with the bundle and presents its own
// certificate.
func (t *kernelTLS) clientConfig() *tls.Config { return t.reloader.ClientConfig("") }

// frameworkTLS is the configuration of the frameworks dcosd dev runs in
// its own process (init, jobs): it verifies the kernels with the
// cluster's bundle of the moment, which follows a CA rotation, and
// presents no certificate (a framework is its token's principal, not
// this kernel).
func (t *kernelTLS) frameworkTLS() *tls.Config { return t.trust.ClientConfig("") }

// gatherer serves dcos_tls_certificate_expiry_timestamp_seconds and
// dcos_tls_certificate_expiring for holder "kernel".
func (t *kernelTLS) gatherer() prometheus.Gatherer {
	reg := prometheus.NewRegistry()
	labels := prometheus.Labels{"holder": "kernel"}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dcos_tls_certificate_expiry_timestamp_seconds", Help: "When the holder's current TLS certificate expires (Unix seconds).", ConstLabels: labels},
			func() float64 { return float64(t.reloader.NotAfter().Unix()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "dcos_tls_certificate_expiring", Help: "1 when less than a sixth of the holder's certificate lifetime is left and renewing it failed.", ConstLabels: labels},
			func() float64 {
				if t.expiring.Load() {
					return 1
				}
				return 0
			}),
	)
	return reg
}
