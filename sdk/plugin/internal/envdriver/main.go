// Command envdriver is a driver on the SDK's executor that does what a
// careless vendor might: it builds each task's environment from the
// plugin's own (os.Environ()) plus the task's Env. The SDK's tests use it
// to check that the executor still keeps the plugin machinery's variables
// (go-plugin's PLUGIN_*, the host's DCOS_PLUGIN_*) from tasks. It also
// serves exec with the one method a driver on the executor needs.
package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"strings"

	"github.com/dcos-kernel/dcos/sdk/plugin"
)

func main() {
	plugin.RunSupervisorIfAsked()
	dir, err := plugin.StateDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	e, err := plugin.NewExecutor(plugin.ExecutorConfig{StateDir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	plugin.ServeDriver(&driver{Executor: e})
}

type driver struct{ *plugin.Executor }

var _ plugin.ExecDriver = (*driver)(nil)

// ExecTask is all a driver on the executor needs to serve exec.
func (d *driver) ExecTask(ctx context.Context, o *plugin.ExecOptions, io plugin.ExecIO) (*plugin.ExitResult, error) {
	return d.Exec(ctx, o, io)
}

func (d *driver) Capabilities(context.Context) (*plugin.Capabilities, error) {
	return &plugin.Capabilities{SendSignals: true, FSIsolation: plugin.FSIsolationNone, RecoverTasks: true}, nil
}

func (d *driver) Fingerprint(context.Context) (*plugin.Fingerprint, error) {
	return &plugin.Fingerprint{Health: plugin.HealthHealthy, HealthDescription: "ready"}, nil
}

// StartTask starts cfg with the plugin's environment under the task's.
func (d *driver) StartTask(ctx context.Context, cfg *plugin.TaskConfig) (*plugin.TaskHandle, error) {
	c := *cfg
	c.Env = map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		c.Env[k] = v
	}
	maps.Copy(c.Env, cfg.Env)
	return d.Executor.StartTask(ctx, &c)
}
