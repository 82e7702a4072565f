package agent

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// EnvCAFile is the task environment variable naming the cluster's trust
// bundle (PEM) in the task's sandbox, which the agent writes there when
// it has one (Config.CABundle): a framework launched as a task (an MPI
// launcher, a Dask client) reaches the kernel over TLS with it, beside
// DCOS_KERNEL and DCOS_TOKEN. The SDK's framework.Config reads it.
const EnvCAFile = "DCOS_CA_FILE"

// caFileName is the bundle's file in a task's sandbox.
const caFileName = ".dcos-ca.crt"

// giveCABundle writes the cluster's trust bundle into the task's sandbox
// (mode 0644: it is public) and names it in the task's environment,
// unless the agent has no bundle or the task sets DCOS_CA_FILE itself.
func (a *Agent) giveCABundle(cfg *contract.TaskConfig, sandbox string) error {
	a.caMu.Lock()
	bundle := a.caBundle
	a.caMu.Unlock()
	if len(bundle) == 0 {
		return nil
	}
	if _, set := cfg.Env[EnvCAFile]; set {
		return nil
	}
	path := filepath.Join(sandbox, caFileName)
	if err := os.WriteFile(path, bundle, 0o644); err != nil {
		return fmt.Errorf("sandbox: CA bundle: %w", err)
	}
	if cfg.Env == nil {
		cfg.Env = map[string]string{}
	}
	cfg.Env[EnvCAFile] = path
	return nil
}

// SetCABundle replaces the cluster's trust bundle the agent gives tasks
// (after a CA rotation: the agent's certificate loop calls it with the
// bundle it renewed against). Tasks launched from then on get it, and
// the bundle file of every running task the agent gave one is replaced
// at once, so that a framework running as a task still reaches the
// kernel once the old CA is retired (it must read the file again when it
// connects; the SDK does). The file is replaced by a rename, never
// written through: a task that turned it into a symlink only loses its
// link. Safe for concurrent use.
func (a *Agent) SetCABundle(pem []byte) {
	if len(pem) == 0 {
		return
	}
	a.caMu.Lock()
	defer a.caMu.Unlock()
	if bytes.Equal(pem, a.caBundle) {
		return
	}
	a.caBundle = bytes.Clone(pem)
	a.mu.Lock()
	sandboxes := make([]string, 0, len(a.tasks))
	for _, t := range a.tasks {
		if t.sandbox != "" {
			sandboxes = append(sandboxes, t.sandbox)
		}
	}
	a.mu.Unlock()
	n := 0
	for _, sb := range sandboxes {
		path := filepath.Join(sb, caFileName)
		if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
			continue // the task named its own bundle, or removed ours
		}
		if err := replaceFile(path, a.caBundle, 0o644); err != nil {
			a.log.Warn("cannot give a running task the new CA bundle", "file", path, "err", err)
			continue
		}
		n++
	}
	a.log.Info("cluster CA bundle changed: running tasks' bundle files replaced", "tasks", n)
}

// replaceFile writes b to a new file beside path and renames it over
// path.
func replaceFile(path string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".dcos-ca-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
