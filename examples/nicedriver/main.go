package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"strconv"

	"github.com/dcos-kernel/dcos/sdk/plugin"
)

func main() {
	// First: the executor re-executes this binary as its supervisor.
	plugin.RunSupervisorIfAsked()
	d, err := newDriver()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	plugin.ServeDriver(d)
}

// driver is the "nice" task driver. The SDK's executor does the work; the
// driver only runs each task's command under nice(1). Its methods are safe
// for concurrent use.
type driver struct {
	*plugin.Executor
	nice string // nice(1)
}

var _ plugin.Driver = (*driver)(nil)

func newDriver() (*driver, error) {
	dir, err := plugin.StateDir()
	if err != nil {
		return nil, fmt.Errorf("nice driver: %w", err)
	}
	nice, err := exec.LookPath("nice")
	if err != nil {
		return nil, fmt.Errorf("nice driver: %w", err)
	}
	e, err := plugin.NewExecutor(plugin.ExecutorConfig{StateDir: dir})
	if err != nil {
		return nil, fmt.Errorf("nice driver: %w", err)
	}
	return &driver{Executor: e, nice: nice}, nil
}

func (d *driver) Capabilities(context.Context) (*plugin.Capabilities, error) {
	return &plugin.Capabilities{SendSignals: true, FSIsolation: plugin.FSIsolationNone, RecoverTasks: true,
		JoinCgroups: true, JoinNetns: true, Isolation: runtime.GOOS == "linux" && os.Geteuid() == 0}, nil
}

func (d *driver) Fingerprint(context.Context) (*plugin.Fingerprint, error) {
	return &plugin.Fingerprint{Health: plugin.HealthHealthy, HealthDescription: "ready",
		Attributes: map[string]string{"driver.nice.default_nice": strconv.Itoa(defaultNice)}}, nil
}

// StartTask runs the task's command as `nice -n N -- COMMAND ARGS...`, with
// the driver config's env added to the task's (the config's wins).
func (d *driver) StartTask(ctx context.Context, cfg *plugin.TaskConfig) (*plugin.TaskHandle, error) {
	conf, err := parseConfig(cfg.DriverConfig)
	if err != nil {
		return nil, fmt.Errorf("start task %q: %w", cfg.ID, err)
	}
	c := *cfg // the host's config stays as it is
	c.Env = map[string]string{}
	maps.Copy(c.Env, cfg.Env)
	maps.Copy(c.Env, conf.Env)
	path, err := plugin.LookPath(&c) // a missing command fails the start, not nice
	if err != nil {
		return nil, fmt.Errorf("start task %q: %w", cfg.ID, err)
	}
	c.Command, c.Args = d.nice, append([]string{"-n", strconv.Itoa(conf.Nice), "--", path}, cfg.Args...)
	h, err := d.Executor.StartTask(ctx, &c)
	if err != nil {
		return nil, err
	}
	h.Config = cfg
	return h, nil
}
