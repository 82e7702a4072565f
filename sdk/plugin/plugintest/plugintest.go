package plugintest

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/dcos-kernel/dcos/plugins/contract"
	sdkplugin "github.com/dcos-kernel/dcos/sdk/plugin"
)

// Options configure how a plugin is started. The zero value is the agent's
// default: checksum the binary as it is now and require it.
type Options struct {
	// SHA256 is the checksum the binary must have (SecureConfig), as a
	// plugin catalog registers it. Nil means the checksum of the file at
	// start.
	SHA256 []byte
	// Args are the plugin's command-line arguments.
	Args []string
	// Env is added to the plugin's environment.
	Env []string
	// StateDir, if set, is the plugin's state directory, passed in
	// sdkplugin.StateDirEnv as the agent does. Start a plugin again with
	// the same StateDir to test RecoverTask after a restart.
	StateDir string
	// Logger receives the host's and the plugin's log lines. Nil logs
	// warnings and errors to stderr.
	Logger hclog.Logger
	// StartTimeout bounds the handshake; zero means 10s.
	StartTimeout time.Duration
}

// Plugin is a started plugin process.
type Plugin struct {
	// Path is the plugin binary.
	Path string
	// Client is the go-plugin client of the process.
	Client *goplugin.Client
}

// Exited reports whether the plugin process has exited.
func (p *Plugin) Exited() bool { return p.Client.Exited() }

// Pid returns the plugin process's pid, or 0 if it is not running.
func (p *Plugin) Pid() int {
	if rc := p.Client.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

// Kill asks the plugin to shut down, kills it after a grace period, and
// waits for it to exit. It is idempotent.
func (p *Plugin) Kill() { p.Client.Kill() }

// Driver is a started driver plugin and its typed client.
type Driver struct {
	sdkplugin.Driver
	*Plugin
}

// Isolator is a started isolator plugin and its typed client.
type Isolator struct {
	sdkplugin.Isolator
	*Plugin
}

// SHA256File returns the sha256 of the file at path, the checksum a plugin
// catalog registers for a plugin binary.
func SHA256File(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checksum: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("checksum %s: %w", path, err)
	}
	return h.Sum(nil), nil
}

// Start starts the plugin binary at path and dispenses its contract of kind
// ("driver" or "isolator"): a sdkplugin.Driver or a sdkplugin.Isolator. A
// binary whose checksum differs from opts.SHA256 is refused, as is a plugin
// with no protocol version in common with this host; the errors say so and
// wrap plugin.ErrChecksumsDoNotMatch or contract.ErrIncompatibleVersion. On
// error the process is not left running. The caller must Kill the returned
// Plugin.
func Start(path, kind string, opts Options) (*Plugin, any, error) {
	sum := opts.SHA256
	if sum == nil {
		var err error
		if sum, err = SHA256File(path); err != nil {
			return nil, nil, err
		}
	}
	logger := opts.Logger
	if logger == nil {
		logger = hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: hclog.Warn, Output: os.Stderr})
	}
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	cmd := exec.Command(path, opts.Args...)
	cmd.Env = append(os.Environ(), opts.Env...)
	if opts.StateDir != "" {
		cmd.Env = append(cmd.Env, sdkplugin.StateDirEnv+"="+opts.StateDir)
	}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  contract.Handshake,
		VersionedPlugins: contract.HostPlugins(),
		Cmd:              cmd,
		SecureConfig:     &goplugin.SecureConfig{Checksum: sum, Hash: sha256.New()},
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     timeout,
		Logger:           logger,
	})
	raw, err := contract.Dispense(client, path, kind)
	if err != nil {
		client.Kill()
		return nil, nil, err
	}
	return &Plugin{Path: path, Client: client}, raw, nil
}

// StartDriver starts the driver plugin at path and returns its client. It
// fails tb if the plugin cannot be started and kills the plugin when tb
// ends.
func StartDriver(tb testing.TB, path string, opts Options) *Driver {
	tb.Helper()
	p, raw, err := Start(path, contract.KindDriver, opts)
	if err != nil {
		tb.Fatalf("start driver: %v", err)
	}
	tb.Cleanup(p.Kill)
	d, ok := raw.(sdkplugin.Driver)
	if !ok {
		tb.Fatalf("start driver %s: dispensed %T, not a driver", path, raw)
	}
	return &Driver{Driver: d, Plugin: p}
}

// StartIsolator starts the isolator plugin at path and returns its client, as
// StartDriver does.
func StartIsolator(tb testing.TB, path string, opts Options) *Isolator {
	tb.Helper()
	p, raw, err := Start(path, contract.KindIsolator, opts)
	if err != nil {
		tb.Fatalf("start isolator: %v", err)
	}
	tb.Cleanup(p.Kill)
	i, ok := raw.(sdkplugin.Isolator)
	if !ok {
		tb.Fatalf("start isolator %s: dispensed %T, not an isolator", path, raw)
	}
	return &Isolator{Isolator: i, Plugin: p}
}

// Build compiles the main package pkg (an import path or a directory, as
// `go build` takes it) into dir and returns the binary's path. Call it from
// TestMain to test a plugin built from source.
func Build(dir, pkg string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}
