package execdriver

import (
	"context"
	"os"
	"runtime"

	"github.com/dcos-kernel/dcos/internal/executor"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

// Version is the driver's version attribute ("driver.exec.version").
const Version = "1"

// Config configures a Driver: StateDir is the driver's own directory
// (supervisor socket, lock, log, exit records), SupervisorCmd the argv that
// starts the supervisor process, which calls SupervisorMain(StateDir), e.g.
// {"/path/dcosd", "supervisor", "--state-dir", DIR}; Logger may be nil.
// See executor.Config.
type Config = executor.Config

// Driver is the exec task driver: the executor's task methods (see
// executor.Executor: StartTask, WaitTask, StopTask, DestroyTask,
// InspectTask, TaskStats, SignalTask, RecoverTask, Close), ExecTask, and
// the exec driver's Capabilities and Fingerprint. Create it with New; its methods
// are safe for concurrent use.
type Driver struct {
	*executor.Executor
	cfg Config
}

var _ contract.ExecDriver = (*Driver)(nil)

// ExecTask implements contract.ExecDriver: see executor.Executor.Exec (the
// command runs inside the task as the task runs, started by its
// supervisor).
func (d *Driver) ExecTask(ctx context.Context, opts *contract.ExecOptions, eio contract.ExecIO) (*contract.ExitResult, error) {
	return d.Exec(ctx, opts, eio)
}

// New returns a driver for cfg. It creates StateDir but neither starts nor
// contacts the supervisor: that happens on the first StartTask (or
// RecoverTask, which only connects to a running one).
func New(cfg Config) (*Driver, error) {
	e, err := executor.New(cfg)
	if err != nil {
		return nil, err
	}
	return &Driver{Executor: e, cfg: cfg}, nil
}

// Capabilities implements contract.Driver.
func (d *Driver) Capabilities(context.Context) (*contract.Capabilities, error) {
	return &contract.Capabilities{SendSignals: true, FSIsolation: contract.FSIsolationNone,
		RecoverTasks: true, JoinCgroups: true, JoinNetns: true,
		Isolation: runtime.GOOS == "linux" && os.Geteuid() == 0}, nil
}

// Fingerprint implements contract.Driver: healthy on Linux, undetected
// elsewhere.
func (d *Driver) Fingerprint(context.Context) (*contract.Fingerprint, error) {
	if runtime.GOOS != "linux" {
		return &contract.Fingerprint{Health: contract.HealthUndetected, HealthDescription: "exec driver needs Linux"}, nil
	}
	return &contract.Fingerprint{Health: contract.HealthHealthy, HealthDescription: "ready",
		Attributes: map[string]string{"driver.exec.version": Version}}, nil
}
