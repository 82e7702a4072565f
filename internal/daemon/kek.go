package daemon

import (
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/internal/seal"
)

// kekFlags name the cluster's key-encryption key and CA directory. Every
// kernel of a cluster needs the same KEK file (never in etcd) and CA
// directory. (The same names and helpers as the etcd helper's kek.go:
// when both are merged, keep that one.)
var kekFlags = []cli.Flag{
	&cli.StringFlag{Name: "kek-file", Usage: "the cluster's key-encryption key: a root-only file every kernel of the cluster holds, never stored in etcd (default DATA_DIR/kek; created with a new cluster)"},
	&cli.StringFlag{Name: "pki-dir", Usage: "the cluster CA's directory: ca.crt, the trust bundle, and ca.key.sealed, the CA key sealed under the KEK (default DATA_DIR/pki; created with a new CA when missing)"},
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
// creating it with a new random key when it does not exist.
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
