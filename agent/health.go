package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/dcos-kernel/dcos/internal/netnsutil"
	"github.com/dcos-kernel/dcos/internal/taskinit"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Health and readiness checks (Task.health_check, Task.readiness_check):
// for every RUNNING task with a check, also one recovered after an agent
// restart, the agent runs probes on goroutines of the task's, stopped
// before the task's final report or when the agent stops. Each check
// probes every firstProbeDelay, doubling up to its interval, until it
// first passes, then every interval. A failure within the grace period
// after the task started does not count; one pass makes the health check
// HEALTHY (the readiness check ready), consecutive_failures counted
// failures UNHEALTHY (not ready) with the last failure's message. Only
// transitions are reported, through the report queue, as a RUNNING report
// with health set. Without a readiness check, ready is "RUNNING and not
// failing a health check": HEALTHY when there is one; the kernel sets
// ready itself for tasks without any check.
//
// Where a probe goes: HTTP and TCP checks of a host-network task connect
// to 127.0.0.1 and the host port (port_name names one of the task's
// ports; a numeric port is used as is). A bridge task's run inside its
// network namespace (the net driver's NetworkStatus.Netns) and connect to
// 127.0.0.1 and the container port there, as Mesos' checks do, so a
// listener bound to the task's own loopback is reached; when nothing
// listens there (connection refused), to the task's address on the bridge
// (a listener bound to that address only). The socket is made inside the
// namespace through the one door (netnsutil.InNetns) and used from the
// agent's goroutines afterwards; the agent itself never stays in a task's
// namespace. A bridge task whose status has no namespace path is probed
// from the node at its address on the bridge. A command check runs inside the task
// through the task init's enter mode (package taskinit): its cgroups,
// namespaces, user and sandbox, from a fresh process, never by setns in
// the agent; a timeout kills its process group.

// firstProbeDelay is the delay after a task starts (and between failing
// probes) until a check first passes; it doubles up to the interval.
const firstProbeDelay = 50 * time.Millisecond

// The checks' defaults (the kernel's, kernel.WithHealthDefaults).
const (
	defaultCheckInterval = 10 * time.Second
	defaultCheckTimeout  = 2 * time.Second
	defaultCheckGrace    = 30 * time.Second
)

// maxCheckOutput bounds what a command check's stderr keeps.
const maxCheckOutput = 4096

// checkSpec is what a task's probes need of t (kept in its checkpoint), or
// nil when t has no check.
func checkSpec(t *syscallsv1.Task) *syscallsv1.Task {
	if t.GetHealthCheck() == nil && t.GetReadinessCheck() == nil {
		return nil
	}
	return &syscallsv1.Task{
		Id: t.GetId(), AllocationId: t.GetAllocationId(), Owner: t.GetOwner(), User: t.GetUser(),
		Env: t.GetEnv(), Ports: t.GetPorts(), Network: t.GetNetwork(),
		HealthCheck: t.GetHealthCheck(), ReadinessCheck: t.GetReadinessCheck(),
	}
}

// healthState is a task's health as its checks see it.
type healthState struct {
	health  syscallsv1.HealthState
	message string
	ready   bool
}

// startProbes starts tk's checks, if it has any and they do not run yet.
func (a *Agent) startProbes(tk *task) {
	a.mu.Lock()
	spec, started := tk.checks, tk.started
	if spec == nil || tk.probeDone != nil || tk.state != taskRunning || a.ctx == nil || a.ctx.Err() != nil {
		a.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(a.ctx)
	done := make(chan struct{})
	tk.probeCancel, tk.probeDone = cancel, done
	a.mu.Unlock()
	a.wg.Go(func() {
		defer close(done)
		a.runChecks(ctx, tk, spec, started)
	})
}

// stopProbes stops tk's checks and waits until no probe of it runs and
// none will report. Idempotent.
func (a *Agent) stopProbes(tk *task) {
	a.mu.Lock()
	cancel, done := tk.probeCancel, tk.probeDone
	a.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// runChecks runs tk's checks until ctx ends, reporting each change of its
// health.
func (a *Agent) runChecks(ctx context.Context, tk *task, spec *syscallsv1.Task, started time.Time) {
	var mu sync.Mutex
	hc, rc := spec.GetHealthCheck(), spec.GetReadinessCheck()
	cur := healthState{}
	var readyMsg string
	sent := cur
	first := true
	update := func(check *syscallsv1.HealthCheck, pass bool, msg string) {
		mu.Lock()
		defer mu.Unlock()
		switch check {
		case hc:
			if pass {
				cur.health, cur.message = syscallsv1.HealthState_HEALTH_STATE_HEALTHY, ""
			} else {
				cur.health, cur.message = syscallsv1.HealthState_HEALTH_STATE_UNHEALTHY, msg
			}
			if rc == nil {
				cur.ready = pass
			}
		case rc:
			cur.ready = pass
			if pass {
				readyMsg = ""
			} else {
				readyMsg = "readiness: " + msg
			}
		}
		now := cur
		if now.message == "" && !now.ready {
			now.message = readyMsg
		}
		if !first && now == sent {
			return
		}
		first, sent = false, now
		a.reportHealth(tk, now)
	}
	var wg sync.WaitGroup
	for _, c := range []*syscallsv1.HealthCheck{hc, rc} {
		if c == nil {
			continue
		}
		wg.Go(func() { a.runCheck(ctx, tk, spec, c, started, update) })
	}
	wg.Wait()
}

// reportHealth queues a RUNNING report of tk with health h.
func (a *Agent) reportHealth(tk *task, h healthState) {
	a.mu.Lock()
	if tk.state != taskRunning {
		a.mu.Unlock()
		return
	}
	r := tk.statusLocked(syscallsv1.TaskState_TASK_STATE_RUNNING)
	a.mu.Unlock()
	r.Health = &syscallsv1.TaskHealthReport{Health: h.health, Message: h.message, Ready: h.ready}
	a.log.Info("task health", "task", tk.id, "health", h.health, "ready", h.ready, "message", h.message)
	a.reports.push(report{req: r})
}

// runCheck probes c until ctx ends, calling update with each counted
// outcome: a pass, or a failure once consecutive_failures failures outside
// the grace period are in a row.
func (a *Agent) runCheck(ctx context.Context, tk *task, spec *syscallsv1.Task, c *syscallsv1.HealthCheck, started time.Time,
	update func(*syscallsv1.HealthCheck, bool, string)) {
	// The kernel fills in the defaults; a check without them (an older
	// kernel's) gets the same ones here, so that no probe spins.
	interval := c.GetInterval().AsDuration()
	if interval <= 0 {
		interval = defaultCheckInterval
	}
	timeout := c.GetTimeout().AsDuration()
	if timeout <= 0 {
		timeout = defaultCheckTimeout
	}
	timeout = min(timeout, interval)
	grace := defaultCheckGrace
	if c.GracePeriod != nil {
		grace = c.GetGracePeriod().AsDuration()
	}
	need := max(int(c.GetConsecutiveFailures()), 1)
	delay, passed, fails := min(firstProbeDelay, interval), false, 0
	for {
		if !sleep(ctx, delay) {
			return
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := a.probe(pctx, tk, spec, c, timeout)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil:
			fails, passed = 0, true
			update(c, true, "")
		case time.Since(started) < grace:
			// Failures within the grace period do not count.
		default:
			if fails++; fails >= need {
				update(c, false, err.Error())
			}
		}
		if passed {
			delay = interval
		} else {
			delay = min(2*delay, interval)
		}
	}
}

// probe runs one probe of c against tk; nil means it passed.
func (a *Agent) probe(ctx context.Context, tk *task, spec *syscallsv1.Task, c *syscallsv1.HealthCheck, timeout time.Duration) error {
	switch {
	case c.GetHttp() != nil:
		h := c.GetHttp()
		to, err := a.probeAddr(tk, spec, h.GetPortName(), h.GetPort())
		if err != nil {
			return err
		}
		return probeHTTP(ctx, to, h.GetPath(), h.GetStatusMin(), h.GetStatusMax())
	case c.GetTcp() != nil:
		to, err := a.probeAddr(tk, spec, c.GetTcp().GetPortName(), c.GetTcp().GetPort())
		if err != nil {
			return err
		}
		conn, err := to.dial(ctx)
		if err != nil {
			return err
		}
		return conn.Close()
	case c.GetCommand() != nil:
		return a.probeCommand(ctx, tk, spec, c.GetCommand(), timeout)
	}
	return errors.New("check has no http, tcp or command")
}

// probeTarget is where an HTTP or TCP probe connects: the first of addrs
// that accepts, tried in order while they refuse, from inside the network
// namespace at netns ("" the agent's own).
type probeTarget struct {
	netns string
	addrs []string
}

// dial connects to t (see probeTarget). The connection, made inside t's
// namespace, is the caller's to use and close.
func (t probeTarget) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	var conn net.Conn
	err := netnsutil.InNetns(t.netns, func() error {
		var first error
		for _, addr := range t.addrs {
			c, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				conn = c
				return nil
			}
			if first == nil {
				first = err
			}
			if !errors.Is(err, syscall.ECONNREFUSED) {
				break
			}
		}
		return first
	})
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, err
	}
	return conn, nil
}

// probeAddr is where an HTTP or TCP probe of tk connects (see the top of
// this file).
func (a *Agent) probeAddr(tk *task, spec *syscallsv1.Task, name string, port uint32) (probeTarget, error) {
	a.mu.Lock()
	st := tk.net
	a.mu.Unlock()
	bridge := spec.GetNetwork() == netBridge
	if bridge && (st == nil || !st.IP.IsValid()) {
		return probeTarget{}, errors.New("the task has no address on the bridge yet")
	}
	if name != "" {
		port = 0
		if st != nil {
			for _, p := range st.Ports {
				if p.Name == name {
					port = uint32(p.HostPort)
					if bridge {
						port = uint32(p.ContainerPort)
					}
				}
			}
		}
		for _, p := range spec.GetPorts() {
			if port == 0 && p.GetName() == name {
				port = p.GetHostPort()
				if bridge || port == 0 {
					port = p.GetContainerPort()
				}
			}
		}
		if port == 0 {
			return probeTarget{}, fmt.Errorf("port %q: the task has no such port", name)
		}
	}
	loopback := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(port)).String()
	switch {
	case !bridge:
		return probeTarget{addrs: []string{loopback}}, nil
	case st.Netns == "":
		return probeTarget{addrs: []string{netip.AddrPortFrom(st.IP, uint16(port)).String()}}, nil
	}
	return probeTarget{netns: st.Netns, addrs: []string{loopback, netip.AddrPortFrom(st.IP, uint16(port)).String()}}, nil
}

// probeHTTP GETs path from to and wants a status in [lo, hi].
func probeHTTP(ctx context.Context, to probeTarget, path string, lo, hi uint32) error {
	u := "http://" + to.addrs[0] + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	req.Header.Set("User-Agent", "dcos-agent-health-check")
	client := &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return to.dial(ctx) }},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = errors.New("timed out")
		}
		return fmt.Errorf("GET %s: %w", u, err)
	}
	resp.Body.Close()
	if s := uint32(resp.StatusCode); s < lo || s > hi {
		return fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	return nil
}

// probeCommand runs c inside tk (taskinit's enter mode) and wants exit 0
// within the timeout (ctx's).
func (a *Agent) probeCommand(ctx context.Context, tk *task, spec *syscallsv1.Task, c *syscallsv1.CommandCheck, timeout time.Duration) error {
	a.mu.Lock()
	pid, sandbox, cgroups := tk.pid, tk.sandbox, tk.cgroups
	a.mu.Unlock()
	e := &taskinit.EnterSpec{PID: pid, Cgroups: cgroups, Dir: sandbox}
	iso, err := a.taskIsolation(spec, sandbox)
	if err != nil {
		return fmt.Errorf("command: %w", err)
	}
	if iso != nil {
		e.Credentials = &taskinit.Spec{UID: iso.UID, GID: iso.GID, Groups: iso.Groups}
		e.KeepCaps = iso.UID == 0
	} else {
		e.KeepCaps = true // the task has the agent's own
	}
	// Not exec.Command: the path is looked up inside the task, not here.
	cmd := &exec.Cmd{Path: c.GetCommand(), Args: append([]string{c.GetCommand()}, c.GetArgs()...)}
	cmd.Env = taskEnv(spec, sandbox, os.Getenv("PATH"))
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: maxCheckOutput}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := taskinit.Enter(cmd, e); err != nil {
		return fmt.Errorf("command: %w", err)
	}
	// Pdeathsig fires when the thread that started the process ends: keep
	// it until the probe has been waited for, so that no other goroutine
	// that locks and abandons it can kill the probe.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("command: %w", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err = <-waited:
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the probe's whole group
		<-waited
		return fmt.Errorf("command timed out after %v", timeout)
	}
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("command: %w", err)
	}
	code := ee.ExitCode()
	line, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n")
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Errorf("command killed by signal %d: %s", ws.Signal(), line)
	}
	if line == "" {
		return fmt.Errorf("command exited %d", code)
	}
	return fmt.Errorf("command exited %d: %s", code, line)
}

// limitedWriter keeps the first n bytes written to it.
type limitedWriter struct {
	w *bytes.Buffer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if k := min(len(p), l.n-l.w.Len()); k > 0 {
		l.w.Write(p[:k])
	}
	return len(p), nil
}

// marshalChecks and unmarshalChecks keep a check spec in a checkpoint.
func marshalChecks(spec *syscallsv1.Task) []byte {
	if spec == nil {
		return nil
	}
	b, _ := proto.Marshal(spec)
	return b
}

func unmarshalChecks(b []byte) (*syscallsv1.Task, error) {
	if len(b) == 0 {
		return nil, nil
	}
	t := &syscallsv1.Task{}
	if err := proto.Unmarshal(b, t); err != nil {
		return nil, fmt.Errorf("checks: %w", err)
	}
	return t, nil
}
