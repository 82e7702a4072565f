package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dcos-kernel/dcos/internal/pki"
	"github.com/dcos-kernel/dcos/internal/seal"
)

// kekFlags name the cluster's key-encryption key and CA directory. Every
// kernel of a cluster needs the same KEK file (never in etcd).
var kekFlags = []cli.Flag{
	&cli.StringFlag{Name: "kek-file", Usage: "the cluster's key-encryption key: a root-only file every kernel of the cluster holds, never stored in etcd (default DATA_DIR/kek; created with a new cluster)"},
	&cli.StringFlag{Name: "pki-dir", Usage: "the cluster CA's directory: ca.crt, the trust bundle, and ca.key.sealed, the CA key sealed under the KEK (default DATA_DIR/pki; dcosd ca init makes one)"},
}

// kekPath is --kek-file, default DATA_DIR/kek.
func kekPath(c *cli.Context, dataDir string) string {
	if p := c.String("kek-file"); p != "" {
		return p
	}
	return filepath.Join(dataDir, "kek")
}

// pkiDir is --pki-dir, default DATA_DIR/pki.
func pkiDir(c *cli.Context, dataDir string) string {
	if p := c.String("pki-dir"); p != "" {
		return p
	}
	return filepath.Join(dataDir, "pki")
}

// kernelKeyring loads the KEK file (--kek-file, default dataDir/kek),
// creating it with a new random key when it does not exist, and logs
// that it did: a kernel joining an existing cluster must be given the
// cluster's file instead, or it cannot open what the others sealed
// (checkKEK says so).
func kernelKeyring(c *cli.Context, dataDir string) (*seal.Keyring, error) {
	path := kekPath(c, dataDir)
	r, created, err := seal.LoadOrCreate(path)
	if err != nil {
		return nil, fmt.Errorf("--kek-file %s: %w", path, err)
	}
	if created {
		logger(c).Info("created a new key-encryption key; every kernel of this cluster needs a copy of this file (mode 0600)", "kek_file", path)
	}
	return r, nil
}

// kekCanaryKey is where the cluster's KEK canary lives under the prefix.
const kekCanaryKey = "kek-canary"

// checkKEK checks that kek is the cluster's: the first kernel to start
// stores a canary value sealed under its KEK (<prefix>kek-canary, written
// once); every kernel after opens it. A kernel whose file cannot open
// it would fail to open the secrets the others sealed: it is logged as an
// error naming the file (not fatal yet, so that kernels started without
// a shared --kek-file still serve what needs no secret).
func checkKEK(ctx context.Context, log *slog.Logger, cli3 *clientv3.Client, prefix, path string, kek *seal.Keyring) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if prefix == "" {
		prefix = "/dcos/" // as store.New
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	key := prefix + kekCanaryKey
	canary, err := kek.Seal([]byte("dcos key-encryption key canary"), []byte(key))
	if err != nil {
		log.Error("key-encryption key: seal the canary", "err", err)
		return
	}
	resp, err := cli3.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(canary))).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		log.Warn("key-encryption key: the cluster's canary could not be checked", "err", err)
		return
	}
	if resp.Succeeded {
		return
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return
	}
	if _, err := kek.Open(kvs[0].Value, []byte(key)); err != nil {
		log.Error("--kek-file is not this cluster's key-encryption key: secrets other kernels sealed will not open here; give every kernel the same file", "kek_file", path, "err", err)
	}
}

// clusterCA loads the CA directory (--pki-dir), first creating a new
// cluster CA there sealed under kr when it has none, and says so in log.
func clusterCA(c *cli.Context, log *slog.Logger, dataDir string, kr *seal.Keyring) (*pki.CA, pki.Bundle, error) {
	dir := pkiDir(c, dataDir)
	ca, bundle, created, err := pki.LoadOrCreateLocal(dir, kr, time.Now())
	if err != nil {
		return nil, nil, fmt.Errorf("--pki-dir %s: %w", dir, err)
	}
	if created {
		log.Info("cluster CA created", "pki_dir", dir, "fingerprint", "sha256:"+ca.ID())
	}
	return ca, bundle, nil
}
