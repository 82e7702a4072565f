package clientconfig

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dcos-kernel/dcos/internal/atomicfile"
	"github.com/dcos-kernel/dcos/sdk/transport"
)

// Config is what a client needs to reach a kernel.
type Config struct {
	// Kernel is the kernel's base URL, e.g. "http://127.0.0.1:7070", or
	// the base URLs of a cluster's kernels separated by commas
	// ("http://10.0.0.1:7070,http://10.0.0.2:7070"; see NormalizeKernels).
	Kernel string `json:"kernel"`
	// Token is the bearer token sent with every call.
	Token string `json:"token"`
	// CA is the cluster's trust bundle in PEM (the CA certificates the
	// kernels' certificates chain to), pinned by dcosctl login and
	// written by dcosd dev; empty: the system's roots.
	CA string `json:"ca,omitempty"`
	// CACheckedAt is when dcosctl last compared CA with the bundle the
	// kernels trust (ClusterInfo.ca_bundle_fingerprint), at most every
	// CACheckInterval (see docs/security.md, "Rotating the CA"); zero:
	// never.
	CACheckedAt time.Time `json:"ca_checked_at,omitzero"`
}

// CACheckInterval is how often, at most, dcosctl compares a config's CA
// with the cluster's bundle (and always after "dcosctl ca rotate"): far
// shorter than a rotation's default overlap (1 h), so that a config in
// use during the overlap follows the rotation.
const CACheckInterval = 10 * time.Minute

// CAFingerprint is the hex SHA-256 of c.CA, as the kernels fingerprint
// the cluster's bundle (ClusterInfo.ca_bundle_fingerprint); "" when c
// has no CA.
func (c Config) CAFingerprint() string {
	if c.CA == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(c.CA))
	return hex.EncodeToString(sum[:])
}

// CACheckDue reports whether c's CA is to be compared with the
// cluster's bundle at now: never checked, checked CACheckInterval ago or
// more, or at a time after now (a clock set back).
func (c Config) CACheckDue(now time.Time) bool {
	return c.CACheckedAt.IsZero() || now.Sub(c.CACheckedAt) >= CACheckInterval || now.Before(c.CACheckedAt)
}

// TLS returns the TLS configuration of clients of c: trusting c.CA, or
// nil (the system's roots) when c has none.
func (c Config) TLS() (*tls.Config, error) {
	if c.CA == "" {
		return nil, nil
	}
	conf, err := transport.TLSConfig([]byte(c.CA))
	if err != nil {
		return nil, fmt.Errorf("client config: ca: %w", err)
	}
	return conf, nil
}

// DefaultPath is where dcosctl looks when neither --config nor DCOS_CONFIG
// is given: $XDG_CONFIG_HOME/dcos/config.json, else ~/.config/dcos/config.json.
func DefaultPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("client config: %w", err)
	}
	return filepath.Join(dir, "dcos", "config.json"), nil
}

// Load reads the config at path. A missing file is an error wrapping
// fs.ErrNotExist.
func Load(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("client config: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("client config %s: %w", path, err)
	}
	if c.Kernel == "" {
		return c, errors.New("client config " + path + ": no kernel address")
	}
	return c, nil
}

// Save writes c to path atomically with mode 0600 (it holds a token),
// creating the directory if needed.
func Save(path string, c Config) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("client config: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("client config: %w", err)
	}
	if err := atomicfile.Write(path, append(b, '\n')); err != nil {
		return fmt.Errorf("client config: %w", err)
	}
	return nil
}

// NormalizeKernels checks a comma-separated list of kernel addresses
// ("10.0.0.1", "kernel-2:7070", "https://k3:443/") and returns it with
// each as a base URL, scheme://host:port: https:// when no scheme is given,
// port transport.DefaultPort when none is, no trailing slash
// (transport.ParseCluster, the one reader of kernel addresses). Empty
// entries, paths, and schemes other than http and https are errors naming
// the entry; duplicates are dropped.
func NormalizeKernels(list string) (string, error) {
	cl, err := transport.ParseCluster(list)
	if err != nil {
		return "", err
	}
	return cl.String(), nil
}
