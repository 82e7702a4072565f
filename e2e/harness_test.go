package e2e

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	procfs "github.com/dcos-kernel/dcos/internal/executor/proc"
	"github.com/dcos-kernel/dcos/internal/imagetest"
	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/pki"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// waitTimeout bounds every wait for a condition. It is generous on
// purpose: the tests assert that things happen, never how fast.
const waitTimeout = 60 * time.Second

// bin holds the paths of the binaries TestMain builds.
var bin struct{ dir, dcosd, dcosctl, nicedriver, futuredriver, tcphello, tcpecho, tcpsend string }

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	if spec := os.Getenv(holderEnv); spec != "" {
		return runHolder(spec) // a helper process of BenchmarkHostileConnections
	}
	dir, err := os.MkdirTemp("", "dcos-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Tasks run the test tools (tcphello, ...) as their framework's own
	// uid (task isolation): MkdirTemp's 0700 would hide them.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if err := buildBinaries(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	bin.dir, bin.dcosd, bin.dcosctl = dir, filepath.Join(dir, "dcosd"), filepath.Join(dir, "dcosctl")
	bin.nicedriver, bin.futuredriver = filepath.Join(dir, "nicedriver"), filepath.Join(dir, "futuredriver")
	bin.tcphello = filepath.Join(dir, "tcphello")
	bin.tcpecho = filepath.Join(dir, "tcpecho")
	bin.tcpsend = filepath.Join(dir, "tcpsend")
	defer imagetest.Cleanup() // Debian root filesystems built for image tests
	return m.Run()
}

// buildBinaries builds dcosd and dcosctl into dir, with the race detector
// when the tests run with it (so that a race in a daemon fails the test
// that provoked it).
func buildBinaries(dir string) error {
	args := []string{"build", "-o", dir}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/dcos-kernel/dcos/cmd/dcosd", "github.com/dcos-kernel/dcos/cmd/dcosctl",
		"github.com/dcos-kernel/dcos/examples/nicedriver", "github.com/dcos-kernel/dcos/sdk/plugin/internal/futuredriver",
		"github.com/dcos-kernel/dcos/e2e/internal/tcphello", "github.com/dcos-kernel/dcos/e2e/multihost/internal/tcpecho",
		"github.com/dcos-kernel/dcos/e2e/internal/tcpsend")
	cmd := exec.Command("go", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return nil
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// lineWriter calls line for every complete line written to it.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	line func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

// proc is a daemon (dcosd dev, kernel or agent) running as a child process
// in its own process group.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	exited chan struct{} // closed once the process is reaped
	err    error         // Wait's result, set before exited is closed
}

// running reports whether the process has not exited yet.
func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// signal sends sig to the process group of p.
func (p *proc) signal(sig syscall.Signal) {
	if p.running() {
		syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// freeze SIGSTOPs the process group of p and waits until every thread of
// p is stopped: kill(2) only queues the stop, and a loaded machine can let
// p serve a request that arrives meanwhile (the HA drill saw a write sent
// "to the frozen leader" committed by it).
func (p *proc) freeze(t testing.TB) {
	t.Helper()
	p.signal(syscall.SIGSTOP)
	pid := p.cmd.Process.Pid
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if ok, _ := procfs.Stopped(pid); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: not every thread stopped 10 s after SIGSTOP", pid)
		}
	}
}

// stop sends SIGTERM (and SIGCONT, for a stopped process), waits up to
// grace, then SIGKILLs the group. It returns whether the process exited on
// SIGTERM.
func (p *proc) stop(grace time.Duration) bool {
	if !p.running() {
		return true
	}
	p.signal(syscall.SIGTERM)
	p.signal(syscall.SIGCONT)
	select {
	case <-p.exited:
		return true
	case <-time.After(grace):
	}
	p.signal(syscall.SIGKILL)
	<-p.exited
	return false
}

// kill SIGKILLs the process group and waits for the process to be reaped.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	<-p.exited
}

// env is one test's world: a temp dir, the daemons started in it, and what
// is needed to clean up after them. Create it with newEnv.
type env struct {
	t testing.TB // the test that uses this view; see in
	*world
}

// world is what the views of one env share.
type world struct {
	dir      string
	dcosd    string              // the dcosd binary to run; bin.dcosd if empty
	cred     *syscall.Credential // run the daemons as this user; nil: as the test
	cgParent string              // --cgroup-parent of the env's agents: their task cgroups
	pinDir   string              // --bpf-pin-dir of the env's agents: their network counters
	extraEnv []string            // added to the daemons' environment
	// readyWait bounds the wait for a daemon's ready line; waitTimeout if 0.
	readyWait time.Duration
	// devDefaults: startDev leaves dev's root defaults (bridge networking,
	// sized sandboxes) to dcosd instead of passing none for the flags the
	// test did not give.
	devDefaults bool

	mu        sync.Mutex
	procs     []*proc
	agentDirs []string // data dirs of agents, for their task checkpoints
	taskPIDs  []int    // task pids seen by the test

	url     string      // the kernel's URL
	opToken string      // an operator token
	ccPath  string      // dcosctl config written by dcosd dev
	caFile  string      // the cluster's CA bundle (a copy, readable by all), once a kernel started
	tls     *tls.Config // kernelTLS once a kernel started
}

// trusted are the CAs of every kernel the tests started, which
// kernelTLS trusts: one configuration for all, so that the tests'
// clients share one connection pool (transport.Cluster.WithTLS).
var trusted struct {
	mu   sync.RWMutex
	pool *x509.CertPool
}

// kernelTLS verifies kernels against the CAs of trusted (each test's
// kernels have a CA of their own).
var kernelTLS = &tls.Config{
	MinVersion:         tls.VersionTLS12,
	InsecureSkipVerify: true, // verified by VerifyConnection, against trusted
	VerifyConnection: func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the kernel sent no certificate")
		}
		trusted.mu.RLock()
		pool := trusted.pool
		trusted.mu.RUnlock()
		opts := x509.VerifyOptions{Roots: pool, DNSName: cs.ServerName, Intermediates: x509.NewCertPool()}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(opts)
		return err
	},
	ClientSessionCache: tls.NewLRUClientSessionCache(256),
}

// kernelHTTP is an HTTP client of the tests' kernels (https://, with
// kernelTLS) and of anything else.
var kernelHTTP = &http.Client{Transport: &http.Transport{TLSClientConfig: kernelTLS.Clone(), ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}}

// trustCA makes the env trust the CA bundle at path (a kernel's
// DATA_DIR/pki/ca.crt): its clients, its agents (--ca-cert), and its
// child processes ($DCOS_CA_FILE, which dcosctl and the SDK read).
func (e *env) trustCA(path string) {
	e.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		e.t.Fatalf("the kernel's CA: %v", err)
	}
	certs, err := pki.ParseBundle(b)
	if err != nil {
		e.t.Fatalf("the kernel's CA %s: %v", path, err)
	}
	trusted.mu.Lock()
	pool := x509.NewCertPool()
	if trusted.pool != nil {
		pool = trusted.pool.Clone()
	}
	for _, c := range certs {
		pool.AddCert(c)
	}
	trusted.pool = pool
	trusted.mu.Unlock()
	cp := e.path("ca.crt")
	if err := os.WriteFile(cp, b, 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.caFile, e.tls = cp, kernelTLS
	e.mu.Unlock()
}

// newEnv returns an env whose cleanup stops its daemons and kills every
// task process they started.
func newEnv(t testing.TB) *env {
	t.Helper()
	tok := newToken()[:12]
	e := &env{t: t, world: &world{dir: t.TempDir(), cgParent: "/dcos-e2e-" + tok, pinDir: "/sys/fs/bpf/dcos-e2e-" + tok}}
	// Registered after TempDir, so it runs before the dir is removed.
	t.Cleanup(e.cleanup)
	return e
}

// in returns a view of e for t, a subtest of e's test, so that the
// helpers fail t (FailNow must be called from t's own goroutine).
func (e *env) in(t testing.TB) *env { return &env{t: t, world: e.world} }

// path returns a path inside the env's dir.
func (e *env) path(elem ...string) string { return filepath.Join(append([]string{e.dir}, elem...)...) }

// baseEnv is the environment of child processes: ours, without any DCOS_
// variable, and with config and state homes inside the test's dir so that
// nothing reads or writes the user's defaults.
func (e *env) baseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "DCOS_") || strings.HasPrefix(kv, "XDG_CONFIG_HOME=") || strings.HasPrefix(kv, "XDG_STATE_HOME=") {
			continue
		}
		out = append(out, kv)
	}
	out = append(out, "XDG_CONFIG_HOME="+e.path("xdg-config"), "XDG_STATE_HOME="+e.path("xdg-state"))
	e.mu.Lock()
	if e.caFile != "" {
		out = append(out, "DCOS_CA_FILE="+e.caFile)
	}
	e.mu.Unlock()
	return append(out, e.extraEnv...)
}

// start starts a daemon. When ready is not empty, it waits for a stdout
// line starting with ready and returns the rest of that line.
func (e *env) start(name, ready string, args ...string) (*proc, string) {
	e.t.Helper()
	return e.startVia(nil, name, ready, args...)
}

// startVia is start with dcosd run through the command line wrap (e.g.
// nsenter --net=PATH --, which execs dcosd: the pid stays dcosd's).
func (e *env) startVia(wrap []string, name, ready string, args ...string) (*proc, string) {
	e.t.Helper()
	p := &proc{name: name, exited: make(chan struct{})}
	found := make(chan string, 1)
	path := bin.dcosd
	if e.dcosd != "" {
		path = e.dcosd
	}
	if len(wrap) > 0 {
		args = append(append(wrap[1:len(wrap):len(wrap)], path), args...)
		path = wrap[0]
	}
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = e.baseEnv()
	p.cmd.Stdout = io.MultiWriter(&p.stdout, &lineWriter{line: func(l string) {
		if rest, ok := strings.CutPrefix(l, ready); ok && ready != "" {
			select {
			case found <- strings.TrimSpace(rest):
			default:
			}
		}
	}})
	p.cmd.Stderr = &p.stderr
	// Own process group (so that signals reach the daemon and nothing
	// else), and killed if the test binary dies.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: e.cred}
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		e.t.Fatalf("start %s: %v", name, err)
	}
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	if ready == "" {
		return p, ""
	}
	select {
	case v := <-found:
		return p, v
	case <-p.exited:
		e.t.Fatalf("%s exited before it was ready (%v); stderr:\n%s", name, p.err, tail(p.stderr.String(), 100))
	case <-time.After(cmp.Or(e.readyWait, waitTimeout)):
		e.t.Fatalf("%s did not print %q within %v; stderr:\n%s", name, ready, cmp.Or(e.readyWait, waitTimeout), tail(p.stderr.String(), 100))
	}
	return nil, ""
}

// startDev starts `dcosd dev` on the env's data dir with extra flags, and
// points the env at it (URL, operator token, dcosctl config).
func (e *env) startDev(extra ...string) *proc {
	e.t.Helper()
	cc := e.path("client.json")
	args := []string{"dev", "--data-dir", e.path("data"), "--listen", "127.0.0.1:0", "--client-config", cc, "--cgroup-parent", e.cgParent, "--bpf-pin-dir", e.pinDir}
	// As root dev turns on bridge networking (on the shared bridge dcos0),
	// container images and sized sandboxes by default; a test that wants
	// them says so.
	for _, f := range []string{"--network-driver", "--image-driver", "--storage-driver"} {
		if !e.devDefaults && !slices.Contains(extra, f) {
			args = append(args, f, "none")
		}
	}
	args = append(args, extra...)
	started := time.Now()
	p, url := e.start("dcosd dev", "dcos dev: kernel at ", args...)
	var c struct{ Kernel, Token string }
	b, err := os.ReadFile(cc)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil {
		e.t.Fatalf("client config: %v", err)
	}
	if c.Kernel != url || c.Token == "" {
		e.t.Fatalf("client config %s = %+v, want kernel %s and a token", cc, c, url)
	}
	e.trustCA(e.path("data", "pki", "ca.crt"))
	e.mu.Lock()
	e.url, e.opToken, e.ccPath = url, c.Token, cc
	if !slices.Contains(e.agentDirs, e.path("data", "agent")) {
		e.agentDirs = append(e.agentDirs, e.path("data", "agent"))
	}
	e.mu.Unlock()
	// The URL is printed when the kernel serves, which may be before its
	// agent has (re-)registered: wait for the agent to be heard from.
	e.eventually("dcosd dev's agent UP", func() (bool, string) {
		if !p.running() {
			e.t.Fatalf("dcosd dev exited: %v; stderr:\n%s", p.err, tail(p.stderr.String(), 100))
		}
		res, err := e.op().ListAgents(context.Background(), connect.NewRequest(&pb.ListAgentsRequest{}))
		if err != nil {
			return false, err.Error()
		}
		for _, a := range res.Msg.GetAgents() {
			if a.GetState() == pb.AgentState_AGENT_STATE_UP && !a.GetLastHeartbeat().AsTime().Before(started) {
				return true, ""
			}
		}
		return false, sprint(res.Msg.GetAgents())
	})
	// dev's init campaigns as it starts (one store write): wait until it
	// leads, so that tests that compare store revisions start after it.
	if !slices.Contains(extra, "--init=false") {
		e.eventually("dcosd dev's init leading", func() (bool, string) {
			res, err := e.op().Leader(context.Background(), connect.NewRequest(&pb.LeaderRequest{Owner: "init"}))
			if err != nil {
				return false, err.Error()
			}
			return res.Msg.GetLeader().GetHolder() != "", sprint(res.Msg.GetLeader())
		})
	}
	// So does dev's jobs framework (election "jobs").
	if !slices.Contains(extra, "--jobs=false") {
		e.eventually("dcosd dev's jobs leading", func() (bool, string) {
			res, err := e.op().Leader(context.Background(), connect.NewRequest(&pb.LeaderRequest{Owner: "jobs", Election: "jobs"}))
			if err != nil {
				return false, err.Error()
			}
			return res.Msg.GetLeader().GetHolder() != "", sprint(res.Msg.GetLeader())
		})
	}
	return p
}

// startKernel starts `dcosd kernel` with the tokens file and extra flags;
// opToken must be an operator token of that file.
func (e *env) startKernel(tokensFile, opToken string, extra ...string) *proc {
	e.t.Helper()
	args := append([]string{"kernel", "--data-dir", e.path("kernel"), "--listen", "127.0.0.1:0", "--tokens", tokensFile}, extra...)
	p, url := e.start("dcosd kernel", "dcos kernel: listening at ", args...)
	pkiDir := e.path("kernel", "pki")
	if i := slices.Index(extra, "--pki-dir"); i >= 0 && i+1 < len(extra) {
		pkiDir = extra[i+1]
	} else if i := slices.Index(extra, "--data-dir"); i >= 0 && i+1 < len(extra) {
		pkiDir = filepath.Join(extra[i+1], "pki")
	}
	e.trustCA(filepath.Join(pkiDir, "ca.crt"))
	e.mu.Lock()
	e.url, e.opToken = url, opToken
	e.mu.Unlock()
	return p
}

// startAgent starts `dcosd agent` named name (also its label e2e=name)
// against the env's kernel, and waits until the kernel lists it UP. It
// returns the process and the agent's id.
func (e *env) startAgent(name, token string, extra ...string) (*proc, string) {
	e.t.Helper()
	return e.startAgentVia(nil, name, token, extra...)
}

// startAgentVia is startAgent with dcosd run through wrap (see startVia).
// Started again with the same name, the agent keeps its data dir.
func (e *env) startAgentVia(wrap []string, name, token string, extra ...string) (*proc, string) {
	e.t.Helper()
	dir := e.path("agents", name)
	e.mu.Lock()
	e.agentDirs = append(e.agentDirs, dir)
	e.mu.Unlock()
	args := []string{"agent", "--kernel", e.url, "--token", token, "--data-dir", dir, "--label", "e2e=" + name, "--cgroup-parent", e.cgParent + "/" + name, "--bpf-pin-dir", e.pinDir + "/" + name}
	if !slices.Contains(extra, "--ca-fingerprint") && !slices.Contains(extra, "--ca-cert") && e.caFile != "" {
		args = append(args, "--ca-cert", e.caFile)
	}
	args = append(args, extra...)
	p, _ := e.startVia(wrap, "dcosd agent "+name, "", args...)
	var id string
	e.eventually("agent "+name+" UP", func() (bool, string) {
		if !p.running() {
			e.t.Fatalf("agent %s exited: %v; stderr:\n%s", name, p.err, tail(p.stderr.String(), 100))
		}
		res, err := e.op().ListAgents(context.Background(), connect.NewRequest(&pb.ListAgentsRequest{}))
		if err != nil {
			return false, err.Error()
		}
		for _, a := range res.Msg.GetAgents() {
			if a.GetLabels()["e2e"] == name && a.GetState() == pb.AgentState_AGENT_STATE_UP {
				id = a.GetId()
				return true, ""
			}
		}
		return false, fmt.Sprint(res.Msg.GetAgents())
	})
	return p, id
}

// startInit starts `dcosd init` (a replica of the distributed init)
// against the env's kernel with a framework token, and waits for its ready
// line. name tells replicas apart in logs.
func (e *env) startInit(name, token string, extra ...string) *proc {
	e.t.Helper()
	e.mu.Lock()
	url := e.url
	e.mu.Unlock()
	args := append([]string{"init", "--kernel", url, "--token", token}, extra...)
	p, _ := e.start("dcosd init "+name, "dcos init: started against ", args...)
	return p
}

// client returns a syscall client of the env's kernel with token.
func (e *env) client(token string) syscallsv1connect.KernelClient {
	e.mu.Lock()
	defer e.mu.Unlock()
	return kclient.NewTLS(e.url, token, e.tls)
}

// op returns an operator client of the env's kernel. It is safe to call
// from another goroutine while startDev restarts dev (new URL and token).
func (e *env) op() syscallsv1connect.KernelClient {
	e.mu.Lock()
	defer e.mu.Unlock()
	return kclient.NewTLS(e.url, e.opToken, e.tls)
}

// notePID records a task pid the test saw, to be killed at cleanup.
func (e *env) notePID(pid int32) {
	if pid > 0 {
		e.mu.Lock()
		e.taskPIDs = append(e.taskPIDs, int(pid))
		e.mu.Unlock()
	}
}

// ctl runs dcosctl with args (the env's client config is passed with
// --config when dcosd dev wrote one) and returns its stdout, stderr and
// exit code.
func (e *env) ctl(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := e.ctlCmd(ctx, args...)
	var o, s bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &s
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		e.t.Fatalf("dcosctl %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		e.t.Fatalf("dcosctl %s: timed out after %v", strings.Join(args, " "), waitTimeout)
	}
	return o.String(), s.String(), code
}

// ctlCmd is a dcosctl command with the env's client config, not started.
func (e *env) ctlCmd(ctx context.Context, args ...string) *exec.Cmd {
	e.mu.Lock()
	if e.ccPath != "" {
		args = append([]string{"--config", e.ccPath}, args...)
	}
	e.mu.Unlock()
	cmd := exec.CommandContext(ctx, bin.dcosctl, args...)
	cmd.Env = e.baseEnv()
	return cmd
}

// mustCtl runs dcosctl and fails the test unless it exits 0.
func (e *env) mustCtl(args ...string) string {
	e.t.Helper()
	out, errOut, code := e.ctl(args...)
	if code != 0 {
		e.t.Fatalf("dcosctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// eventually calls cond until it returns true, failing the test with the
// last detail after waitTimeout.
func (e *env) eventually(what string, cond func() (bool, string)) {
	e.t.Helper()
	eventually(e.t, what, cond)
}

func eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last: %s", waitTimeout, what, detail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cleanup stops the daemons and kills the task processes they left.
func (e *env) cleanup() {
	t := e.t
	e.mu.Lock()
	procs := slices.Clone(e.procs)
	e.mu.Unlock()

	// Task pids the kernel knows, asked while it still runs.
	e.mu.Lock()
	url := e.url
	e.mu.Unlock()
	if url != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if res, err := e.op().ListTasks(ctx, connect.NewRequest(&pb.ListTasksRequest{})); err == nil {
			for _, tk := range res.Msg.GetTasks() {
				e.notePID(tk.GetPid())
			}
		}
		cancel()
	}
	// Agents first, then kernels: the reverse of the start order.
	for i := len(procs) - 1; i >= 0; i-- {
		if p := procs[i]; !p.stop(15 * time.Second) {
			t.Logf("%s did not stop on SIGTERM within 15s; killed", p.name)
		}
	}
	e.killTasks()
	e.waitHelpersGone()
	unmountUnder(t, e.dir)
	removeCgroups(t, e.cgParent)
	// Pinned counter links of tasks that outlived their agent (killed above).
	if err := os.RemoveAll(e.pinDir); err != nil {
		t.Errorf("bpf pins %s: %v", e.pinDir, err)
	}
	for _, p := range procs {
		errText := p.stderr.String()
		if strings.Contains(errText, "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race; stderr:\n%s", p.name, errText)
		} else if strings.HasPrefix(errText, "panic: ") || strings.Contains(errText, "\npanic: ") {
			t.Errorf("%s panicked; stderr:\n%s", p.name, tail(errText, 200))
		} else if t.Failed() {
			t.Logf("%s (%v) stdout:\n%s\nstderr (last lines):\n%s", p.name, p.cmd.Args, p.stdout.String(), tail(errText, 80))
		}
	}
}

// killTasks SIGKILLs the process group of every task process the env's
// agents started, found three ways: pids the test saw, pids in the agents'
// checkpoints, and processes whose working directory is inside the env's
// dir (a task's default working dir is its sandbox). It waits until they
// are gone.
func (e *env) killTasks() {
	t := e.t
	e.mu.Lock()
	cands := slices.Clone(e.taskPIDs)
	dirs := slices.Clone(e.agentDirs)
	e.mu.Unlock()
	for _, d := range dirs {
		files, _ := filepath.Glob(filepath.Join(d, "tasks", "*.json"))
		for _, f := range files {
			var cp struct {
				PID int `json:"pid"`
			}
			if b, err := os.ReadFile(f); err == nil && json.Unmarshal(b, &cp) == nil && cp.PID > 0 {
				cands = append(cands, cp.PID)
			}
		}
	}
	cands = append(cands, pidsWithCwdUnder(e.dir)...)
	var killed []int
	for _, pid := range cands {
		if slices.Contains(killed, pid) || !alive(pid) || !cwdUnder(pid, e.dir) && !inCgroupUnder(pid, e.cgParent) {
			// Not ours (or a reused pid): the sandbox is the proof, or
			// for a container (its cwd is in its own root) its cgroups.
			continue
		}
		syscall.Kill(-pid, syscall.SIGKILL)
		syscall.Kill(pid, syscall.SIGKILL)
		killed = append(killed, pid)
	}
	deadline := time.Now().Add(waitTimeout)
	for _, pid := range killed {
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Errorf("task process %d survived SIGKILL", pid)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if left := pidsWithCwdUnder(e.dir); len(left) > 0 {
		t.Errorf("processes left in %s: %v", e.dir, left)
	}
}

// inCgroupUnder reports whether process pid is in a cgroup beneath parent
// (a task cgroup of the env's agents) in any hierarchy.
func inCgroupUnder(pid int, parent string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.SplitN(line, ":", 3); len(f) == 3 && strings.HasPrefix(f[2], parent+"/") {
			return true
		}
	}
	return false
}

// waitHelpersGone waits for the processes the env's daemons left that
// are not tasks — plugin processes and the exec driver's supervisor, whose
// command lines name a dir inside the env's — to exit on their own (the
// supervisor exits once it holds no task); it fails the test and kills
// them if they do not.
func (e *env) waitHelpersGone() {
	deadline := time.Now().Add(waitTimeout)
	for {
		left := pidsWithArgUnder(e.dir)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pid := range left {
				b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				e.t.Errorf("process %d (%s) left behind", pid, strings.ReplaceAll(string(b), "\x00", " "))
				syscall.Kill(pid, syscall.SIGKILL)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pidsWithArgUnder returns the live processes with an argument, or an
// environment variable (a plugin's DCOS_PLUGIN_STATE_DIR), inside dir.
func pidsWithArgUnder(dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !alive(pid) {
			continue
		}
		environ, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		for _, arg := range strings.Split(string(b)+"\x00"+string(environ), "\x00") {
			if _, v, _ := strings.Cut(arg, "="); strings.HasPrefix(arg, dir+string(filepath.Separator)) || strings.HasPrefix(v, dir+string(filepath.Separator)) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// unmountUnder detaches every mount point inside dir (network namespaces
// a net driver bind-mounted in its state dir, left when its agent died).
func unmountUnder(t testing.TB, dir string) {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var points []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir+string(filepath.Separator)) {
			points = append(points, f[4])
		}
	}
	// Deepest first: detaching a mount (a tmpfs data dir) takes the ones
	// beneath it along, which could then not be unmounted by path.
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", p, err)
		}
	}
}

// cgroupDirs returns parent's directory (a cgroup path such as
// "/dcos-e2e-x") in every mounted cgroup hierarchy that has it.
func cgroupDirs(parent string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var dirs []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		i := slices.Index(f, "-")
		if i < 0 || i+1 >= len(f) || (f[i+1] != "cgroup" && f[i+1] != "cgroup2") || len(f) < 5 {
			continue
		}
		d := filepath.Join(f[4], parent)
		if _, err := os.Stat(d); err == nil {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// removeCgroups removes parent's cgroups (and the task cgroups beneath
// them) in every hierarchy, once their processes are gone.
func removeCgroups(t testing.TB, parent string) {
	for _, d := range cgroupDirs(parent) {
		var sub []string
		filepath.WalkDir(d, func(p string, de os.DirEntry, err error) error {
			if err == nil && de.IsDir() {
				sub = append(sub, p)
			}
			return nil
		})
		for _, p := range slices.Backward(sub) {
			var err error
			for range 100 {
				if err = syscall.Rmdir(p); err == nil || errors.Is(err, syscall.ENOENT) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil && !errors.Is(err, syscall.ENOENT) {
				t.Errorf("cgroup %s: %v", p, err)
			}
		}
	}
}

// alive reports whether pid names a process that has not exited (a zombie
// has exited: only its parent's wait is missing).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Field 3, after "pid (comm)"; comm may hold spaces and parens.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return true
	}
	st := s[i+2]
	return st != 'Z' && st != 'X'
}

// groupMembers returns the live processes of process group pgid.
func groupMembers(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if g, err := syscall.Getpgid(pid); err == nil && g == pgid && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cwdUnder reports whether pid's working directory is dir or inside it.
func cwdUnder(pid int, dir string) bool {
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if err != nil {
		return false
	}
	return cwd == dir || strings.HasPrefix(cwd, dir+string(filepath.Separator))
}

// pidsWithCwdUnder returns the live processes whose working directory is
// inside dir.
func pidsWithCwdUnder(dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if cwdUnder(pid, dir) && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// statusBytes reads a size field of /proc/PID/status ("VmRSS",
// "VmHWM": kB there) in bytes.
func statusBytes(pid int, field string) (int64, error) {
	v, err := statusField(pid, field)
	if err != nil {
		return 0, err
	}
	kb, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/status: %s: %w", pid, field, err)
	}
	return kb << 10, nil
}

// statusField returns field's value in /proc/PID/status, spaces trimmed
// (proc.StatusField, the one reader of that file).
func statusField(pid int, field string) (string, error) { return procfs.StatusField(pid, field) }

// mustStatusBytes is statusBytes, failing t on error.
func mustStatusBytes(t testing.TB, pid int, field string) int64 {
	t.Helper()
	n, err := statusBytes(pid, field)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// newToken returns a random token.
func newToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// tokenEntry is one entry of a dcosd tokens file.
type tokenEntry struct {
	Token string `json:"token"`
	Name  string `json:"name"`
	Role  string `json:"role"`
}

// writeTokens writes a tokens file with entries and returns its path.
func (e *env) writeTokens(path string, entries ...tokenEntry) string {
	e.t.Helper()
	b, err := json.MarshalIndent(map[string]any{"tokens": entries}, "", "  ")
	if err == nil {
		err = os.MkdirAll(filepath.Dir(path), 0o700)
	}
	if err == nil {
		err = os.WriteFile(path, b, 0o600)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return path
}

// watcher collects the events of one Watch stream in the background.
type watcher struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	events []*pb.Event
	err    error
	more   chan struct{} // closed (and replaced) when events or err change
}

// watch starts a Watch after revision after (it must be > 0, so that no
// event can slip between the caller's snapshot and the stream) with c. It
// is stopped at cleanup.
func (e *env) watch(c syscallsv1connect.KernelClient, after int64) *watcher {
	e.t.Helper()
	if after <= 0 {
		e.t.Fatalf("watch after %d: pass a revision taken from a List response", after)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{cancel: cancel, done: make(chan struct{}), more: make(chan struct{})}
	go func() {
		defer close(w.done)
		st, err := c.Watch(ctx, connect.NewRequest(&pb.WatchRequest{AfterRevision: after}))
		if err == nil {
			for st.Receive() {
				if ev := st.Msg(); ev.GetKind() != pb.EventKind_EVENT_KIND_UNSPECIFIED {
					w.add(ev, nil)
				}
			}
			err = st.Err()
			st.Close()
		}
		if err == nil {
			err = io.EOF
		}
		w.add(nil, err)
	}()
	e.t.Cleanup(func() { w.cancel(); <-w.done })
	return w
}

func (w *watcher) add(ev *pb.Event, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ev != nil {
		w.events = append(w.events, ev)
	}
	if err != nil {
		w.err = err
	}
	close(w.more)
	w.more = make(chan struct{})
}

// snapshot returns the events received so far.
func (w *watcher) snapshot() []*pb.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.events)
}

// waitFor waits for an event matching pred and returns it; the test fails
// if the stream ends or nothing matches within waitTimeout.
func (w *watcher) waitFor(t testing.TB, what string, pred func(*pb.Event) bool) *pb.Event {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		w.mu.Lock()
		for _, ev := range w.events {
			if pred(ev) {
				w.mu.Unlock()
				return ev
			}
		}
		err, more, n := w.err, w.more, len(w.events)
		w.mu.Unlock()
		if err != nil {
			t.Fatalf("watch ended (%v) before %s; events:\n%s", err, what, formatEvents(w.snapshot()))
		}
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("no event %s within %v; %d events:\n%s", what, waitTimeout, n, formatEvents(w.snapshot()))
		}
	}
}

// formatEvents prints events one a line: revision, kind, id, state, reason.
func formatEvents(evs []*pb.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "  %s\n", eventString(ev))
	}
	return b.String()
}

func eventString(ev *pb.Event) string {
	id, state := "", ""
	switch {
	case ev.GetTask() != nil:
		id, state = ev.GetTask().GetId(), ev.GetTask().GetState().String()
	case ev.GetAllocation() != nil:
		id, state = ev.GetAllocation().GetId(), ev.GetAllocation().GetState().String()
	case ev.GetAgent() != nil:
		id, state = ev.GetAgent().GetId(), ev.GetAgent().GetState().String()
	}
	return fmt.Sprintf("%d %s %s %s %q", ev.GetRevision(), ev.GetKind(), id, state, ev.GetReason())
}

// Event predicates.

func taskState(id string, s pb.TaskState) func(*pb.Event) bool {
	return func(ev *pb.Event) bool {
		return ev.GetKind() == pb.EventKind_EVENT_KIND_TASK_STATE && ev.GetTask().GetId() == id && ev.GetTask().GetState() == s
	}
}

func allocEvent(id string, k pb.EventKind) func(*pb.Event) bool {
	return func(ev *pb.Event) bool { return ev.GetKind() == k && ev.GetAllocation().GetId() == id }
}

func agentEvent(id string, k pb.EventKind) func(*pb.Event) bool {
	return func(ev *pb.Event) bool { return ev.GetKind() == k && ev.GetAgent().GetId() == id }
}

// Small typed calls that fail the test on error.

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return c
}

func allocate(t testing.TB, c syscallsv1connect.KernelClient, req *pb.AllocateRequest) *pb.AllocateResponse {
	t.Helper()
	res, err := c.Allocate(ctx(t), connect.NewRequest(req))
	if err != nil {
		t.Fatalf("Allocate(%v): %v", req, err)
	}
	return res.Msg
}

// allocateOne allocates one instance and requires it GRANTED.
func allocateOne(t testing.TB, c syscallsv1connect.KernelClient, req *pb.AllocateRequest) *pb.Allocation {
	t.Helper()
	res := allocate(t, c, req)
	if len(res.GetAllocations()) != 1 || res.GetAllocations()[0].GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
		t.Fatalf("Allocate(%v) = %v, want one GRANTED allocation", req, res)
	}
	return res.GetAllocations()[0]
}

func launch(t testing.TB, c syscallsv1connect.KernelClient, req *pb.LaunchRequest) *pb.Task {
	t.Helper()
	res, err := c.Launch(ctx(t), connect.NewRequest(req))
	if err != nil {
		t.Fatalf("Launch(%v): %v", req, err)
	}
	return res.Msg.GetTask()
}

func revoke(t testing.TB, c syscallsv1connect.KernelClient, id string) int64 {
	t.Helper()
	res, err := c.Revoke(ctx(t), connect.NewRequest(&pb.RevokeRequest{Id: id}))
	if err != nil {
		t.Fatalf("Revoke(%s): %v", id, err)
	}
	return res.Msg.GetRevision()
}

func listAgents(t testing.TB, c syscallsv1connect.KernelClient) *pb.ListAgentsResponse {
	t.Helper()
	res, err := c.ListAgents(ctx(t), connect.NewRequest(&pb.ListAgentsRequest{}))
	if err != nil {
		t.Fatalf("ListAgents: %v", err)
	}
	return res.Msg
}

func listAllocations(t testing.TB, c syscallsv1connect.KernelClient) *pb.ListAllocationsResponse {
	t.Helper()
	res, err := c.ListAllocations(ctx(t), connect.NewRequest(&pb.ListAllocationsRequest{}))
	if err != nil {
		t.Fatalf("ListAllocations: %v", err)
	}
	return res.Msg
}

func listTasks(t testing.TB, c syscallsv1connect.KernelClient) *pb.ListTasksResponse {
	t.Helper()
	res, err := c.ListTasks(ctx(t), connect.NewRequest(&pb.ListTasksRequest{}))
	if err != nil {
		t.Fatalf("ListTasks: %v", err)
	}
	return res.Msg
}

// sleepTask is the long-running task the tests launch: it prints, then
// sleeps long enough to outlive any test.
func sleepTask(allocID string) *pb.LaunchRequest {
	return &pb.LaunchRequest{AllocationId: allocID, Command: "sh", Args: []string{"-c", "echo hi; sleep 300"}}
}

const mi = 1 << 20

func sprint(v ...any) string { return fmt.Sprint(v...) }

// kernelPKI returns the flags that give a kernel of the env's cluster
// the cluster's KEK and CA — the ones its etcd's certificates come from,
// as an operator copies them to each kernel's machine (--kek-file,
// --pki-dir) — and makes the env trust that CA.
func (e *env) kernelPKI(p *etcdPKI) []string {
	e.t.Helper()
	e.trustCA(filepath.Join(p.admin, "pki", pki.BundleFile))
	return p.kernelFlags()
}

// agentClient returns a syscall client of the env's kernel with an agent
// token and a client certificate of that agent's own, obtained by
// CertRenew (agents must present one: the door binds it to the token).
func (e *env) agentClient(token string) syscallsv1connect.KernelClient {
	e.t.Helper()
	conf := e.agentTLS(token)
	e.mu.Lock()
	defer e.mu.Unlock()
	return kclient.NewTLS(e.url, token, conf)
}

// agentTLS is a client TLS configuration presenting a certificate of the
// agent whose token is token, obtained by CertRenew.
func (e *env) agentTLS(token string) *tls.Config {
	e.t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		e.t.Fatal(err)
	}
	csr, err := pki.CreateCSR(key, "e2e")
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := e.client(token).CertRenew(context.Background(), connect.NewRequest(&pb.CertRenewRequest{Csr: csr}))
	if err != nil {
		e.t.Fatalf("CertRenew: %v", err)
	}
	certs, err := pki.ParseCerts(res.Msg.GetCertificate())
	if err != nil {
		e.t.Fatal(err)
	}
	cert := tls.Certificate{PrivateKey: key, Leaf: certs[0]}
	for _, c := range certs {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	conf := kernelTLS.Clone()
	conf.ClientSessionCache = nil
	conf.Certificates = []tls.Certificate{cert}
	return conf
}
