package daemon

import (
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/internal/seal"
)

// kekFlag is the kernel's key-encryption key file (package seal).
var kekFlag = &cli.StringFlag{Name: "kek-file", Usage: "the cluster's key-encryption key file (mode 0600; default DATA_DIR/kek, created when missing): it seals the CA key and secrets; every kernel of a cluster needs the same file"}

// kernelKeyring loads the KEK file of --kek-file (default
// DATA_DIR/kek), creating it when missing.
func kernelKeyring(c *cli.Context, dataDir string) (*seal.Keyring, error) {
	path := c.String("kek-file")
	if path == "" {
		path = filepath.Join(dataDir, "kek")
	}
	kr, _, err := seal.LoadOrCreate(path)
	if err != nil {
		return nil, fmt.Errorf("--kek-file: %w", err)
	}
	return kr, nil
}
