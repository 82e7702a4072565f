package host

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// Defaults of Config.
const (
	DefaultMinBackoff = 200 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	// CatalogFile is the catalog's file name in Config.Dir when
	// Config.Catalog is empty.
	CatalogFile = "SHA256SUMS"
	// StateDirEnv names the environment variable that gives a plugin its own
	// state directory, <Config.StateDir>/<kind>-<name>. The process of a
	// built-in Group gets MemberStateDirEnv variables instead.
	StateDirEnv = "DCOS_PLUGIN_STATE_DIR"
)

// MemberStateDirEnv returns the name of the environment variable that gives
// the member kind/name of a built-in Group its own state directory,
// <Config.StateDir>/<kind>-<name>, in the process the group shares:
// DCOS_PLUGIN_STATE_DIR_<KIND>_<NAME>, upper-cased, '-' in name as '_'
// (e.g. DCOS_PLUGIN_STATE_DIR_DRIVER_EXEC).
func MemberStateDirEnv(kind, name string) string {
	return StateDirEnv + "_" + strings.ToUpper(kind) + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// stableAfter is how long a plugin must stay up for its restart backoff to
// start again from MinBackoff.
const stableAfter = 60 * time.Second

// startTimeout bounds a plugin's handshake.
const startTimeout = 30 * time.Second

// Config configures a Host.
type Config struct {
	// Dir is the plugin directory, searched for executables named
	// dcos-<kind>-<name>, kind being one of driver, isolator, net and
	// storage (contract.KindDriver, KindIsolator, KindNet, KindStorage),
	// e.g. dcos-net-bridge. Empty means no discovered plugins, only
	// Builtins.
	Dir string
	// Catalog is the sha256sum-format file listing the checksums of the
	// plugins allowed to run; empty means <Dir>/SHA256SUMS. A missing file
	// is an empty catalog.
	Catalog string
	// StateDir holds one directory per plugin, <StateDir>/<kind>-<name>
	// (created 0700), passed to the plugin in DCOS_PLUGIN_STATE_DIR (to a
	// member of a built-in Group, in MemberStateDirEnv). Required.
	StateDir string
	// Builtins are plugins served by the dcosd binary itself.
	Builtins []Builtin
	// Logger receives the host's events and the plugins' log lines, each
	// with the attribute plugin=<kind>/<name>. Nil means slog.Default().
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the delay before a crashed plugin is
	// restarted; it doubles after each failed restart and starts again from
	// MinBackoff once the plugin stayed up 60s. Zero means 200ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// OnRestart, if set, is called after a plugin was restarted and is up
	// again (not after its first start), so that the agent can recover the
	// plugin's tasks. It is called from its own goroutine, one call at a
	// time per plugin, and may call the plugin through its proxy. When the
	// process of a built-in Group restarts, it is called once for each
	// member, concurrently.
	OnRestart func(kind, name string)
}

// Builtin is a plugin served by the dcosd binary itself.
//
// Built-ins with the same non-empty Group share one process, started by
// their common Cmd and serving every member's kind from one plugin set
// (contract.ServeConfigMulti), so a group has at most one member of each
// kind: at most a driver, an isolator, a net driver and a storage driver.
// Each member keeps its own name, proxy, state directory and Status row;
// the rows share the process's PID, health, restarts, protocol and last
// error. The host supervises the process, not the members: a crash
// restarts it once, then OnRestart is called for every member; a refusal at
// start refuses every member. A group's process gets its members' state
// directories in MemberStateDirEnv variables, not in StateDirEnv (also a
// group of one member).
type Builtin struct {
	// Name is the plugin's name, e.g. "exec".
	Name string
	// Kind is contract.KindDriver, KindIsolator, KindNet or KindStorage.
	Kind string
	// Cmd is the command that serves the plugin, e.g.
	// {"/usr/bin/dcosd", "plugin", "builtin"}. Cmd[0] must be an absolute
	// path; its sha256 is taken in New and required at every start. The
	// members of a Group must have the same Cmd.
	Cmd []string
	// Group, if not empty, names the process the built-in shares with the
	// other built-ins of the same Group. Empty: a process of its own.
	Group string
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// validName reports whether name is a valid plugin name.
func validName(name string) bool { return nameRE.MatchString(name) }

// kinds are the plugin kinds the host runs.
var kinds = []string{contract.KindDriver, contract.KindIsolator, contract.KindNet, contract.KindStorage}

// validKind reports whether kind is a plugin kind the host runs.
func validKind(kind string) bool { return slices.Contains(kinds, kind) }

// withDefaults validates cfg and returns it with the defaults filled in.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.StateDir == "" {
		return cfg, errors.New("plugin host: no state directory (Config.StateDir)")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MinBackoff < 0 || cfg.MaxBackoff < cfg.MinBackoff {
		return cfg, fmt.Errorf("plugin host: backoff: want 0 < MinBackoff (%s) <= MaxBackoff (%s)", cfg.MinBackoff, cfg.MaxBackoff)
	}
	if cfg.Catalog == "" && cfg.Dir != "" {
		cfg.Catalog = filepath.Join(cfg.Dir, CatalogFile)
	}
	var err error
	if cfg.Dir != "" {
		if cfg.Dir, err = filepath.Abs(cfg.Dir); err != nil {
			return cfg, fmt.Errorf("plugin host: %w", err)
		}
	}
	if cfg.StateDir, err = filepath.Abs(cfg.StateDir); err != nil {
		return cfg, fmt.Errorf("plugin host: %w", err)
	}
	return cfg, nil
}

// sha256File returns the sha256 of the file at path.
func sha256File(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("checksum %s: %w", path, err)
	}
	return h.Sum(nil), nil
}

func hexSum(sum []byte) string { return hex.EncodeToString(sum) }
