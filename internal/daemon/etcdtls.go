package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/internal/pki"
	"github.com/dcos-kernel/dcos/internal/seal"
	"github.com/dcos-kernel/dcos/internal/store"
)

// etcdTLSFlags configure the kernel's client of an external etcd
// (kube-apiserver's --etcd-cafile, --etcd-certfile, --etcd-keyfile).
var etcdTLSFlags = []cli.Flag{
	&cli.StringFlag{Name: "etcd-cacert", Usage: "CA bundle (PEM) the https:// --etcd-endpoints' certificates are verified against (default: the cluster CA's bundle, PKI_DIR/ca.crt)"},
	&cli.StringFlag{Name: "etcd-cert", Usage: "client certificate (PEM) the kernel presents to https:// --etcd-endpoints, with --etcd-key; re-read when the files change (default: the kernel issues itself one from the cluster CA in --pki-dir and renews it)"},
	&cli.StringFlag{Name: "etcd-key", Usage: "private key (PEM) of --etcd-cert"},
}

// defaultEtcdCertValidity is the lifetime of the etcd certificates a
// kernel issues itself (its client certificate for an external etcd, the
// embedded etcd's member certificate) unless --cert-validity says
// otherwise. They are renewed when two thirds of it have passed.
const defaultEtcdCertValidity = 24 * time.Hour

// etcdCertReload is how often --etcd-cert, --etcd-key and --etcd-cacert
// are checked for a new content.
var etcdCertReload = 30 * time.Second

// etcdCertValidity is --cert-validity when the kernel has such a flag and
// it is set, else defaultEtcdCertValidity.
func etcdCertValidity(c *cli.Context) time.Duration {
	if d := c.Duration("cert-validity"); d > 0 {
		return d
	}
	return defaultEtcdCertValidity
}

// embeddedEtcdTLS is the embedded etcd's TLS: the cluster CA ca (of
// --pki-dir, clusterCA) issues its member certificate, written to
// PKI_DIR/etcd.
func embeddedEtcdTLS(c *cli.Context, dataDir string, ca *pki.CA, bundle pki.Bundle) *store.EmbeddedTLS {
	return &store.EmbeddedTLS{CA: ca, Bundle: bundle, Dir: filepath.Join(pkiDir(c, dataDir), "etcd"), Validity: etcdCertValidity(c)}
}

// etcdClientTLS returns the TLS configuration of the kernel's client of
// the external etcd at endpoints: nil when they are http://; else a
// client certificate from --etcd-cert/--etcd-key (re-read when they
// change) or, without them, one the kernel issues itself from the
// cluster CA in --pki-dir (renewed at pki.RenewAt), and the server
// verified against --etcd-cacert or the cluster CA's bundle. The
// renewals run until ctx ends.
func etcdClientTLS(ctx context.Context, c *cli.Context, log *slog.Logger, dataDir string, endpoints []string) (*tls.Config, error) {
	secure, err := etcdSecure(endpoints)
	if err != nil {
		return nil, err
	}
	certFile, keyFile, caFile := c.String("etcd-cert"), c.String("etcd-key"), c.String("etcd-cacert")
	if !secure {
		for _, f := range []string{"etcd-cert", "etcd-key", "etcd-cacert"} {
			if c.String(f) != "" {
				return nil, fmt.Errorf("--%s: the --etcd-endpoints are http://; give https:// endpoints to use TLS", f)
			}
		}
		return nil, nil
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("--etcd-cert and --etcd-key go together: give both or neither")
	}
	dir := pkiDir(c, dataDir)
	var bundle pki.Bundle
	if caFile != "" {
		if bundle, err = readBundle(caFile); err != nil {
			return nil, fmt.Errorf("--etcd-cacert: %w", err)
		}
	}
	if certFile != "" {
		if bundle == nil {
			if bundle, err = readBundle(filepath.Join(dir, pki.BundleFile)); err != nil {
				return nil, fmt.Errorf("--etcd-cert: no CA to verify etcd with: give --etcd-cacert or a --pki-dir holding the cluster CA (%w)", err)
			}
		}
		kp, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cert/--etcd-key: %w", err)
		}
		r := pki.NewReloader(&kp, bundle)
		go reloadEtcdFiles(ctx, log, r, certFile, keyFile, caFile)
		return r.ClientConfig(""), nil
	}
	noCert := fmt.Errorf("--etcd-endpoints %s: no client certificate: give --etcd-cert/--etcd-key or a --pki-dir holding the cluster CA", strings.Join(endpoints, ","))
	kr, err := seal.LoadKeyring(kekPath(c, dataDir))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w (no --kek-file %s)", noCert, kekPath(c, dataDir))
		}
		return nil, fmt.Errorf("--kek-file: %w", err)
	}
	ca, own, err := pki.LoadLocal(dir, kr)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w (%v)", noCert, err)
		}
		return nil, fmt.Errorf("--pki-dir %s: %w", dir, err)
	}
	if bundle == nil {
		bundle = own
	}
	name, _ := os.Hostname()
	issue := func() (*tls.Certificate, error) {
		kp, _, _, err := ca.Issue(pki.Leaf{CommonName: "kernel " + name, Identity: pki.KernelIdentity(name), Client: true, Validity: etcdCertValidity(c)}, time.Now())
		return &kp, err
	}
	kp, err := issue()
	if err != nil {
		return nil, fmt.Errorf("etcd client certificate: %w", err)
	}
	r := pki.NewReloader(kp, bundle)
	go renewEtcdCert(ctx, log, r, issue)
	return r.ClientConfig(""), nil
}

// etcdSecure reports whether the endpoints are https:// (all of them);
// a mix of https:// and others is an error.
func etcdSecure(endpoints []string) (bool, error) {
	n := 0
	for _, ep := range endpoints {
		if strings.HasPrefix(ep, "https://") {
			n++
		}
	}
	if n > 0 && n < len(endpoints) {
		return false, fmt.Errorf("--etcd-endpoints %s: some are https:// and some not: use https:// for all", strings.Join(endpoints, ","))
	}
	return n > 0, nil
}

func readBundle(path string) (pki.Bundle, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	bundle, err := pki.ParseBundle(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return bundle, nil
}

// renewEtcdCert reissues r's certificate at its pki.RenewAt (retrying a
// failure every 10 s) until ctx ends.
func renewEtcdCert(ctx context.Context, log *slog.Logger, r *pki.Reloader, issue func() (*tls.Certificate, error)) {
	for {
		wait := time.Until(r.RenewAt())
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		kp, err := issue()
		if err != nil {
			log.Error("etcd client certificate: renewal failed; retrying in 10s", "err", err, "expires", r.NotAfter())
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Second):
			}
			continue
		}
		r.Set(kp, nil)
	}
}

// reloadEtcdFiles re-reads the --etcd-cert, --etcd-key and --etcd-cacert
// files every etcdCertReload and hands a changed, valid pair (or bundle)
// to r, until ctx ends; a broken file is logged and the old kept.
func reloadEtcdFiles(ctx context.Context, log *slog.Logger, r *pki.Reloader, certFile, keyFile, caFile string) {
	read := func() (cert, key, ca []byte) {
		cert, _ = os.ReadFile(certFile)
		key, _ = os.ReadFile(keyFile)
		if caFile != "" {
			ca, _ = os.ReadFile(caFile)
		}
		return
	}
	cert, key, ca := read()
	t := time.NewTicker(etcdCertReload)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		nc, nk, nca := read()
		if !bytes.Equal(nc, cert) || !bytes.Equal(nk, key) {
			kp, err := pki.KeyPair(nc, nk)
			if err != nil {
				log.Warn("--etcd-cert/--etcd-key changed but do not load; keeping the old pair", "err", err)
			} else {
				r.Set(&kp, nil)
				cert, key = nc, nk
				log.Info("etcd client certificate reloaded", "expires", kp.Leaf.NotAfter)
			}
		}
		if !bytes.Equal(nca, ca) {
			b, err := pki.ParseBundle(nca)
			if err != nil {
				log.Warn("--etcd-cacert changed but does not parse; keeping the old bundle", "err", err)
			} else {
				r.Set(nil, b)
				ca = nca
			}
		}
	}
}
