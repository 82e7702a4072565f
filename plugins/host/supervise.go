package host

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// plugin is one plugin the host knows of and, once started, supervises.
type plugin struct {
	host              *Host
	kind, name, id    string // id is "<kind>/<name>"
	path              string
	args              []string
	builtin           bool
	sum               []byte // required sha256; nil if not in the catalog
	stateDir          string
	log               *slog.Logger
	proxy             any        // *driverProxy or *isolatorProxy
	restartMu         sync.Mutex // one OnRestart call at a time
	refusedBeforeHand bool       // refused in New; never started

	mu           sync.Mutex
	health       Health
	refused      error // why the plugin is refused; wraps ErrRefused
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
	impl     any             // contract.Driver or contract.Isolator
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

// notifyLocked wakes the callers waiting for the plugin. p.mu must be held.
func (p *plugin) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// refuse marks the plugin refused in New: it will not be started.
func (p *plugin) refuse(err error) {
	p.refusedBeforeHand = true
	p.health, p.refused, p.lastErr = HealthRefused, err, err.Error()
	p.log.Error("plugin refused", "err", err)
}

func (p *plugin) refusedAtNew() bool { return p.refusedBeforeHand }

// refusal returns why the plugin is refused, or nil.
func (p *plugin) refusal() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

func (p *plugin) status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Status{
		Kind: p.kind, Name: p.name, Path: p.path, Builtin: p.builtin,
		Protocol: p.protocol, Health: p.health, Restarts: p.restarts, LastError: p.lastErr,
	}
	if p.sum != nil {
		s.SHA256 = hexSum(p.sum)
	}
	if p.inst != nil {
		s.PID = p.inst.pid
	}
	return s
}

// close makes calls fail at once and kills the process of a start in
// progress; the supervisor does the rest.
func (p *plugin) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closing = true
	if p.cancelLaunch != nil {
		p.cancelLaunch()
	}
	p.notifyLocked()
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

// run starts the plugin and restarts it whenever it exits, until ctx is done
// or the plugin is refused. It closes first once the first start is over.
func (p *plugin) run(ctx context.Context, first chan<- struct{}) {
	firstDone := sync.OnceFunc(func() { close(first) })
	defer firstDone()
	defer p.setStopped()
	bo := newBackoff(p.host.cfg.MinBackoff, p.host.cfg.MaxBackoff)
	var upFor time.Duration // how long the last instance stayed up
	wasUp := false
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			d := bo.next(upFor)
			p.log.Info("restarting plugin", "in", d)
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			p.mu.Lock()
			p.restarts++
			p.mu.Unlock()
		}
		inst, err := p.launch()
		if ctx.Err() != nil {
			if inst != nil {
				inst.kill()
			}
			return
		}
		if err != nil {
			if permanent(err) {
				err = &refusedError{err: err}
				p.log.Error("plugin refused", "err", err)
				p.setDown(HealthRefused, err)
				return
			}
			p.log.Error("plugin failed to start", "err", err)
			p.setDown(HealthRestarting, err)
			firstDone()
			upFor = 0
			continue
		}
		p.setUp(inst)
		firstDone()
		if wasUp {
			p.log.Info("plugin restarted", "pid", inst.pid, "protocol", inst.protocol)
			p.onRestart()
		} else {
			p.log.Info("plugin is up", "path", p.path, "pid", inst.pid, "protocol", inst.protocol)
		}
		wasUp = true
		upAt := time.Now()
		select {
		case <-inst.done:
			err := fmt.Errorf("plugin %s exited unexpectedly: %s", p.path, inst.exitReason())
			p.log.Error("plugin crashed", "err", err, "pid", inst.pid)
			p.setDown(HealthRestarting, err)
			inst.kill() // releases what go-plugin holds of the dead process
			upFor = time.Since(upAt)
		case <-ctx.Done():
			p.setDown(HealthStopped, nil)
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
		p.mu.Lock()
		closing := p.closing
		p.mu.Unlock()
		if !closing {
			f(p.kind, p.name)
		}
	}()
}

func (p *plugin) setUp(inst *instance) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inst, p.health, p.protocol = inst, HealthHealthy, inst.protocol
	p.notifyLocked()
}

// setDown records that the plugin is not up, in state h, because of err
// (nil: no error).
func (p *plugin) setDown(h Health, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inst, p.health = nil, h
	if err != nil {
		p.lastErr = err.Error()
	}
	if h == HealthRefused {
		p.refused = err
	}
	p.notifyLocked()
}

// setStopped marks the plugin stopped when its supervisor returns, unless
// it was refused.
func (p *plugin) setStopped() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inst = nil
	if p.health != HealthRefused {
		p.health = HealthStopped
	}
	p.notifyLocked()
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

// launch starts one process of the plugin and dispenses its contract. On
// error no process is left running.
func (p *plugin) launch() (*instance, error) {
	if err := os.MkdirAll(p.stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("plugin %s: state dir: %w", p.path, err)
	}
	if err := os.Chmod(p.stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("plugin %s: state dir: %w", p.path, err)
	}
	// The process's context is cancelled (killing it) only by Close during
	// the start, or after the process has exited.
	pctx, release := context.WithCancel(context.Background())
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		release()
		return nil, fmt.Errorf("plugin %s: host closed", p.path)
	}
	p.cancelLaunch = release
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.cancelLaunch = nil
		p.mu.Unlock()
	}()

	cmd := exec.CommandContext(pctx, p.path, p.args...)
	// SkipHostEnv below: go-plugin would append the host's environment after
	// ours, and the host's DCOS_PLUGIN_STATE_DIR (if any) would win.
	cmd.Env = append(os.Environ(), StateDirEnv+"="+p.stateDir)
	exited := make(chan string, 1)
	logger := &hclogAdapter{l: p.log, onExit: func(how string) {
		select {
		case exited <- how:
		default:
		}
	}}
	stdout := &lineWriter{log: func(line string) { p.log.Info(line, "stream", "stdout") }}
	stderr := &lineWriter{log: func(line string) { p.log.Info(line, "stream", "stderr") }}
	w := &exitWatch{}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  contract.Handshake,
		VersionedPlugins: hostPlugins(w),
		Cmd:              cmd,
		SecureConfig:     &goplugin.SecureConfig{Checksum: p.sum, Hash: sha256.New()},
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		Managed:          false,
		SkipHostEnv:      true,
		StartTimeout:     startTimeout,
		Logger:           logger,
		SyncStdout:       stdout,
		SyncStderr:       stderr,
	})
	impl, err := contract.Dispense(client, p.path, p.kind)
	if err == nil && w.done == nil {
		err = fmt.Errorf("plugin %s: dispensed %T without an exit context", p.path, impl)
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
		}
		return nil, err
	}
	inst := &instance{client: client, impl: impl, done: w.done.Done(), exited: exited, release: release, protocol: client.NegotiatedVersion(),
		flush: func() { stdout.Flush(); stderr.Flush() }}
	if rc := client.ReattachConfig(); rc != nil {
		inst.pid = rc.Pid
	}
	return inst, nil
}

// current returns the running instance's contract implementation, waiting
// for the plugin to come up until ctx is done. op names the call, for errors.
func (p *plugin) current(ctx context.Context, op string) (any, error) {
	for {
		p.mu.Lock()
		inst, refused, closing, lastErr, changed := p.inst, p.refused, p.closing, p.lastErr, p.changed
		p.mu.Unlock()
		switch {
		case refused != nil:
			return nil, fmt.Errorf("%s: plugin %s: %w", op, p.id, refused)
		case closing:
			return nil, fmt.Errorf("%s: plugin %s: host closed: %w", op, p.id, contract.ErrPluginExited)
		case inst != nil:
			return inst.impl, nil
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
