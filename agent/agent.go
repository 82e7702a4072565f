package agent

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/ebpf"
	"github.com/dcos-kernel/dcos/internal/atomicfile"
	"github.com/dcos-kernel/dcos/internal/executor/proc"
	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/quantity"
	"github.com/dcos-kernel/dcos/plugins/contract"
	"github.com/dcos-kernel/dcos/sdk/transport"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

const (
	// DefaultMaxConcurrentStarts is how many tasks an agent starts at once
	// unless told otherwise.
	DefaultMaxConcurrentStarts = 64

	// DefaultKillGrace is how long a task has between SIGTERM and SIGKILL
	// when Config.KillGrace is zero.
	DefaultKillGrace = 5 * time.Second

	// defaultHeartbeat is used when the kernel answers no heartbeat interval.
	defaultHeartbeat = 5 * time.Second
	// callTimeout bounds every unary call to the kernel.
	callTimeout = 10 * time.Second
)

// Config configures an Agent. The zero value is not valid: DataDir and
// either KernelURL or Client are required.
type Config struct {
	// KernelURL is the kernel's base URL, e.g. "http://127.0.0.1:7070",
	// or a comma-separated list of a cluster's kernels (calls go to the
	// leader and fail over; transport.Cluster).
	KernelURL string
	// Token is the agent's bearer token.
	Token string
	// DataDir holds the agent id, task checkpoints and sandboxes. It is
	// created if missing. Two agents must not share one (Run locks it).
	DataDir string
	// Resources overrides fingerprinted resources, e.g.
	// "cpus=9,mem=18Gi,disk=100Gi"; fields not named keep their measured
	// value.
	Resources string
	// Labels are the node's labels, sent at registration.
	Labels map[string]string
	// KillGrace is the time between SIGTERM and SIGKILL when a task is
	// killed; zero means DefaultKillGrace.
	KillGrace time.Duration
	// Logger receives the agent's logs; nil means slog.Default().
	Logger *slog.Logger
	// Client, if set, is used instead of a client built from KernelURL and
	// Token.
	Client syscallsv1connect.KernelClient
	// Plugins runs the task drivers and isolators (the agent's plugin
	// host). Required. Tasks name their driver; DefaultDriver runs the
	// ones that do not.
	Plugins Plugins
	// Isolator names the isolator every task runs under; empty runs tasks
	// without isolation.
	Isolator string
	// MaxConcurrentStarts bounds the tasks being started at once; zero
	// or less means DefaultMaxConcurrentStarts.
	MaxConcurrentStarts int
	// Network names the net driver that gives tasks asking for network
	// "bridge" their own namespace; empty: such tasks fail to start.
	Network string
	// UnderlayIP is this node's address for the overlay between agents
	// (sent at registration); empty: none.
	UnderlayIP string
	// HostPorts is the node's range of host ports the kernel hands out to
	// allocations, "FIRST-LAST" (e.g. "31000-32000"), sent at
	// registration; empty: none (tasks may still ask for static ports
	// outside any range).
	HostPorts string
	// Net, if set, counts each isolated task's network traffic (loaded by
	// the caller, who also closes it after Run returns); nil runs tasks
	// without network counters.
	Net *ebpf.Accounting
	// Storage names the storage driver that gives each task its sandbox
	// (of the task's disk_bytes); the plugin host must serve it (a
	// Storage(name) method). Empty: plain directories under DataDir, no
	// size enforced.
	Storage string
	// SandboxRetention is how long a storage driver's sandbox is kept
	// after its task ended (for its stdout and stderr); zero removes it at
	// once.
	SandboxRetention time.Duration
	// HostVolumes are the host volumes tasks may mount, name → path (the
	// storage driver knows them too, with their read-only flag).
	HostVolumes map[string]string
	// UsageInterval is how often the tasks' usage is sampled and sent with
	// a heartbeat; zero means DefaultUsageInterval. Heartbeats in between
	// carry no usage.
	UsageInterval time.Duration
	// TaskIsolation runs every task isolated (see isolation.go and
	// contract.TaskIsolation): as a uid of its owner's own from TaskUIDs
	// (or the user Task.user names), without capabilities, in its own
	// namespaces, without sight of DataDir and HiddenPaths. It needs root
	// and drivers with Capabilities.Isolation. False: tasks run as the
	// agent's user, in its namespaces, and a task with a user fails.
	TaskIsolation bool
	// TaskUIDs is the range of owners' uids, "FIRST-LAST"; empty means
	// DefaultTaskUIDs.
	TaskUIDs string
	// HiddenPaths are more paths isolated tasks must not see (the kernel's
	// data dir, token files, client configs); DataDir always is.
	HiddenPaths []string
	// LogMaxBytes and LogMaxFiles bound each task's stdout and stderr
	// (rotated at LogMaxBytes, at most LogMaxFiles files kept) unless the
	// task's LogConfig sets its own; 0 means logfile's defaults (10 MiB, 5
	// files). LogMaxBytes is 0 or 4 KiB to 1 GiB, LogMaxFiles 0 or 1 to
	// 100.
	LogMaxBytes int64
	LogMaxFiles int
	// StreamClient, if set, carries the log and exec streams
	// (AgentStreams, AgentRelay; the relay is bidirectional and needs
	// HTTP/2, h2c over http://). Nil: Client when set, else a client of
	// KernelURL built with transport.H2CClient.
	StreamClient syscallsv1connect.KernelClient
	// TLS is the TLS configuration of the agent's calls to KernelURL
	// (kernels serve only TLS): normally a pki.Reloader's ClientConfig,
	// presenting the agent's certificate, which the kernel binds to its
	// token. Nil: the system's roots, no certificate. Unused when Client
	// and StreamClient are set.
	TLS *tls.Config
	// CABundle is the cluster's trust bundle (PEM), written into every
	// task's sandbox and named by DCOS_CA_FILE (EnvCAFile); nil: none.
	CABundle []byte
	// OnCABundle, if set, is called from the heartbeat loop with each
	// successful heartbeat's HeartbeatResponse.ca_bundle_fingerprint (""
	// from a kernel that sends none): the caller renews the agent's
	// certificate when it is not its bundle's (a CA rotation). It must
	// not block.
	OnCABundle func(fingerprint string)
}

// Bounds of Config.LogMaxBytes and LogMaxFiles (and of a task's
// LogConfig, which the kernel checks).
const (
	minLogBytes = 4 << 10
	maxLogBytes = 1 << 30
	maxLogFiles = 100
)

// DefaultUsageInterval is Config.UsageInterval's default.
const DefaultUsageInterval = 5 * time.Second

// Plugins is what the agent needs of its plugin host: live clients of its
// drivers and isolators by name (each survives plugin restarts; see
// plugins/host) and their status for the kernel.
type Plugins interface {
	Driver(name string) (contract.Driver, error)
	Isolator(name string) (contract.Isolator, error)
	Net(name string) (contract.NetDriver, error)
	Info() []*syscallsv1.PluginInfo
}

// Agent runs the tasks the kernel places on one node. Create it with New
// and start it with Run; ID is safe for concurrent use.
type Agent struct {
	client       syscallsv1connect.KernelClient
	httpClient   *http.Client                   // set when the agent built client; idle connections closed by Run
	streamClient syscallsv1connect.KernelClient // AgentStreams and AgentRelay (streams.go)
	streamHTTP   *http.Client                   // set when the agent built streamClient; closed by Run
	caMu         sync.Mutex                     // guards caBundle (SetCABundle)
	caBundle     []byte                         // Config.CABundle, then SetCABundle's
	onCABundle   func(fingerprint string)       // Config.OnCABundle; nil: none

	logMaxBytes int64 // agent defaults of the tasks' log limits (0: logfile's)
	logMaxFiles int

	log       *slog.Logger
	labels    map[string]string
	node      node
	killGrace time.Duration

	plugins       Plugins
	isolator      string
	network       string // net driver name
	underlay      string
	hostPorts     string
	net           *ebpf.Accounting
	storage       string // storage driver name
	retention     time.Duration
	hostVolumes   map[string]string
	launching     chan struct{} // a semaphore of the tasks being started
	usageInterval time.Duration
	uids          *uidTable // nil: tasks run unisolated
	hidden        []string  // paths isolated tasks do not see

	capsMu sync.Mutex
	caps   map[string]*contract.Capabilities // by driver name; cleared when a driver restarts

	images *images // the image drivers' images, reported with heartbeats (images.go)

	dataDir     string
	sandboxDir  string
	checkpoints checkpointStore
	reports     *reportQueue
	metrics     agentMetrics // see metrics.go

	regMu sync.Mutex // serialises registrations

	registered     chan struct{} // closed after the first registration
	registeredOnce sync.Once

	retainMu sync.Mutex
	retained map[string]*contract.Sandbox // ended tasks' sandboxes kept for the retention

	mu          sync.Mutex
	id          string
	subnet      string // the node's subnet and the cluster CIDR, from the last registration
	clusterCIDR string
	savedID     string // the id in <data-dir>/agent-id
	heartbeat   time.Duration
	tasks       map[string]*task
	finished    recentSet
	started     bool

	// Set by Run before any goroutine starts.
	ctx  context.Context // cancelled when Run returns
	stop <-chan struct{} // ctx.Done()
	wg   sync.WaitGroup
}

// New validates cfg, creates the data dir and fingerprints the node. It
// contacts nobody: the kernel is first called by Run.
func New(cfg Config) (*Agent, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("agent: config: DataDir is required")
	}
	if cfg.Client == nil && cfg.KernelURL == "" {
		return nil, errors.New("agent: config: KernelURL or Client is required")
	}
	if cfg.Plugins == nil {
		return nil, errors.New("agent: config: Plugins is required")
	}
	if cfg.KillGrace < 0 {
		return nil, fmt.Errorf("agent: config: KillGrace must not be negative, got %v", cfg.KillGrace)
	}
	if b := cfg.LogMaxBytes; b != 0 && (b < minLogBytes || b > maxLogBytes) {
		return nil, fmt.Errorf("agent: config: LogMaxBytes %d: want 0 or 4 KiB to 1 GiB", b)
	}
	if n := cfg.LogMaxFiles; n < 0 || n > maxLogFiles {
		return nil, fmt.Errorf("agent: config: LogMaxFiles %d: want 0 or 1 to %d", n, maxLogFiles)
	}
	override, err := quantity.ParseResources(cfg.Resources)
	if err != nil {
		return nil, fmt.Errorf("agent: config: Resources: %w", err)
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("agent: config: DataDir: %w", err)
	}
	a := &Agent{
		client:      cfg.Client,
		log:         cfg.Logger,
		labels:      maps.Clone(cfg.Labels),
		killGrace:   cfg.KillGrace,
		dataDir:     dataDir,
		sandboxDir:  filepath.Join(dataDir, "sandboxes"),
		checkpoints: checkpointStore{dir: filepath.Join(dataDir, "tasks")},
		reports:     newReportQueue(),
		tasks:       make(map[string]*task),
		finished:    newRecentSet(4096),
		registered:  make(chan struct{}),
		plugins:     cfg.Plugins,
		isolator:    cfg.Isolator,
		network:     cfg.Network,
		underlay:    cfg.UnderlayIP,
		hostPorts:   cfg.HostPorts,
		net:         cfg.Net,
		storage:     cfg.Storage,
		retention:   cfg.SandboxRetention,
		hostVolumes: maps.Clone(cfg.HostVolumes),
		launching:   make(chan struct{}, cmp.Or(max(cfg.MaxConcurrentStarts, 0), DefaultMaxConcurrentStarts)),
		caps:        map[string]*contract.Capabilities{},
		images:      newImages(),
		logMaxBytes: cfg.LogMaxBytes,
		logMaxFiles: cfg.LogMaxFiles,

		streamClient: cfg.StreamClient,
		caBundle:     cfg.CABundle,
		onCABundle:   cfg.OnCABundle,

		usageInterval: cmp.Or(cfg.UsageInterval, DefaultUsageInterval),
	}
	var kernels *transport.Cluster
	if cfg.KernelURL != "" {
		var err error
		if kernels, err = transport.ParseCluster(cfg.KernelURL); err != nil {
			return nil, fmt.Errorf("agent: config: KernelURL: %w", err)
		}
		kernels.WithTLS(cfg.TLS)
	}
	if a.client == nil {
		a.httpClient = kernels.HTTPClient()
		a.client = syscallsv1connect.NewKernelClient(a.httpClient, kernels.URL(),
			connect.WithInterceptors(kclient.Bearer(cfg.Token)))
	}
	if a.streamClient == nil && cfg.Client != nil {
		a.streamClient = cfg.Client
	}
	if a.streamClient == nil {
		a.streamHTTP = kernels.H2CClient()
		a.streamClient = syscallsv1connect.NewKernelClient(a.streamHTTP, kernels.URL(),
			connect.WithInterceptors(kclient.Bearer(cfg.Token)))
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.killGrace == 0 {
		a.killGrace = DefaultKillGrace
	}
	// The data dir holds tokens' effects, checkpoints with tasks' env and
	// every sandbox: the agent's alone.
	for _, d := range []string{dataDir, a.sandboxDir, a.checkpoints.dir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("agent: data dir: %w", err)
		}
	}
	if err := os.Chmod(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: data dir: %w", err)
	}
	if cfg.TaskIsolation {
		if os.Geteuid() != 0 {
			return nil, errors.New("agent: config: TaskIsolation needs root")
		}
		first, last, err := ParseUIDRange(cmp.Or(cfg.TaskUIDs, DefaultTaskUIDs))
		if err != nil {
			return nil, fmt.Errorf("agent: config: TaskUIDs: %w", err)
		}
		if a.uids, err = loadUIDs(filepath.Join(dataDir, uidsFile), first, last); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		a.hidden = []string{dataDir}
		for _, p := range cfg.HiddenPaths {
			if !filepath.IsAbs(p) || filepath.Clean(p) == "/" {
				return nil, fmt.Errorf("agent: config: HiddenPaths: %q: want an absolute path other than /", p)
			}
			if p = filepath.Clean(p); !slices.Contains(a.hidden, p) {
				a.hidden = append(a.hidden, p)
			}
		}
	}
	if a.node, err = fingerprint(dataDir, override); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	b, err := os.ReadFile(a.idPath())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("agent: agent id: %w", err)
	}
	a.savedID = strings.TrimSpace(string(b))
	return a, nil
}

// ID returns the id the kernel gave this agent, or "" before Run first
// registered.
func (a *Agent) ID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.id
}

// Registered is closed once Run has registered with the kernel for the
// first time (the agent's resources are then offered).
func (a *Agent) Registered() <-chan struct{} { return a.registered }

func (a *Agent) idPath() string { return filepath.Join(a.dataDir, "agent-id") }

// Run recovers checkpointed tasks, registers with the kernel (retrying with
// backoff until it answers), then heartbeats, watches for tasks, runs them
// and reports their states until ctx is cancelled. It returns nil when ctx
// is cancelled, after every goroutine it started has ended and every file
// it opened is closed; tasks keep running and are re-adopted by the next
// Run on the same data dir. Last, with a net driver, it removes the node's
// network unless a task still uses it (see removeNode). It returns an
// error only when the agent cannot run at all (the data dir is locked by
// another agent or unreadable). Run may be called once per Agent.
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.started {
		a.mu.Unlock()
		return errors.New("agent: Run called twice")
	}
	a.started = true
	a.mu.Unlock()

	lock, err := proc.Lock(filepath.Join(a.dataDir, "agent.lock"))
	if err != nil {
		return fmt.Errorf("agent: data dir: %w", err)
	}
	defer lock.Close()
	if a.httpClient != nil {
		defer a.httpClient.CloseIdleConnections()
	}
	if a.streamHTTP != nil {
		defer a.streamHTTP.CloseIdleConnections()
	}

	ctx, cancel := context.WithCancel(ctx)
	defer a.removeNode() // last: no goroutine may call the net driver any more
	defer a.wg.Wait()
	defer cancel()
	a.ctx, a.stop = ctx, ctx.Done()

	if err := a.recover(); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	rev, err := a.register(ctx)
	if err != nil {
		return nil // ctx cancelled
	}
	a.wg.Go(func() { a.reports.run(ctx, a.client, a.ID, a.log) })
	a.wg.Go(func() { a.heartbeatLoop(ctx) })
	a.wg.Go(func() { a.watchLoop(ctx, rev) })
	a.wg.Go(func() { a.streamsLoop(ctx) })
	if a.network != "" {
		a.wg.Go(func() { a.watchPeers(ctx, rev) })
	}
	<-ctx.Done()
	a.log.Info("agent stopping; tasks keep running", "agent", a.ID())
	return nil
}

// register registers with the kernel until it answers or ctx ends (the
// only error), then reconciles the tasks the kernel expects with the ones
// the agent runs. It returns the revision to watch after. An id the kernel
// answers NotFound for (it never issued it) is dropped: the agent joins
// as a new one.
func (a *Agent) register(ctx context.Context) (int64, error) {
	a.regMu.Lock()
	defer a.regMu.Unlock()
	bo := newBackoff()
	for {
		a.mu.Lock()
		id := a.id
		if id == "" {
			id = a.savedID
		}
		running := a.runningIDsLocked()
		a.mu.Unlock()
		req := &syscallsv1.RegisterAgentRequest{
			AgentId:        id,
			Hostname:       a.node.hostname,
			Labels:         a.labels,
			Resources:      a.node.resources,
			RunningTaskIds: running,
			Plugins:        a.plugins.Info(),
			UnderlayIp:     a.underlay,
			HostPorts:      a.hostPorts,
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		req.Volumes = a.localVolumes(cctx)
		resp, err := a.client.RegisterAgent(cctx, connect.NewRequest(req))
		cancel()
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if connect.CodeOf(err) == connect.CodeNotFound && id != "" {
			// The kernel never issued id (its state is not the one this
			// agent joined): join as a new agent; the tasks it runs are
			// not the kernel's and reconcile kills them.
			a.log.Warn("kernel does not know this agent's id; registering as a new agent", "agent", id, "err", err)
			a.mu.Lock()
			a.id, a.savedID = "", ""
			a.mu.Unlock()
			continue
		}
		if err != nil {
			d := bo.next()
			a.log.Warn("register failed; retrying", "in", d, "err", err)
			if !sleep(ctx, d) {
				return 0, ctx.Err()
			}
			continue
		}
		msg := resp.Msg
		if msg.GetAgentId() == "" {
			d := bo.next()
			a.log.Warn("kernel answered register without an agent id; retrying", "in", d)
			if !sleep(ctx, d) {
				return 0, ctx.Err()
			}
			continue
		}
		hb := msg.GetHeartbeatInterval().AsDuration()
		if hb <= 0 {
			hb = defaultHeartbeat
		}
		a.mu.Lock()
		a.id, a.heartbeat = msg.GetAgentId(), hb
		a.subnet, a.clusterCIDR = msg.GetSubnet(), msg.GetClusterCidr()
		saved := a.savedID
		a.mu.Unlock()
		for _, name := range msg.GetDestroyVolumes() { // destroyed while this agent was away
			a.destroyVolume(&syscallsv1.Volume{Name: name})
		}
		if msg.GetAgentId() != saved {
			if err := atomicfile.WriteDurable(a.idPath(), []byte(msg.GetAgentId()+"\n")); err != nil {
				a.log.Error("cannot persist agent id; a restart will register as a new agent", "err", err)
			} else {
				a.mu.Lock()
				a.savedID = msg.GetAgentId()
				a.mu.Unlock()
			}
		}
		a.log.Info("registered", "agent", msg.GetAgentId(), "heartbeat", hb, "running", len(running), "expected", len(msg.GetTasks()))
		a.configureNode(ctx)
		a.images.reset() // the kernel may be a new one: send the list again
		a.reconcile(running, msg.GetTasks())
		a.registeredOnce.Do(func() { close(a.registered) })
		return msg.GetRevision(), nil
	}
}

// reconcile makes the agent agree with the tasks the kernel expects:
// tasks it reported running that the kernel does not list are killed;
// PENDING tasks it does not run are launched; STARTING or RUNNING ones it
// does not know are reported LOST; running ones the kernel still thinks
// are not running yet are reported RUNNING again.
func (a *Agent) reconcile(reported []string, expected []*syscallsv1.Task) {
	want := make(map[string]*syscallsv1.Task, len(expected))
	for _, t := range expected {
		want[t.GetId()] = t
	}
	for _, id := range reported {
		if _, ok := want[id]; !ok {
			a.kill(id, "killed: the kernel does not expect this task on the agent")
		}
	}
	for _, t := range expected {
		a.mu.Lock()
		tk, known := a.tasks[t.GetId()]
		done := a.finished.has(t.GetId())
		var rerun *syscallsv1.ReportTaskStatusRequest
		if known && tk.state == taskRunning && t.GetState() != syscallsv1.TaskState_TASK_STATE_RUNNING {
			rerun = tk.statusLocked(syscallsv1.TaskState_TASK_STATE_RUNNING)
		}
		a.mu.Unlock()
		switch {
		case known || done:
			if rerun != nil {
				a.reports.push(report{req: rerun})
			}
		case t.GetState() == syscallsv1.TaskState_TASK_STATE_PENDING:
			a.launch(t)
		case t.GetState() == syscallsv1.TaskState_TASK_STATE_STARTING, t.GetState() == syscallsv1.TaskState_TASK_STATE_RUNNING:
			a.log.Warn("kernel expects a task the agent does not have", "task", t.GetId())
			a.reports.push(report{req: &syscallsv1.ReportTaskStatusRequest{
				TaskId: t.GetId(),
				State:  syscallsv1.TaskState_TASK_STATE_LOST,
				Reason: "task not found on agent after restart",
			}})
		}
	}
}

// heartbeatLoop heartbeats every interval (and early when the image list
// changed by a removal); when the kernel answers that it has marked the
// agent lost or forgotten it, it registers again. Image removals the
// kernel answers run in their own goroutine (images.go).
func (a *Agent) heartbeatLoop(ctx context.Context) {
	var sampled time.Time
	for {
		a.mu.Lock()
		d, id := a.heartbeat, a.id
		a.mu.Unlock()
		if !sleepOrKick(ctx, d, a.images.kick) {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		req := &syscallsv1.HeartbeatRequest{AgentId: id, Plugins: a.plugins.Info(), Images: a.imagesForHeartbeat(cctx)}
		if time.Since(sampled) >= a.usageInterval {
			req.Usage, sampled = a.usage(cctx), time.Now()
		}
		resp, err := a.client.Heartbeat(cctx, connect.NewRequest(req))
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			a.imagesSent(req.GetImages())
			if rm := resp.Msg.GetRemoveImages(); len(rm) > 0 {
				a.wg.Go(func() { a.removeImages(ctx, rm) })
			}
			if a.onCABundle != nil {
				a.onCABundle(resp.Msg.GetCaBundleFingerprint())
			}
		}
		a.metrics.heartbeat(req.GetUsage(), err)
		switch connect.CodeOf(err) {
		case connect.CodeNotFound, connect.CodeFailedPrecondition:
			a.log.Warn("kernel lost this agent; registering again", "agent", id, "err", err)
			if _, err := a.register(ctx); err != nil {
				return
			}
		default:
			if err != nil {
				a.log.Warn("heartbeat failed", "err", err)
			}
		}
	}
}

// runningIDsLocked lists the tasks that have a live process (started,
// re-adopted, or still starting), in no particular order. a.mu must be
// held.
func (a *Agent) runningIDsLocked() []string {
	var ids []string
	for id, tk := range a.tasks {
		if tk.state != taskExited {
			ids = append(ids, id)
		}
	}
	return ids
}

// recentSet remembers the last n task ids that ended, so that a stale
// PENDING for a task that already ran does not start it again.
type recentSet struct {
	n     int
	order []string
	set   map[string]struct{}
}

func newRecentSet(n int) recentSet {
	return recentSet{n: n, set: make(map[string]struct{})}
}

func (r *recentSet) has(id string) bool { _, ok := r.set[id]; return ok }

func (r *recentSet) add(id string) {
	if r.has(id) {
		return
	}
	if len(r.order) == r.n {
		delete(r.set, r.order[0])
		r.order = r.order[1:]
	}
	r.order = append(r.order, id)
	r.set[id] = struct{}{}
}
