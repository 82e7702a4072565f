package agent

import (
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
	if len(a.caBundle) == 0 {
		return nil
	}
	if _, set := cfg.Env[EnvCAFile]; set {
		return nil
	}
	path := filepath.Join(sandbox, caFileName)
	if err := os.WriteFile(path, a.caBundle, 0o644); err != nil {
		return fmt.Errorf("sandbox: CA bundle: %w", err)
	}
	if cfg.Env == nil {
		cfg.Env = map[string]string{}
	}
	cfg.Env[EnvCAFile] = path
	return nil
}
