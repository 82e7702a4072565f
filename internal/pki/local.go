package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/dcos-kernel/dcos/internal/atomicfile"
	"github.com/dcos-kernel/dcos/internal/seal"
)

// Files of a CA directory (DATA_DIR/pki): the trust bundle, first the
// active CA, and the active CA's key sealed under the cluster's KEK.
const (
	BundleFile    = "ca.crt"
	SealedKeyFile = "ca.key.sealed"
)

// DefaultCAValidity is the lifetime of a new cluster CA.
const DefaultCAValidity = 10 * 365 * 24 * time.Hour

// caKeyAAD binds a sealed CA key to its use.
var caKeyAAD = []byte("dcos-ca-key")

// SealKey seals ca's key under kr (what SealedKeyFile and the store hold).
func SealKey(ca *CA, kr *seal.Keyring) ([]byte, error) {
	return kr.Seal(ca.KeyPEM(), caKeyAAD)
}

// OpenCA rebuilds a CA from its certificate PEM and its key sealed by
// SealKey.
func OpenCA(certPEM, sealedKey []byte, kr *seal.Keyring) (*CA, error) {
	keyPEM, err := kr.Open(sealedKey, caKeyAAD)
	if err != nil {
		return nil, fmt.Errorf("pki: open the CA key (is --kek-file this cluster's?): %w", err)
	}
	return ParseCA(certPEM, keyPEM)
}

// LoadLocal reads the CA directory dir: the active CA (the bundle's
// first certificate, with the sealed key) and the whole bundle.
func LoadLocal(dir string, kr *seal.Keyring) (*CA, Bundle, error) {
	bpem, err := os.ReadFile(filepath.Join(dir, BundleFile))
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	bundle, err := ParseBundle(bpem)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %s: %w", filepath.Join(dir, BundleFile), err)
	}
	sk, err := os.ReadFile(filepath.Join(dir, SealedKeyFile))
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	ca, err := OpenCA(EncodeCert(bundle[0].Raw), sk, kr)
	if err != nil {
		return nil, nil, err
	}
	return ca, bundle, nil
}

// SaveLocal writes the CA directory dir (mode 0700, files 0600, each
// durably): bundle (whose first certificate must be ca's) and ca's key
// sealed under kr.
func SaveLocal(dir string, ca *CA, bundle Bundle, kr *seal.Keyring) error {
	if len(bundle) == 0 || !bundle[0].Equal(ca.Cert) {
		return errors.New("pki: save: the bundle must start with the active CA")
	}
	sk, err := SealKey(ca, kr)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := atomicfile.WriteDurable(filepath.Join(dir, SealedKeyFile), sk); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := atomicfile.WriteDurable(filepath.Join(dir, BundleFile), bundle.PEM()); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

// LoadOrCreateLocal loads the CA directory dir, first creating a new
// cluster CA there (valid DefaultCAValidity) when it has none. created
// reports whether it did.
func LoadOrCreateLocal(dir string, kr *seal.Keyring, now time.Time) (ca *CA, bundle Bundle, created bool, err error) {
	ca, bundle, err = LoadLocal(dir, kr)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return ca, bundle, false, err
	}
	if ca, err = NewCA("dcos cluster CA", DefaultCAValidity, now); err != nil {
		return nil, nil, false, err
	}
	bundle = Bundle{ca.Cert}
	if err := SaveLocal(dir, ca, bundle, kr); err != nil {
		return nil, nil, false, err
	}
	return ca, bundle, true, nil
}
