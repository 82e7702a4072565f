package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/plugins/policies"
	"github.com/dcos-kernel/dcos/plugins/wasm"
)

// wasmLoader adapts the wasm host to the kernel's PolicyLoader. The
// built-in modules (exactly the bytes shipped in dcosd, under their own
// name) load as trusted: no per-loop deadline checks; anything else an
// operator loads is interruptible at its deadline.
type wasmLoader struct {
	h       *wasm.Host
	builtin map[string][]byte
}

func (l wasmLoader) Load(ctx context.Context, name string, b []byte) (kernel.LoadedPolicy, error) {
	load := l.h.Load
	if shipped, ok := l.builtin[name]; ok && bytes.Equal(shipped, b) {
		load = l.h.LoadTrusted
	}
	p, err := load(ctx, name, b)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// builtins returns the policy modules embedded in dcosd.
func builtins() map[string][]byte {
	m := map[string][]byte{}
	for _, n := range policies.Names() {
		b, _ := policies.Builtin(n)
		m[n] = b
	}
	return m
}

// defaultCacheDir is where compiled policies are cached across restarts:
// $XDG_CACHE_HOME/dcos/wasm (wazero's cache is keyed by module and engine
// version, and written atomically, so processes may share it).
func defaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "dcos", "wasm")
	}
	return ""
}

// newPolicyHost starts the policy host. A cache dir that cannot be used
// (e.g. a default under another user's home) is not fatal: policies are
// then compiled at every start, and the log says so.
func newPolicyHost(ctx context.Context, cacheDir string, log *slog.Logger) (*wasm.Host, error) {
	log = log.With("component", "policy")
	h, err := wasm.NewHost(ctx, wasm.HostConfig{CacheDir: cacheDir, Logger: log})
	if err != nil && cacheDir != "" {
		log.Warn("policy compilation cache unusable; compiling policies at every start", "dir", cacheDir, "err", err)
		return wasm.NewHost(ctx, wasm.HostConfig{Logger: log})
	}
	return h, err
}
