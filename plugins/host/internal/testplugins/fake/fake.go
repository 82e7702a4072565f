// Package fake is a small driver, isolator, net driver and storage driver
// for testing the plugin host over real go-plugin processes. Serve runs in
// the plugin process; what it does is set by the file "mode" in the
// plugin's state directory (DCOS_PLUGIN_STATE_DIR), so that each test picks
// its plugin's behaviour.
//
// It is not a usable plugin: its driver runs no tasks, its net and storage
// drivers keep their containers, sandboxes and volumes in memory and touch
// nothing on the node.
package fake

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// Modes, the content of <state dir>/mode.
const (
	ModeNormal     = "normal"     // serve (also when there is no mode file)
	ModeCrash      = "crash"      // exit with status 3 before serving
	ModeCrashAfter = "crashafter" // exit with status 4 right after answering the first call
	ModeFuture     = "future"     // speak only protocol version ProtocolVersion+1
	ModeHang       = "hang"       // never complete the handshake
	ModeImages     = "images"     // the driver is also a contract.ImageDriver (images.go)
)

// Messages the plugin logs, for tests to look for.
const (
	MsgCapabilities = "fake: capabilities called"
	MsgStdio        = "fake: written to os.Stderr after Serve"
	MsgCrash        = "fake: crashing at start"
	MsgCrashPlain   = "fake: a plain stderr line before crashing"
	MsgWaitTask     = "fake: wait task called"
)

// AttrStateDir and AttrPID are the Fingerprint attributes, and the keys of
// the net driver's NetworkStatus.Env, giving the plugin's state directory
// and pid.
const (
	AttrStateDir = "fake.state_dir"
	AttrPID      = "fake.pid"
)

// Serve serves a plugin of kind (contract.KindDriver, KindIsolator, KindNet
// or KindStorage) in the mode of its state directory
// (DCOS_PLUGIN_STATE_DIR), and exits the process when done.
func Serve(kind string) {
	dir := os.Getenv("DCOS_PLUGIN_STATE_DIR")
	serve(map[string]string{kind: dir}, dir)
}

// ServeGroup serves from one process (contract.ServeConfigMulti), as the
// process of a built-in group, a plugin of each kind in dirs, with the state
// directory dirs[kind], in the mode of the driver's state directory
// (dirs[contract.KindDriver]); it exits the process when done.
func ServeGroup(dirs map[string]string) { serve(dirs, dirs[contract.KindDriver]) }

// serve serves a plugin of each kind in dirs, with the state directory
// dirs[kind], in the mode of modeDir.
func serve(dirs map[string]string, modeDir string) {
	log := hclog.New(&hclog.LoggerOptions{JSONFormat: true, Output: os.Stderr, Level: hclog.Trace})
	mode := ModeNormal
	if b, err := os.ReadFile(filepath.Join(modeDir, "mode")); err == nil {
		mode = strings.TrimSpace(string(b))
	}
	impls := map[string]any{}
	for kind, dir := range dirs {
		switch kind {
		case contract.KindDriver:
			d := &driver{log: log, stateDir: dir, crashAfter: mode == ModeCrashAfter}
			impls[kind] = d
			if mode == ModeImages {
				impls[kind] = newImageDriver(d)
			}
		case contract.KindIsolator:
			impls[kind] = &isolator{}
		case contract.KindNet:
			impls[kind] = newNetDriver(dir)
		case contract.KindStorage:
			impls[kind] = newStorageDriver(dir)
		default:
			fmt.Fprintf(os.Stderr, "fake: unknown kind %q\n", kind)
			os.Exit(2)
		}
	}
	cfg, err := contract.ServeConfigMulti(impls)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	switch mode {
	case ModeCrash:
		fmt.Fprintln(os.Stderr, MsgCrashPlain)
		log.Error(MsgCrash)
		os.Exit(3)
	case ModeHang:
		select {}
	case ModeFuture:
		cfg.VersionedPlugins = map[int]goplugin.PluginSet{contract.ProtocolVersion + 1: cfg.VersionedPlugins[contract.ProtocolVersion]}
	}
	goplugin.Serve(cfg)
	os.Exit(0)
}

// driver answers Capabilities and Fingerprint; WaitTask blocks until its ctx
// is done; the rest is not supported.
type driver struct {
	log        hclog.Logger
	stateDir   string
	crashAfter bool
	once       sync.Once
}

var _ contract.Driver = (*driver)(nil)

func (d *driver) Capabilities(context.Context) (*contract.Capabilities, error) {
	d.log.Info(MsgCapabilities, "pid", os.Getpid())
	if d.crashAfter {
		d.once.Do(func() {
			go func() {
				time.Sleep(20 * time.Millisecond)
				os.Exit(4)
			}()
		})
	}
	return &contract.Capabilities{SendSignals: true, FSIsolation: contract.FSIsolationNone}, nil
}

func (d *driver) Fingerprint(context.Context) (*contract.Fingerprint, error) {
	fmt.Fprintln(os.Stderr, MsgStdio)
	return &contract.Fingerprint{Health: contract.HealthHealthy, Attributes: map[string]string{
		AttrStateDir: d.stateDir,
		AttrPID:      strconv.Itoa(os.Getpid()),
	}}, nil
}

func (d *driver) StartTask(context.Context, *contract.TaskConfig) (*contract.TaskHandle, error) {
	return nil, fmt.Errorf("start task: %w", contract.ErrNotSupported)
}

func (d *driver) WaitTask(ctx context.Context, id string) (*contract.ExitResult, error) {
	d.log.Info(MsgWaitTask, "task", id)
	<-ctx.Done()
	return nil, ctx.Err()
}

func (d *driver) StopTask(context.Context, string, time.Duration, string) error {
	return fmt.Errorf("stop task: %w", contract.ErrNotSupported)
}

func (d *driver) DestroyTask(context.Context, string, bool) error { return nil }

func (d *driver) InspectTask(_ context.Context, id string) (*contract.TaskStatus, error) {
	return nil, fmt.Errorf("task %q: %w", id, contract.ErrTaskNotFound)
}

func (d *driver) TaskStats(_ context.Context, id string) (*contract.TaskUsage, error) {
	return nil, fmt.Errorf("task %q: %w", id, contract.ErrTaskNotFound)
}

func (d *driver) SignalTask(context.Context, string, string) error {
	return fmt.Errorf("signal task: %w", contract.ErrNotSupported)
}

func (d *driver) RecoverTask(context.Context, *contract.TaskHandle) error { return nil }

// isolator answers Usage with its pid in PIDs; the rest is not supported or
// a no-op.
type isolator struct{}

var _ contract.Isolator = (*isolator)(nil)

func (isolator) Prepare(context.Context, string, contract.Resources) (*contract.LaunchInfo, error) {
	return &contract.LaunchInfo{}, nil
}
func (isolator) Isolate(context.Context, string, int) error               { return nil }
func (isolator) Update(context.Context, string, contract.Resources) error { return nil }
func (isolator) Usage(context.Context, string) (*contract.TaskUsage, error) {
	return &contract.TaskUsage{PIDs: uint64(os.Getpid())}, nil
}
func (isolator) Watch(context.Context, string) (<-chan contract.Limitation, error) {
	return nil, fmt.Errorf("watch: %w", contract.ErrNotSupported)
}
func (isolator) Cleanup(context.Context, string) error                    { return nil }
func (isolator) Recover(context.Context, []contract.ContainerState) error { return nil }
