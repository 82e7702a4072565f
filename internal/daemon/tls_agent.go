package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/internal/atomicfile"
	"github.com/dcos-kernel/dcos/internal/authority"
	"github.com/dcos-kernel/dcos/internal/clientconfig"
	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/pki"
	"github.com/dcos-kernel/dcos/sdk/transport"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// Files of an agent's TLS in its data dir: the cluster's trust bundle
// (pinned at the first join), and its client certificate (a PEM chain)
// and key.
const (
	agentCAFile   = "ca.crt"
	agentCertFile = "agent.crt"
	agentKeyFile  = "agent.key"
)

// agentTLSFlags pin the cluster's CA for an agent's first join.
var agentTLSFlags = []cli.Flag{
	&cli.StringFlag{Name: "ca-cert", Usage: "the cluster's CA bundle `FILE` (a kernel's DATA_DIR/pki/ca.crt), trusted for the first join and saved as DATA_DIR/ca.crt"},
	&cli.StringFlag{Name: "ca-fingerprint", Usage: "`sha256:HEX` of the cluster's CA (printed at bootstrap): the CA the kernel serves is trusted for the first join only if it matches, and saved as DATA_DIR/ca.crt"},
}

// agentTrust returns the bundle an agent verifies kernels with: its
// saved DATA_DIR/ca.crt, else --ca-cert's, else the CA the kernel serves
// when its fingerprint is --ca-fingerprint; the last two are saved.
func agentTrust(ctx context.Context, c *cli.Context, kernelURL, dataDir string) (pki.Bundle, error) {
	path := filepath.Join(dataDir, agentCAFile)
	b, err := os.ReadFile(path)
	if err == nil {
		bundle, err := pki.ParseBundle(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w (remove it to pin the CA again)", path, err)
		}
		return bundle, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	switch {
	case c.String("ca-cert") != "":
		if b, err = os.ReadFile(c.String("ca-cert")); err != nil {
			return nil, fmt.Errorf("--ca-cert: %w", err)
		}
	case c.String("ca-fingerprint") != "":
		if b, err = clientconfig.PinCA(ctx, kernelURL, c.String("ca-fingerprint")); err != nil {
			return nil, fmt.Errorf("--ca-fingerprint: %w", err)
		}
	default:
		return nil, fmt.Errorf("the cluster's CA is not pinned yet (no %s): pass --ca-fingerprint sha256:HEX or --ca-cert FILE; %s", path, clientconfig.FingerprintHint)
	}
	bundle, err := pki.ParseBundle(b)
	if err != nil {
		return nil, fmt.Errorf("CA bundle: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteDurable(path, bundle.PEM()); err != nil {
		return nil, err
	}
	return bundle, nil
}

// agentCert is an agent's client certificate: kept in its data dir,
// served to crypto/tls by a Reloader, obtained by AgentJoin or CertRenew
// and renewed by run two thirds into its lifetime.
type agentCert struct {
	dir      string
	r        *pki.Reloader
	conf     *tls.Config // r.ClientConfig: one pointer, one connection pool
	sessions *sessionCache
	log      *slog.Logger

	// A CA rotation as heartbeats tell it (caBundle): the latest
	// fingerprint heard and when, and a wake-up of run.
	heard     atomic.Pointer[string]
	heardAt   atomic.Int64 // unix nanoseconds; 0: never
	rotated   chan struct{}
	rotatedAt time.Time     // the last renewal a rotation triggered; run's own
	fallback  time.Duration // caFallbackPoll (tests shorten it)

	// onBundle, once set (the agent's SetCABundle), gets every bundle
	// install stores, so that tasks get the new CA too.
	onBundle atomic.Pointer[func([]byte)]
}

// giveBundleTo has install hand every bundle it stores to f from now on
// (and the current one at once).
func (ac *agentCert) giveBundleTo(f func([]byte)) {
	ac.onBundle.Store(&f)
	if b := ac.r.Bundle(); b != nil {
		f(b.PEM())
	}
}

// sessionCache is a client session cache that install empties: a TLS
// session resumed from one made without a certificate (or with the
// previous one) would carry that session's client certificate, not the
// new one.
type sessionCache struct {
	cur atomic.Pointer[tls.ClientSessionCache]
}

func newSessionCache() *sessionCache {
	s := &sessionCache{}
	s.reset()
	return s
}

func (s *sessionCache) reset() {
	c := tls.NewLRUClientSessionCache(64)
	s.cur.Store(&c)
}

func (s *sessionCache) Get(key string) (*tls.ClientSessionState, bool) {
	return (*s.cur.Load()).Get(key)
}
func (s *sessionCache) Put(key string, cs *tls.ClientSessionState) { (*s.cur.Load()).Put(key, cs) }

// newAgentCert returns the agent's certificate state in dataDir, with
// the saved certificate if there is one, trusting bundle.
func newAgentCert(dataDir string, bundle pki.Bundle, log *slog.Logger) (*agentCert, error) {
	ac := &agentCert{dir: dataDir, r: pki.NewReloader(nil, bundle), log: log, rotated: make(chan struct{}, 1), fallback: caFallbackPoll}
	ac.conf = ac.r.ClientConfig("")
	ac.sessions = newSessionCache()
	ac.conf.ClientSessionCache = ac.sessions
	cb, err1 := os.ReadFile(filepath.Join(dataDir, agentCertFile))
	kb, err2 := os.ReadFile(filepath.Join(dataDir, agentKeyFile))
	if err1 == nil && err2 == nil {
		kp, err := pki.KeyPair(cb, kb)
		if err != nil {
			return nil, fmt.Errorf("agent certificate: %w (remove %s to get a new one)", err, agentCertFile)
		}
		// One expired, or of another CA (a dev data dir whose pki was
		// removed), is replaced by CertRenew.
		opts := x509.VerifyOptions{Roots: bundle.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		if _, err := kp.Leaf.Verify(opts); err == nil {
			ac.r.Set(&kp, nil)
		} else {
			log.Info("agent certificate: the saved one is not valid; getting a new one", "err", err)
		}
	}
	return ac, nil
}

// has reports whether the agent has a certificate.
func (ac *agentCert) has() bool { return ac.r.Certificate() != nil }

// request returns a new key and a CSR for it.
func (ac *agentCert) request() (*ecdsa.PrivateKey, []byte, error) {
	key, err := pki.NewKey()
	if err != nil {
		return nil, nil, err
	}
	csr, err := pki.CreateCSR(key, "dcos agent")
	return key, csr, err
}

// install saves and serves a certificate issued for key, and the bundle
// that came with it.
func (ac *agentCert) install(key *ecdsa.PrivateKey, certPEM, bundlePEM []byte) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("agent certificate: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	kp, err := pki.KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("agent certificate: %w", err)
	}
	var bundle pki.Bundle
	if len(bundlePEM) > 0 {
		if bundle, err = pki.ParseBundle(bundlePEM); err != nil {
			return fmt.Errorf("agent certificate: ca bundle: %w", err)
		}
	}
	if err := os.MkdirAll(ac.dir, 0o700); err != nil {
		return err
	}
	if err := atomicfile.WriteDurable(filepath.Join(ac.dir, agentKeyFile), keyPEM); err != nil {
		return err
	}
	if err := atomicfile.WriteDurable(filepath.Join(ac.dir, agentCertFile), certPEM); err != nil {
		return err
	}
	if bundle != nil {
		if err := atomicfile.WriteDurable(filepath.Join(ac.dir, agentCAFile), bundle.PEM()); err != nil {
			return err
		}
	}
	ac.r.Set(&kp, bundle)
	if f := ac.onBundle.Load(); f != nil && bundle != nil {
		(*f)(bundle.PEM())
	}
	ac.sessions.reset()
	// Idle connections made without it (or with the previous one) are
	// not reused.
	transport.CloseIdleConnections(ac.conf)
	return nil
}

// client returns a client of kernelURL as token over the agent's TLS,
// and a function that releases it: with a private connection pool while
// the agent has no certificate (a connection made without one must not
// carry its later calls). ac nil: the system's roots.
func (ac *agentCert) client(kernelURL, token string) (syscallsv1connect.KernelClient, func()) {
	cl, err := transport.ParseCluster(kernelURL)
	if err != nil {
		return kclient.New(kernelURL, token), func() {}
	}
	if ac == nil {
		return kclient.New(kernelURL, token), func() {}
	}
	cl.WithTLS(ac.conf)
	hc, done := cl.HTTPClient(), func() {}
	if !ac.has() {
		hc = cl.PrivateHTTPClient()
		done = hc.CloseIdleConnections
	}
	return syscallsv1connect.NewKernelClient(hc, cl.URL(), connect.WithInterceptors(kclient.Bearer(token))), done
}

// renew obtains a certificate by CertRenew with token.
func (ac *agentCert) renew(ctx context.Context, kernelURL, token string) error {
	k, done := ac.client(kernelURL, token)
	defer done()
	key, csr, err := ac.request()
	if err != nil {
		return err
	}
	res, err := k.CertRenew(ctx, connect.NewRequest(&pb.CertRenewRequest{Csr: csr}))
	if err != nil {
		return fmt.Errorf("agent certificate: CertRenew: %w", err)
	}
	return ac.install(key, res.Msg.GetCertificate(), res.Msg.GetCaBundle())
}

// ensure gets a certificate by CertRenew unless the agent has one,
// retrying while the kernel is unreachable or busy, until ctx ends.
func (ac *agentCert) ensure(ctx context.Context, kernelURL, token string) error {
	backoff := 100 * time.Millisecond
	for !ac.has() {
		err := ac.renew(ctx, kernelURL, token)
		if err == nil {
			ac.log.Info("agent certificate obtained", "not_after", ac.r.NotAfter())
			return nil
		}
		switch connect.CodeOf(err) {
		case connect.CodeUnavailable, connect.CodeResourceExhausted, connect.CodeDeadlineExceeded, connect.CodeUnknown:
		default:
			return err
		}
		ac.log.Warn("agent certificate: kernel not ready; retrying", "err", err, "in", backoff)
		if !sleepUntil(ctx, backoff) {
			return fmt.Errorf("agent certificate: %w", ctx.Err())
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}

// run renews the certificate at its RenewAt, and at once when the
// cluster's trust bundle changed (sleepOrRotated), until ctx ends,
// retrying with backoff (warning when less than a sixth of its lifetime
// is left).
func (ac *agentCert) run(ctx context.Context, kernelURL, token string) error {
	backoff := time.Second
	for {
		if !ac.sleepOrRotated(ctx, kernelURL, token) {
			return nil
		}
		err := ac.renew(ctx, kernelURL, token)
		if err == nil {
			backoff = time.Second
			ac.log.Debug("agent certificate renewed", "not_after", ac.r.NotAfter())
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		level := slog.LevelInfo
		if c := ac.r.Certificate(); c != nil && time.Until(c.Leaf.NotAfter) < c.Leaf.NotAfter.Sub(c.Leaf.NotBefore)/6 {
			level = slog.LevelWarn
		}
		ac.log.Log(ctx, level, "agent certificate: renewal failed; retrying", "err", err, "in", backoff, "not_after", ac.r.NotAfter())
		if !sleepUntil(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, time.Minute)
	}
}

// startAgentTLS readies the TLS of an agent (dcosd agent) whose data dir
// is dataDir: the pinned trust bundle (agentTrust), its token
// (agentToken, which joins with a CSR) and its certificate (by CertRenew
// when the join gave none). The caller runs ac.run to renew it.
func startAgentTLS(c *cli.Context, log *slog.Logger, kernelURL, given, dataDir string) (ac *agentCert, token string, err error) {
	bundle, err := agentTrust(c.Context, c, kernelURL, dataDir)
	if err != nil {
		return nil, "", err
	}
	if ac, err = newAgentCert(dataDir, bundle, log.With("component", "tls")); err != nil {
		return nil, "", err
	}
	if token, err = agentToken(c.Context, log, kernelURL, given, dataDir, "", ac); err != nil {
		return nil, "", err
	}
	if err := ac.ensure(c.Context, kernelURL, token); err != nil {
		return nil, "", err
	}
	return ac, token, nil
}

// devAgentCert readies the certificate of dcosd dev's agent (data dir
// dir, token token) from the kernel kt it runs beside, and renews it in g.
func devAgentCert(ctx context.Context, g interface{ Go(func() error) }, log *slog.Logger, dir, kernelURL, token string, kt *kernelTLS) (*agentCert, error) {
	ac, err := newAgentCert(dir, kt.state().Bundle, log.With("component", "tls"))
	if err != nil {
		return nil, err
	}
	if err := ac.ensure(ctx, kernelURL, token); err != nil {
		return nil, err
	}
	g.Go(func() error { return ac.run(ctx, kernelURL, token) })
	return ac, nil
}

// caCertFlag is the cluster's CA bundle of a standalone framework (dcosd
// init, dcosd jobs).
var caCertFlag = &cli.StringFlag{Name: "ca-cert", Usage: "the cluster's CA bundle `FILE` the kernels are verified with (a kernel's DATA_DIR/pki/ca.crt; a framework run as a dcos task gets it as $DCOS_CA_FILE; the file is read again when it changes, as the agent rewrites it after a CA rotation)", EnvVars: []string{"DCOS_CA_FILE"}}

// How an agent learns of a CA rotation. A kernel answers the cluster's
// bundle fingerprint with every heartbeat (HeartbeatResponse
// .ca_bundle_fingerprint, from memory); the agent's heartbeat loop hands
// it to caBundle, and run renews the certificate at once when it is not
// the agent's bundle's: within a heartbeat interval (1 s by default) of a
// rotation, with no call of its own. ClusterInfo (which costs the kernel
// store reads) is asked only as a fallback, every caFallbackPoll, while no
// heartbeat brought a fingerprint for that long: a kernel older than the
// field, or heartbeats failing. Against such a kernel a rotation's
// overlap must exceed caFallbackPoll (docs/security.md).
const (
	// caFallbackPoll is the fallback's pace.
	caFallbackPoll = 30 * time.Second
	// rotationGap is the least time between two renewals that a changed
	// fingerprint triggers, so that a kernel whose fingerprint never
	// matches the bundle CertRenew gives cannot make an agent renew on
	// every heartbeat.
	rotationGap = 5 * time.Second
)

// caBundle is agent.Config.OnCABundle: it notes a heartbeat's bundle
// fingerprint and wakes run when it is not the agent's bundle's. It does
// not block.
func (ac *agentCert) caBundle(fingerprint string) {
	if ac == nil || fingerprint == "" {
		return
	}
	ac.heardAt.Store(time.Now().UnixNano())
	ac.heard.Store(&fingerprint)
	if ac.bundleDiffers(fingerprint) {
		select {
		case ac.rotated <- struct{}{}:
		default:
		}
	}
}

// bundleDiffers reports whether fingerprint is not the agent's bundle's.
func (ac *agentCert) bundleDiffers(fingerprint string) bool {
	return fingerprint != (&authority.State{Bundle: ac.r.Bundle()}).Fingerprint()
}

// sleepOrRotated waits until the certificate's RenewAt, or less when the
// cluster's trust bundle is no longer the agent's (a CA rotation, told by
// a heartbeat or, as a fallback, by ClusterInfo); false: ctx ended.
func (ac *agentCert) sleepOrRotated(ctx context.Context, kernelURL, token string) bool {
	for {
		wait := time.Until(ac.r.RenewAt())
		if wait <= 0 {
			return ctx.Err() == nil
		}
		tm := time.NewTimer(min(wait, ac.fallback))
		select {
		case <-ctx.Done():
			tm.Stop()
			return false
		case <-ac.rotated:
			tm.Stop()
			if d := rotationGap - time.Since(ac.rotatedAt); d > 0 && !sleepUntil(ctx, d) {
				return false
			}
			// A signal sent before the last renewal is stale.
			if fp := ac.heard.Load(); fp != nil && ac.bundleDiffers(*fp) {
				ac.rotatedAt = time.Now()
				ac.log.Info("the cluster's CA bundle changed: renewing the agent certificate now")
				return true
			}
			continue
		case <-tm.C:
		}
		if wait <= ac.fallback {
			return true
		}
		if time.Since(time.Unix(0, ac.heardAt.Load())) >= ac.fallback && ac.bundleChanged(ctx, kernelURL, token) {
			ac.rotatedAt = time.Now()
			ac.log.Info("the cluster's CA bundle changed (ClusterInfo): renewing the agent certificate now")
			return true
		}
	}
}

// bundleChanged asks a kernel for the cluster's bundle fingerprint (errors:
// no change; the next poll asks again).
func (ac *agentCert) bundleChanged(ctx context.Context, kernelURL, token string) bool {
	k, done := ac.client(kernelURL, token)
	defer done()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := k.ClusterInfo(cctx, connect.NewRequest(&pb.ClusterInfoRequest{}))
	if err != nil || res.Msg.GetCaBundleFingerprint() == "" {
		return false
	}
	return ac.bundleDiffers(res.Msg.GetCaBundleFingerprint())
}
