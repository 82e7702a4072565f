package host

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// plugin is one plugin the host knows of: its identity, its proxy and the
// process that serves it.
type plugin struct {
	host           *Host
	kind, name, id string // id is "<kind>/<name>"
	builtin        bool
	stateDir       string
	proxy          any        // *driverProxy, *isolatorProxy, *netProxy or *storageProxy
	restartMu      sync.Mutex // one OnRestart call at a time
	proc           *process   // serves this plugin, alone or with the rest of its group
}

// process is one supervised plugin process and what the host knows of it:
// the process of a discovered plugin or an ungrouped built-in (one member),
// or the shared process of a built-in Group (one member per kind).
type process struct {
	host              *Host
	id                string // the members' ids, joined by ","
	path              string
	args              []string
	sum               []byte    // required sha256; nil if not in the catalog
	members           []*plugin // in the order they were configured
	grouped           bool      // a built-in Group: state dirs in MemberStateDirEnv
	log               *slog.Logger
	refusedBeforeHand bool // refused in New; never started

	mu           sync.Mutex
	health       Health
	refused      error // why the process is refused; wraps ErrRefused
	closing      bool
	restarts     int
	lastErr      string
	protocol     int
	inst         *instance     // the running instance, or nil
	changed      chan struct{} // closed and replaced on every change of inst, health or closing
	cancelLaunch func()        // kills the process of a start in progress
}

// instance is one running plugin process.
type instance struct {
	client   *goplugin.Client
	impls    map[string]any  // by kind: the contract dispensed for it (contract.Driver, ...)
	done     <-chan struct{} // closed when the process has exited
	exited   <-chan string   // go-plugin's account of the exit, once done
	release  func()          // releases the process's context; after exit only
	flush    func()          // logs what is left of the process's stdio lines
	pid      int
	protocol int
}

// kill stops the instance's process (graceful, then forced) and waits for it.
func (i *instance) kill() {
	i.client.Kill()
	i.release()
	i.flush()
}

// exitReason returns how the process exited, once done is closed.
func (i *instance) exitReason() string {
	select {
	case how := <-i.exited:
		if how != "" {
			return how
		}
		return "exit status 0"
	case <-time.After(time.Second): // go-plugin logs the exit before done; should not happen
		return "unknown"
	}
}

// add makes p a member of the process.
func (pr *process) add(p *plugin) {
	p.proc = pr
	pr.members = append(pr.members, p)
	ids := make([]string, len(pr.members))
	for i, m := range pr.members {
		ids[i] = m.id
	}
	pr.id = strings.Join(ids, ",")
	pr.log = pr.host.log.With("plugin", pr.id)
}

// notifyLocked wakes the callers waiting for the process. pr.mu must be held.
func (pr *process) notifyLocked() {
	close(pr.changed)
	pr.changed = make(chan struct{})
}

// refuse marks the process refused in New: it will not be started.
func (pr *process) refuse(err error) {
	pr.refusedBeforeHand = true
	pr.health, pr.refused, pr.lastErr = HealthRefused, err, err.Error()
	pr.log.Error("plugin refused", "err", err)
}

func (pr *process) refusedAtNew() bool { return pr.refusedBeforeHand }

// refusal returns why the plugin is refused, or nil.
func (p *plugin) refusal() error {
	p.proc.mu.Lock()
	defer p.proc.mu.Unlock()
	return p.proc.refused
}

func (p *plugin) status() Status {
	pr := p.proc
	pr.mu.Lock()
	defer pr.mu.Unlock()
	s := Status{
		Kind: p.kind, Name: p.name, Path: pr.path, Builtin: p.builtin,
		Protocol: pr.protocol, Health: pr.health, Restarts: pr.restarts, LastError: pr.lastErr,
	}
	if pr.sum != nil {
		s.SHA256 = hexSum(pr.sum)
	}
	if pr.inst != nil {
		s.PID = pr.inst.pid
	}
	return s
}

// close makes calls fail at once and kills the process of a start in
// progress; the supervisor does the rest.
func (pr *process) close() {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.closing = true
	if pr.cancelLaunch != nil {
		pr.cancelLaunch()
	}
	pr.notifyLocked()
}

// refusedError is a start error that refuses the plugin for good: it
// matches ErrRefused as well as its cause, and says only its cause.
type refusedError struct{ err error }

func (e *refusedError) Error() string   { return e.err.Error() }
func (e *refusedError) Unwrap() []error { return []error{e.err, ErrRefused} }

// permanent reports whether a start error will not go away by retrying.
func permanent(err error) bool {
	return errors.Is(err, contract.ErrIncompatibleVersion) || errors.Is(err, goplugin.ErrChecksumsDoNotMatch)
}

// run starts the process and restarts it whenever it exits, until ctx is
// done or the process is refused. It closes first once the first start is
// over.
func (pr *process) run(ctx context.Context, first chan<- struct{}) {
	firstDone := sync.OnceFunc(func() { close(first) })
	defer firstDone()
	defer pr.setStopped()
	bo := newBackoff(pr.host.cfg.MinBackoff, pr.host.cfg.MaxBackoff)
	var upFor time.Duration // how long the last instance stayed up
	wasUp := false
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			d := bo.next(upFor)
			pr.log.Info("restarting plugin", "in", d)
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			pr.mu.Lock()
			pr.restarts++
			pr.mu.Unlock()
		}
		inst, err := pr.launch()
		if ctx.Err() != nil {
			if inst != nil {
				inst.kill()
			}
			return
		}
		if err != nil {
			if permanent(err) {
				err = &refusedError{err: err}
				pr.log.Error("plugin refused", "err", err)
				pr.setDown(HealthRefused, err)
				return
			}
			pr.log.Error("plugin failed to start", "err", err)
			pr.setDown(HealthRestarting, err)
			firstDone()
			upFor = 0
			continue
		}
		pr.setUp(inst)
		firstDone()
		if wasUp {
			pr.log.Info("plugin restarted", "pid", inst.pid, "protocol", inst.protocol)
			for _, p := range pr.members {
				p.onRestart()
			}
		} else {
			pr.log.Info("plugin is up", "path", pr.path, "pid", inst.pid, "protocol", inst.protocol)
		}
		wasUp = true
		upAt := time.Now()
		select {
		case <-inst.done:
			err := fmt.Errorf("plugin %s exited unexpectedly: %s", pr.path, inst.exitReason())
			pr.log.Error("plugin crashed", "err", err, "pid", inst.pid)
			pr.setDown(HealthRestarting, err)
			inst.kill() // releases what go-plugin holds of the dead process
			upFor = time.Since(upAt)
		case <-ctx.Done():
			pr.setDown(HealthStopped, nil)
			inst.kill()
			return
		}
	}
}

// onRestart calls Config.OnRestart in its own goroutine, one call at a time
// for the plugin.
func (p *plugin) onRestart() {
	f := p.host.cfg.OnRestart
	if f == nil {
		return
	}
	p.host.wg.Add(1) // the caller's supervisor holds a count: no race with Wait
	go func() {
		defer p.host.wg.Done()
		p.restartMu.Lock()
		defer p.restartMu.Unlock()
		p.proc.mu.Lock()
		closing := p.proc.closing
		p.proc.mu.Unlock()
		if !closing {
			f(p.kind, p.name)
		}
	}()
}

func (pr *process) setUp(inst *instance) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.inst, pr.health, pr.protocol = inst, HealthHealthy, inst.protocol
	pr.notifyLocked()
}

// setDown records that the process is not up, in state h, because of err
// (nil: no error).
func (pr *process) setDown(h Health, err error) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.inst, pr.health = nil, h
	if err != nil {
		pr.lastErr = err.Error()
	}
	if h == HealthRefused {
		pr.refused = err
	}
	pr.notifyLocked()
}

// setStopped marks the process stopped when its supervisor returns, unless
// it was refused.
func (pr *process) setStopped() {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.inst = nil
	if pr.health != HealthRefused {
		pr.health = HealthStopped
	}
	pr.notifyLocked()
}

// exitWatch is what the host's plugin set learns when go-plugin dispenses a
// client: the context that is done when the plugin process has exited.
type exitWatch struct{ done context.Context }

// grpcPlugin is what the contract's plugins implement.
type grpcPlugin interface {
	goplugin.Plugin
	goplugin.GRPCPlugin
}

// watchedPlugin is a contract plugin that records the exit context
// go-plugin passes to GRPCClient.
type watchedPlugin struct {
	grpcPlugin
	w *exitWatch
}

func (wp *watchedPlugin) GRPCClient(done context.Context, b *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	wp.w.done = done
	return wp.grpcPlugin.GRPCClient(done, b, c)
}

// hostPlugins returns contract.HostPlugins with every plugin recording its
// exit context into w.
func hostPlugins(w *exitWatch) map[int]goplugin.PluginSet {
	sets := contract.HostPlugins()
	for _, set := range sets {
		for kind, pl := range set {
			if gp, ok := pl.(grpcPlugin); ok {
				set[kind] = &watchedPlugin{grpcPlugin: gp, w: w}
			}
		}
	}
	return sets
}

// env returns the environment of the process: the host's, without its own
// state directory variables, and the members' state directories.
func (pr *process) env() []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, StateDirEnv) })
	if !pr.grouped {
		return append(env, StateDirEnv+"="+pr.members[0].stateDir)
	}
	for _, p := range pr.members {
		env = append(env, MemberStateDirEnv(p.kind, p.name)+"="+p.stateDir)
	}
	return env
}

// launch starts one process and dispenses the contract of each member. On
// error no process is left running.
func (pr *process) launch() (*instance, error) {
	for _, p := range pr.members {
		if err := os.MkdirAll(p.stateDir, 0o700); err != nil {
			return nil, fmt.Errorf("plugin %s: state dir: %w", pr.path, err)
		}
		if err := os.Chmod(p.stateDir, 0o700); err != nil {
			return nil, fmt.Errorf("plugin %s: state dir: %w", pr.path, err)
		}
	}
	// The process's context is cancelled (killing it) only by Close during
	// the start, or after the process has exited.
	pctx, release := context.WithCancel(context.Background())
	pr.mu.Lock()
	if pr.closing {
		pr.mu.Unlock()
		release()
		return nil, fmt.Errorf("plugin %s: host closed", pr.path)
	}
	pr.cancelLaunch = release
	pr.mu.Unlock()
	defer func() {
		pr.mu.Lock()
		pr.cancelLaunch = nil
		pr.mu.Unlock()
	}()

	cmd := exec.CommandContext(pctx, pr.path, pr.args...)
	// SkipHostEnv below: go-plugin would append the host's environment after
	// ours, and the host's DCOS_PLUGIN_STATE_DIR (if any) would win.
	cmd.Env = pr.env()
	exited := make(chan string, 1)
	logger := &hclogAdapter{l: pr.log, stderr: &lineTail{}, onExit: func(how string) {
		select {
		case exited <- how:
		default:
		}
	}}
	stdout := &lineWriter{log: func(line string) { pr.log.Info(line, "stream", "stdout") }}
	stderr := &lineWriter{log: func(line string) { pr.log.Info(line, "stream", "stderr") }}
	w := &exitWatch{}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  contract.Handshake,
		VersionedPlugins: hostPlugins(w),
		Cmd:              cmd,
		SecureConfig:     &goplugin.SecureConfig{Checksum: pr.sum, Hash: sha256.New()},
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		Managed:          false,
		SkipHostEnv:      true,
		StartTimeout:     startTimeout,
		Logger:           logger,
		SyncStdout:       stdout,
		SyncStderr:       stderr,
	})
	impls := make(map[string]any, len(pr.members))
	var err error
	for _, p := range pr.members {
		var impl any
		if impl, err = contract.Dispense(client, pr.path, p.kind); err != nil {
			break
		}
		if w.done == nil {
			err = fmt.Errorf("plugin %s: dispensed %T without an exit context", pr.path, impl)
			break
		}
		impls[p.kind] = impl
	}
	if err != nil {
		client.Kill()
		release()
		stdout.Flush()
		stderr.Flush()
		if !permanent(err) {
			select {
			case how := <-exited:
				if how != "" {
					err = fmt.Errorf("%w (%s)", err, how)
				}
			default:
			}
			if tail := logger.stderr.String(); tail != "" {
				err = fmt.Errorf("%w; its stderr ends: %s", err, tail)
			}
		}
		return nil, err
	}
	inst := &instance{client: client, impls: impls, done: w.done.Done(), exited: exited, release: release, protocol: client.NegotiatedVersion(),
		flush: func() { stdout.Flush(); stderr.Flush() }}
	if rc := client.ReattachConfig(); rc != nil {
		inst.pid = rc.Pid
	}
	return inst, nil
}

// current returns the implementation of the plugin in its process's running
// instance, waiting for the process to come up until ctx is done. op names
// the call, for errors.
func (p *plugin) current(ctx context.Context, op string) (any, error) {
	pr := p.proc
	for {
		pr.mu.Lock()
		inst, refused, closing, lastErr, changed := pr.inst, pr.refused, pr.closing, pr.lastErr, pr.changed
		pr.mu.Unlock()
		switch {
		case refused != nil:
			return nil, fmt.Errorf("%s: plugin %s: %w", op, p.id, refused)
		case closing:
			return nil, fmt.Errorf("%s: plugin %s: host closed: %w", op, p.id, contract.ErrPluginExited)
		case inst != nil:
			return inst.impls[p.kind], nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			why := "not started yet"
			if lastErr != "" {
				why = "last error: " + lastErr
			}
			return nil, fmt.Errorf("%s: plugin %s is down (%s): %w: %w", op, p.id, why, contract.ErrPluginExited, ctx.Err())
		}
	}
}
