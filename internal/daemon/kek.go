package daemon

import (
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/internal/seal"
)

// kekFlag is the kernel's key-encryption key file (internal/seal): tasks'
// secret environment and secret framework state are sealed under it.
var kekFlag = &cli.StringFlag{Name: "kek-file", Usage: "key-encryption key file that seals secrets (tasks' secret_env, secret state) in etcd, mode 0600; every kernel of a cluster needs the same file (default DATA_DIR/kek, created with a new key when missing)"}

// kernelKeyring loads the KEK file (--kek-file, default dataDir/kek),
// creating it with a new random key when it does not exist, and logs
// that it did: a kernel joining an existing cluster must be given the
// cluster's file instead, or it cannot open what the others sealed.
func kernelKeyring(c *cli.Context, dataDir string) (*seal.Keyring, error) {
	path := c.String("kek-file")
	if path == "" {
		path = filepath.Join(dataDir, "kek")
	}
	r, created, err := seal.LoadOrCreate(path)
	if err != nil {
		return nil, fmt.Errorf("--kek-file %s: %w", path, err)
	}
	if created {
		logger(c).Info("created a new key-encryption key; every kernel of this cluster needs a copy of this file (mode 0600)", "kek_file", path)
	}
	return r, nil
}
