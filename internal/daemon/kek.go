package daemon

import (
	"path/filepath"

	"github.com/urfave/cli/v2"

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

// kernelKeyring loads the KEK file (--kek-file), creating it with a new
// key when it does not exist: a kernel that bootstraps a new cluster (and
// dcosd dev) makes it; the kernels that join must be given its copy.
func kernelKeyring(c *cli.Context, dataDir string) (*seal.Keyring, error) {
	kr, _, err := seal.LoadOrCreate(kekPath(c, dataDir))
	return kr, err
}
