package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	"github.com/dcos-kernel/dcos/agent"
	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/clientconfig"
	"github.com/dcos-kernel/dcos/internal/metrics"
	"github.com/dcos-kernel/dcos/internal/pki"
	"github.com/dcos-kernel/dcos/internal/quantity"
	"github.com/dcos-kernel/dcos/internal/store"
	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/plugins/policies"
	"github.com/dcos-kernel/dcos/sdk/framework"
)

// Run runs dcosd with args (args[0] is the program name) and returns the
// exit code. It returns when ctx ends (SIGTERM) after a clean stop.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := &cli.App{
		Name:      "dcosd",
		Usage:     "the dcos kernel and agent",
		Writer:    stdout,
		ErrWriter: stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"DCOS_LOG_LEVEL"}},
		},
		Commands:       []*cli.Command{devCommand(), kernelCommand(), agentCommand(), initCommand(), jobsCommand(), pluginCommand(), supervisorCommand(), caCommand()},
		ExitErrHandler: func(*cli.Context, error) {},
	}
	if err := app.RunContext(ctx, args); err != nil {
		fmt.Fprintln(stderr, "dcosd:", err)
		return 1
	}
	return 0
}

func logger(c *cli.Context) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: lvl}))
}

func defaultDataDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "dcos")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "dcos")
	}
	return filepath.Join(os.TempDir(), "dcos")
}

var kernelFlags = append([]cli.Flag{
	&cli.StringFlag{Name: "listen", Value: "127.0.0.1:7070", Usage: "address the syscall API listens on (port 0: any free port)"},
	&cli.StringFlag{Name: "tokens", Usage: "tokens file of static tokens, served alongside the cluster's stored tokens (default DATA_DIR/tokens.json if it exists; a --tokens file must exist)"},
	&cli.StringSliceFlag{Name: "etcd-endpoints", Usage: "external etcd endpoints (default: an embedded etcd under the data dir)"},
	&cli.StringFlag{Name: "etcd-prefix", Value: "/dcos/", Usage: "key prefix in etcd"},
	&cli.StringFlag{Name: "advertise-url", Usage: "URL other kernels, agents and clients reach this kernel at (default: the --listen address; the host name when it listens on every address)"},
	&cli.DurationFlag{Name: "leader-lease", Value: store.DefaultLeaderLease, Usage: "lease of the kernel election: how long a leader cut off from etcd keeps the lead before a standby takes over (a crashed leader is replaced at once)"},
	&cli.DurationFlag{Name: "heartbeat-interval", Value: time.Second, Usage: "how often agents heartbeat"},
	&cli.DurationFlag{Name: "heartbeat-timeout", Value: 10 * time.Second, Usage: "silence after which an agent is marked lost"},
	&cli.StringFlag{Name: "default-policy", Value: policies.Default, Usage: "allocation policy until an operator loads another (a built-in: " + strings.Join(policies.Names(), ", ") + ", or first-fit)"},
	&cli.StringSliceFlag{Name: "role-weight", Usage: "DRF weight of a role, NAME=WEIGHT (repeatable; default 1); a start-up default: a weight set by dcosctl role set wins (docs/roles.md)"},
	&cli.StringSliceFlag{Name: "role-quota", Usage: "quota of a role, NAME:cpus=4,mem=8Gi,disk=100Gi (repeatable; any subset); a start-up default: a quota set by dcosctl role set wins (docs/roles.md)"},
	&cli.StringSliceFlag{Name: "role-cpu-class", Usage: "CPU class of a role's tasks, NAME=normal|idle (repeatable; default normal; idle: its tasks run on CPU time others leave, e.g. batch=idle); a start-up default: a class set by dcosctl role set wins (docs/roles.md)"},
	&cli.IntFlag{Name: "max-pending", Value: kernel.DefaultMaxPending, Usage: "pending allocations one framework may hold per role; more are refused ResourceExhausted (-1: no cap; operators are not capped)"},
	&cli.StringSliceFlag{Name: "role-max-pending", Usage: "--max-pending for one role, ROLE=N (repeatable; \"*\" is the default role)"},
	&cli.StringSliceFlag{Name: "role-users", Usage: "users other than the default unprivileged one the tasks of a role may run as, `ROLE=USER[,USER...]` (repeatable; USER \"*\" allows any, e.g. db=root,postgres); other roles' tasks may not set a user"},
	&cli.StringFlag{Name: "wasm-cache-dir", Value: defaultCacheDir(), Usage: "compilation cache for policy modules (\"\" disables it)"},
	&cli.StringFlag{Name: "store-min-free", Value: "64Mi", Usage: "free space the embedded etcd's filesystem must keep: below it writes answer Unavailable until space is freed (0: no floor)"},
	&cli.StringFlag{Name: "store-quota", Value: "2Gi", Usage: "size of the embedded etcd's database past which etcd refuses writes (its NOSPACE alarm; disarmed by itself once back under 90%)"},
	&cli.StringFlag{Name: "default-disk", Usage: "disk of allocations that ask for none, e.g. 64Mi (default 0; dcosd dev with sized sandboxes: " + quantity.FormatBytes(devDefaultDisk) + ")"},
	&cli.StringFlag{Name: "cluster-cidr", Value: kernel.DefaultClusterCIDR.String(), Usage: "IPv4 `CIDR` (a /24 or shorter prefix) each agent's /24 for bridge tasks comes from; agents keep theirs, so only grow it to a prefix that contains the old one"},
	&cli.BoolFlag{Name: "audit", Value: true, Usage: "record every mutating and every refused syscall in the hash-chained audit trail (dcosctl audit; docs/security.md)"},
	&cli.DurationFlag{Name: "audit-retention", Value: 168 * time.Hour, Usage: "delete audit records older than this (0: keep them forever); the trail lives in etcd, inside --store-quota (docs/security.md, \"Audit\")"},
}, slices.Concat(doorFlags, kekFlags, etcdTLSFlags, tlsFlags)...)

var agentFlags = []cli.Flag{
	&cli.StringFlag{Name: "resources", Usage: "advertise these instead of what is detected, e.g. cpus=9,mem=18Gi,disk=100Gi"},
	&cli.StringSliceFlag{Name: "label", Usage: "agent label k=v (repeatable)"},
	&cli.DurationFlag{Name: "usage-interval", Value: agent.DefaultUsageInterval, Usage: "how often the tasks' resource usage is sampled and sent to the kernel"},
	&cli.IntFlag{Name: "max-concurrent-starts", Value: agent.DefaultMaxConcurrentStarts, Usage: "tasks the agent starts at once (a start mostly waits: for the task's exec under its CPU quota, for its plugins)"},
	&cli.StringFlag{Name: "host-ports", Value: "31000-32000", Usage: "`FIRST-LAST` range of host ports the kernel hands out to allocations on this node (their ports resource); none: no range"},
	&cli.BoolFlag{Name: "task-isolation", Value: true, Usage: "run tasks isolated: a uid per framework from --task-uids (or the user the operator allowed), no capabilities, no_new_privs, their own mount, pid, ipc, uts and cgroup namespaces, without sight of the agent's and kernel's data, tokens and client config; needs root (a non-root agent runs tasks unisolated, as its own user)"},
	&cli.StringFlag{Name: "task-uids", Value: agent.DefaultTaskUIDs, Usage: "`FIRST-LAST` range of the uids given to frameworks' tasks (one per framework, kept in the agent's data dir)"},
	&cli.StringSliceFlag{Name: "task-hidden-path", Usage: "a file or directory isolated tasks must not see, besides the data dirs, token files and client config (repeatable)"},
	&cli.StringFlag{Name: "log-max-size", Value: "10Mi", Usage: "size at which a task's stdout and stderr files are rotated, 4Ki to 1Gi, unless the task sets its own (its logs.max_bytes)"},
	&cli.IntFlag{Name: "log-max-files", Value: 5, Usage: "files kept of each of a task's stdout and stderr, the live one included, 1 to 100, unless the task sets its own (its logs.max_files)"},
}

func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run a kernel with an embedded etcd and one local agent in one process",
		Flags: append(append([]cli.Flag{
			&cli.StringFlag{Name: "data-dir", Value: defaultDataDir(), Usage: "state directory (etcd, tokens, agent)"},
			&cli.StringFlag{Name: "client-config", Usage: "where to write dcosctl's config (default: dcosctl's default path)"},
			&cli.BoolFlag{Name: "init", Value: true, Usage: "run the distributed init in-process (framework principal \"init\", its token in the tokens file; it keeps the services of dcosctl svc running)"},
			&cli.BoolFlag{Name: "jobs", Value: true, Usage: "run the jobs framework in-process (framework principal \"jobs\", its token in the tokens file; it runs the batch jobs of dcosctl job)"},
		}, append(kernelFlags, append(initFlags, jobsFlags...)...)...), append(agentFlags, append(pluginFlags, imageFlags...)...)...),
		Action: func(c *cli.Context) error {
			log := logger(c)
			dataDir := c.String("data-dir")
			tokensPath := tokensPath(c, dataDir)
			op, ag, in, err := ensureDevTokens(tokensPath, dataDir)
			if err != nil {
				return err
			}
			jb, err := ensureDevJobsToken(tokensPath)
			if err != nil {
				return err
			}
			labels, err := parseLabels(c.StringSlice("label"))
			if err != nil {
				return err
			}
			hostPorts, err := parseHostPorts(c.String("host-ports"))
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				return err
			}
			features, sized, err := devDefaults(c, dataDir, os.Geteuid() == 0)
			if err != nil {
				return err
			}
			agentMetrics := prometheus.NewRegistry() // joins the kernel's /metrics; the agent registers below
			return serveKernel(c, log, dataDir, func(ctx context.Context, g *errgroup.Group, url string, kt *kernelTLS) error {
				ccPath := c.String("client-config")
				if ccPath == "" {
					if ccPath, err = clientconfig.DefaultPath(); err != nil {
						return err
					}
				}
				if err := clientconfig.Save(ccPath, clientconfig.Config{Kernel: url, Token: op.Token, CA: string(kt.state().Bundle.PEM())}); err != nil {
					return err
				}
				ac, err := devAgentCert(ctx, g, log, filepath.Join(dataDir, "agent"), url, ag.Token, kt)
				if err != nil {
					return err
				}
				resources, detail, err := devResources(c, dataDir, sized)
				if err != nil {
					return err
				}
				features[len(features)-1] += detail
				if c.Bool("init") {
					features = append(features, "init: enabled (framework principal "+devInitPrincipal+", not rate-limited; dcosctl svc apply -f FILE; --init=false turns it off)")
				} else {
					features = append(features, "init: off (--init=false)")
				}
				if c.Bool("jobs") {
					features = append(features, "jobs: enabled (framework principal "+devJobsPrincipal+", not rate-limited; dcosctl job apply -f FILE; --jobs=false turns it off)")
				}
				features = append(features, "TLS: the API serves only https://; the cluster CA is "+filepath.Join(dataDir, "pki", "ca.crt")+" (sha256:"+kt.state().Active.ID()+"), in the client config for dcosctl")
				for _, f := range features {
					fmt.Fprintln(c.App.Writer, "dcos dev:", f)
				}
				a, stopPlugins, err := newAgent(ctx, c, log, agent.Config{
					KernelURL: url, Token: ag.Token, DataDir: filepath.Join(dataDir, "agent"),
					Resources: resources, Labels: labels, Logger: log.With("component", "agent"),
					UsageInterval: c.Duration("usage-interval"), HostPorts: hostPorts, MaxConcurrentStarts: c.Int("max-concurrent-starts"),
					HiddenPaths: []string{dataDir, tokensPath, ccPath}, TLS: ac.conf, CABundle: kt.state().Bundle.PEM(),
					OnCABundle: ac.caBundle,
				})
				if err != nil {
					return err
				}
				ac.giveBundleTo(a.SetCABundle) // tasks get a rotated CA too
				agentMetrics.MustRegister(metrics.NewAgentCollector(a.Metrics))
				g.Go(func() error {
					defer stopPlugins()
					return a.Run(ctx)
				})
				// Print the address once the local agent is registered, so
				// that a script may allocate as soon as it reads it.
				select {
				case <-a.Registered():
				case <-ctx.Done():
					return nil
				}
				if c.Bool("init") {
					cl, err := framework.New(framework.Config{Endpoints: []string{url}, Token: in.Token, Logger: log, TLS: kt.frameworkTLS()})
					if err != nil {
						return err
					}
					g.Go(func() error { return runInit(ctx, c, cl, log) })
				}
				if c.Bool("jobs") {
					cl, err := framework.New(framework.Config{Endpoints: []string{url}, Token: jb.Token, Logger: log, TLS: kt.frameworkTLS()})
					if err != nil {
						return err
					}
					g.Go(func() error { return runJobs(ctx, c, cl, log, url, jb.Token) })
				}
				fmt.Fprintf(c.App.Writer, "dcos dev: kernel at %s\ndcos dev: client config %s\ndcos dev: data dir %s\n", url, ccPath, dataDir)
				return nil
			}, agentMetrics)
		},
	}
}

// ensureDevTokens returns the operator and local agent tokens of the
// tokens file at path, adding those missing (and creating the file, and
// dataDir, when there is none). A file that exists but cannot be read or
// parsed is an error, never rewritten: that would drop its other tokens.
func ensureDevTokens(path, dataDir string) (op, ag, in api.TokenEntry, err error) {
	tf, err := api.LoadTokensFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return op, ag, in, fmt.Errorf("%w (fix or remove it; dcosd dev does not rewrite a tokens file it cannot read)", err)
	}
	op, ch1 := tf.Ensure("operator", "operator")
	ag, ch2 := tf.Ensure("agent", "local-agent")
	in, ch3 := tf.EnsureNamed("framework", devInitPrincipal)
	if ch1 || ch2 || ch3 {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return op, ag, in, err
		}
		if err := api.SaveTokensFile(path, tf); err != nil {
			return op, ag, in, err
		}
	}
	return op, ag, in, nil
}

// devInitPrincipal is the framework principal of dcosd dev's init (the
// default of dcosctl svc --framework).
const devInitPrincipal = "init"

func tokensPath(c *cli.Context, dataDir string) string {
	if p := c.String("tokens"); p != "" {
		return p
	}
	return filepath.Join(dataDir, "tokens.json")
}

func kernelCommand() *cli.Command {
	return &cli.Command{
		Name:  "kernel",
		Usage: "run a kernel (embedded etcd unless --etcd-endpoints)",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "data-dir", Value: defaultDataDir(), Usage: "state directory (embedded etcd)"},
		}, kernelFlags...),
		Action: func(c *cli.Context) error {
			log := logger(c)
			return serveKernel(c, log, c.String("data-dir"), func(_ context.Context, _ *errgroup.Group, url string, _ *kernelTLS) error {
				fmt.Fprintf(c.App.Writer, "dcos kernel: listening at %s\n", url)
				return nil
			})
		},
	}
}

// serveKernel opens the store, starts the kernel and its API server (whose
// /metrics also serves extra), calls started with the API's URL, and runs
// until the context ends.
func serveKernel(c *cli.Context, log *slog.Logger, dataDir string, started func(context.Context, *errgroup.Group, string, *kernelTLS) error, extra ...prometheus.Gatherer) error {
	cidr, err := kernel.ParseClusterCIDR(c.String("cluster-cidr"))
	if err != nil {
		return fmt.Errorf("--cluster-cidr: %w", err)
	}
	tf, err := loadKernelTokens(c, dataDir)
	if err != nil {
		return err
	}
	// The data dir holds the store and the tokens: the kernel's alone,
	// also when an older version made it readable.
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dataDir, 0o700); err != nil {
		return err
	}
	kek, err := kernelKeyring(c, dataDir) // kek.go
	if err != nil {
		return err
	}
	tokens, err := api.NewTokens(tf.Tokens)
	if err != nil {
		return err
	}
	minFree, err := quantity.ParseBytes(c.String("store-min-free"))
	if err != nil || minFree < 0 {
		return fmt.Errorf("--store-min-free %q: want a size such as 64Mi (0: no floor)", c.String("store-min-free"))
	}
	quota, err := quantity.ParseBytes(c.String("store-quota"))
	if err != nil || quota < 1<<20 {
		return fmt.Errorf("--store-quota %q: want a size of at least 1Mi, such as 2Gi", c.String("store-quota"))
	}
	if minFree == 0 {
		minFree = -1 // StartEmbedded: no floor
	}
	rateLimits, ownLimits, err := parseRateLimits(c.StringSlice("rate-limit"))
	if err != nil {
		return err
	}
	devInit := kernel.Principal{Name: devInitPrincipal, Role: kernel.RoleFramework}
	if _, set := ownLimits[devInit]; !set && c.Command.Name == "dev" && c.Bool("init") {
		// dcosd dev's own init starts services of thousands of tasks:
		// it is not paced like a tenant (--rate-limit framework:init=...
		// overrides this).
		ownLimits[devInit] = api.RateLimit{}
	}
	devJobs := kernel.Principal{Name: devJobsPrincipal, Role: kernel.RoleFramework}
	if _, set := ownLimits[devJobs]; !set && c.Command.Name == "dev" && c.Bool("jobs") {
		// dcosd dev's jobs framework starts gangs of thousands of tasks.
		ownLimits[devJobs] = api.RateLimit{}
	}
	var cli3 *clientv3.Client
	var gate func() error
	var route *store.LeaderRoute
	var ca *pki.CA // the CA directory's; with an external etcd, loaded after it is reached (setupKernelTLS)
	var caBundle pki.Bundle
	if eps := c.StringSlice("etcd-endpoints"); len(eps) > 0 {
		// Keep-alives find a dead member within ~4 s, so the client moves
		// to another before the election lease (default 5 s) lapses.
		cfg3 := clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, DialKeepAliveTime: 2 * time.Second, DialKeepAliveTimeout: 2 * time.Second}
		if cfg3.TLS, err = etcdClientTLS(c.Context, c, log, dataDir, eps); err != nil {
			return err
		}
		cli3, err = clientv3.New(cfg3)
		if err != nil {
			return fmt.Errorf("etcd: %w", err)
		}
		defer cli3.Close()
		if len(eps) > 1 {
			// Commits go to the etcd leader: a follower would forward
			// them (docs/benchmarks.md). Closed before cli3.
			route = store.NewLeaderRoute(cli3, cfg3)
			defer route.Close()
		}
	} else {
		// The embedded etcd's certificates come from the cluster CA, so
		// it is loaded (or made) before etcd starts, once.
		if ca, caBundle, err = clusterCA(c, log, dataDir, kek); err != nil {
			return err
		}
		e, err := store.StartEmbedded(store.EmbeddedConfig{Dir: dataDir, MinFree: minFree, Quota: quota, TLS: embeddedEtcdTLS(c, dataDir, ca, caBundle)})
		if err != nil {
			return err
		}
		defer e.Close()
		cli3, gate = e.Client(), e.Writable
	}
	ctx := c.Context
	host, err := newPolicyHost(ctx, c.String("wasm-cache-dir"), log)
	if err != nil {
		return err
	}
	defer host.Close(context.Background())
	roles, err := parseRoles(c.StringSlice("role-weight"), c.StringSlice("role-quota"))
	if err != nil {
		return err
	}
	if err := parseRoleCPUClasses(roles, c.StringSlice("role-cpu-class")); err != nil {
		return err
	}
	roleMaxPending, err := parseRoleInts("--role-max-pending", c.StringSlice("role-max-pending"))
	if err != nil {
		return err
	}
	roleUsers, err := parseRoleUsers(c.StringSlice("role-users"))
	if err != nil {
		return err
	}
	defaultDisk, err := quantity.ParseBytes(cmp.Or(c.String("default-disk"), "0"))
	if err != nil {
		return fmt.Errorf("--default-disk: %w", err)
	}
	shipped := builtins()
	kcfg := kernel.Config{
		MaxPending:        c.Int("max-pending"),
		RoleMaxPending:    roleMaxPending,
		DefaultDisk:       defaultDisk,
		Loader:            wasmLoader{h: host, builtin: shipped},
		Builtins:          shipped,
		DefaultPolicy:     c.String("default-policy"),
		Roles:             roles,
		RoleUsers:         roleUsers,
		ClusterCIDR:       cidr,
		HeartbeatInterval: c.Duration("heartbeat-interval"),
		HeartbeatTimeout:  c.Duration("heartbeat-timeout"),
		Logger:            log.With("component", "kernel"),
		Sealer:            kek,
		NoAudit:           !c.Bool("audit"),
		AuditRetention:    c.Duration("audit-retention"),
	}
	if kcfg.AuditRetention < 0 {
		return fmt.Errorf("--audit-retention: %s is negative", kcfg.AuditRetention)
	}
	ln, err := listenAPI(c, log)
	if err != nil {
		return err
	}
	self, err := advertiseURL(c.String("advertise-url"), ln.Addr())
	if err != nil {
		ln.Close()
		return err
	}
	kt, err := setupKernelTLS(c, log, dataDir, kek, ca, caBundle, ln.Addr(), self)
	if err != nil {
		ln.Close()
		return err
	}
	extra = append(extra, kt.gatherer())
	url := "https://" + ln.Addr().String()
	st := store.New(cli3, c.String("etcd-prefix")).WithGate(gate).WithSealer(kek)
	if route != nil {
		st.WithLeaderRoute(route)
	}
	checkKEK(ctx, log, cli3, c.String("etcd-prefix"), kekPath(c, dataDir), kek) // kek.go
	if err := kt.attach(ctx, cli3, c.String("etcd-prefix"), kek); err != nil {  // tls_ca.go
		ln.Close()
		return err
	}
	ktokens, err := startTokens(ctx, log, c.App.Writer, cli3, c.String("etcd-prefix"), tokens, self, "sha256:"+kt.state().Active.ID())
	if err != nil {
		ln.Close()
		return err
	}
	defer ktokens.Close()
	// Every kernel process campaigns in the kernel election, a lone one
	// too (it wins at once): one code path for one kernel and for three.
	lead := newLeadership(st, self, c.Duration("leader-lease"), log.With("component", "election"))
	lead.alive = aliveClient(kt.clientConfig())
	apiCfg := ktokens.config(api.Config{RateLimits: rateLimits, PrincipalRateLimits: ownLimits, Extra: extra, Conns: ln, Cluster: kt.clusterInfo(lead.clusterInfo), Certs: kt})
	lead.sw = api.NewSwitch(api.NewStandbyHandler(apiCfg, lead.Leader))
	lead.start = func(ctx context.Context, fenced *store.Etcd) (*kernel.Kernel, http.Handler, error) {
		cfg := kcfg
		cfg.Store = fenced
		cfg.AuditKernel = self
		k, err := kernel.New(ctx, cfg)
		if err != nil {
			return nil, nil, err
		}
		return k, api.NewHandler(k, apiCfg), nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return lead.run(gctx) })
	g.Go(func() error { return api.ServeTLSWith(gctx, ln, lead.sw, log, apiTimeouts(c), kt.serverConfig()) })
	g.Go(func() error { return kt.run(gctx) })
	if c.Command.Name == "dev" {
		// dcosd dev's agent and init call this kernel: it must lead first
		// (at once: it is alone on its embedded etcd).
		select {
		case <-lead.Led():
		case <-gctx.Done():
			ln.Close()
			return g.Wait()
		}
	}
	if err := started(gctx, g, url, kt); err != nil {
		ln.Close()
		return errors.Join(err, g.Wait())
	}
	log.Info("kernel serving", "url", url, "advertised", self)
	return g.Wait()
}

func agentCommand() *cli.Command {
	return &cli.Command{
		Name:  "agent",
		Usage: "run an agent that joins a kernel",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "kernel", Required: true, Usage: "kernel URL, e.g. https://10.0.0.1:7070", EnvVars: []string{"DCOS_KERNEL"}},
			&cli.StringFlag{Name: "token", Usage: "agent token, or an agent join token: the agent trades it for a token of its own, saved as DATA_DIR/agent-token and used from then on (a saved token wins over --token)", EnvVars: []string{"DCOS_TOKEN"}},
			&cli.StringFlag{Name: "data-dir", Value: filepath.Join(defaultDataDir(), "agent"), Usage: "agent state (id, sandboxes, checkpoints)"},
			metricsListenFlag,
		}, append(agentTLSFlags, append(agentFlags, append(pluginFlags, imageFlags...)...)...)...),
		Action: func(c *cli.Context) error {
			labels, err := parseLabels(c.StringSlice("label"))
			if err != nil {
				return err
			}
			hostPorts, err := parseHostPorts(c.String("host-ports"))
			if err != nil {
				return err
			}
			url := c.String("kernel")
			if !strings.Contains(url, "://") {
				url = "https://" + url
			}
			log := logger(c)
			ac, token, err := startAgentTLS(c, log, url, c.String("token"), c.String("data-dir"))
			if err != nil {
				return err
			}
			renewCtx, stopRenew := context.WithCancel(c.Context)
			defer stopRenew()
			go ac.run(renewCtx, url, token)
			// A kernel's state and an operator's client config on this
			// node, where they are by default.
			hidden := []string{defaultDataDir()}
			if cc, err := clientconfig.DefaultPath(); err == nil {
				hidden = append(hidden, cc)
			}
			a, stopPlugins, err := newAgent(c.Context, c, log, agent.Config{
				KernelURL: url, Token: token, DataDir: c.String("data-dir"),
				Resources: c.String("resources"), Labels: labels, Logger: log,
				UsageInterval: c.Duration("usage-interval"), HostPorts: hostPorts, MaxConcurrentStarts: c.Int("max-concurrent-starts"),
				HiddenPaths: hidden, TLS: ac.conf, CABundle: ac.r.Bundle().PEM(),
				OnCABundle: ac.caBundle,
			})
			if err != nil {
				return err
			}
			ac.giveBundleTo(a.SetCABundle) // tasks get a rotated CA too
			defer stopPlugins()
			if addr := c.String("metrics-listen"); addr != "" {
				ctx, cancel := context.WithCancel(c.Context)
				wait, err := serveAgentMetrics(ctx, addr, a, log)
				if err != nil {
					cancel()
					return err
				}
				defer wait()
				defer cancel()
			}
			return a.Run(c.Context)
		},
	}
}

// parseHostPorts checks --host-ports and returns it as the agent registers
// it ("" for none).
func parseHostPorts(s string) (string, error) {
	r, err := kernel.ParsePortRange(s)
	if err != nil {
		return "", fmt.Errorf("--host-ports: %w", err)
	}
	return r.String(), nil
}

func parseLabels(kvs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--label %q: want key=value", kv)
		}
		m[k] = v
	}
	return m, nil
}

// parseRoleInts reads ROLE=N settings (N >= -1; -1: no cap) of flag; the
// role "*" is the default role, "".
func parseRoleInts(flag string, vals []string) (map[string]int, error) {
	m := map[string]int{}
	for _, v := range vals {
		name, n, ok := strings.Cut(v, "=")
		i, err := strconv.Atoi(n)
		if !ok || name == "" || err != nil || i < -1 {
			return nil, fmt.Errorf("%s %q: want ROLE=N with N >= 0 (-1: no cap)", flag, v)
		}
		if name == "*" {
			name = ""
		}
		m[name] = i
	}
	return m, nil
}

// parseRoleUsers parses --role-users values, ROLE=USER[,USER...] (a
// piece without "=" continues the users before it: see rejoinSplit).
func parseRoleUsers(vals []string) (map[string][]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	m := map[string][]string{}
	for _, v := range rejoinSplit(vals, func(p string) bool { return !strings.Contains(p, "=") }) {
		role, users, ok := strings.Cut(v, "=")
		if !ok {
			return nil, fmt.Errorf("--role-users %q: want ROLE=USER[,USER...]", v)
		}
		for u := range strings.SplitSeq(users, ",") {
			m[role] = append(m[role], strings.TrimSpace(u))
		}
	}
	if err := kernel.ValidateRoleUsers(m); err != nil {
		return nil, fmt.Errorf("--role-users: %w", err)
	}
	return m, nil
}

// parseRoles reads --role-weight NAME=WEIGHT and --role-quota
// NAME:cpus=..,mem=..,disk=.. into the kernel's role settings.
func parseRoles(weights, quotas []string) (map[string]kernel.RoleConfig, error) {
	roles := map[string]kernel.RoleConfig{}
	for _, w := range weights {
		name, v, ok := strings.Cut(w, "=")
		f, err := strconv.ParseFloat(v, 64)
		if !ok || name == "" || err != nil || !(f > 0) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("--role-weight %q: want NAME=WEIGHT with a positive weight", w)
		}
		r := roles[name]
		r.Weight = f
		roles[name] = r
	}
	for _, q := range rejoinSplit(quotas, func(p string) bool { return !strings.Contains(p, ":") }) {
		name, list, ok := strings.Cut(q, ":")
		res, err := quantity.ParseResources(list)
		if !ok || name == "" || err != nil {
			if err == nil {
				err = errors.New("no NAME:")
			}
			return nil, fmt.Errorf("--role-quota %q: want NAME:cpus=4,mem=8Gi,disk=100Gi (%v)", q, err)
		}
		r := roles[name]
		if res.CPUs != nil {
			r.Quota.MilliCPU = int64(math.Round(*res.CPUs * 1000))
		}
		if res.MemBytes != nil {
			r.Quota.Mem = *res.MemBytes
		}
		if res.DiskBytes != nil {
			r.Quota.Disk = *res.DiskBytes
		}
		roles[name] = r
	}
	return roles, nil
}
