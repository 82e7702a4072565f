package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/agent"
	"github.com/dcos-kernel/dcos/drivers/execdriver"
	"github.com/dcos-kernel/dcos/drivers/net/bridge"
	"github.com/dcos-kernel/dcos/drivers/storage"
	"github.com/dcos-kernel/dcos/ebpf"
	"github.com/dcos-kernel/dcos/internal/quantity"
	isocgroups "github.com/dcos-kernel/dcos/isolators/cgroups"
	"github.com/dcos-kernel/dcos/plugins/contract"
	"github.com/dcos-kernel/dcos/plugins/host"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Names of the built-in plugins, and of the group they share one process in
// (`dcosd plugin builtin`): a dcosd process costs ~14 MiB however little it
// does, so the built-ins do not get one each.
const (
	builtinDriver   = "exec"
	builtinIsolator = "cgroups"
	builtinNet      = "bridge"
	builtinStorage  = "local"
	builtinGroup    = "builtin"
)

var pluginFlags = []cli.Flag{
	&cli.StringFlag{Name: "plugin-dir", Usage: "directory of vendor plugins (dcos-driver-NAME, dcos-isolator-NAME, dcos-net-NAME, dcos-storage-NAME)"},
	&cli.StringFlag{Name: "plugin-catalog", Usage: "sha256sum-format checksums of the plugins that may run (default PLUGIN_DIR/SHA256SUMS)"},
	&cli.StringFlag{Name: "isolation", Value: "cgroups", Usage: "isolator for every task: cgroups or none (cgroups falls back to none, with a warning, where cgroups cannot be used)"},
	&cli.StringFlag{Name: "network-driver", Value: "none", Usage: "net driver for tasks that ask for network bridge: bridge or none (bridge needs root; dcosd dev as root defaults to bridge)"},
	&cli.StringFlag{Name: "bridge", Value: "dcos0", Usage: "the bridge driver's bridge; its VXLAN device is BRIDGE-vx"},
	&cli.IntFlag{Name: "vxlan-port", Value: 4789, Usage: "UDP port of the overlay between agents (every agent must agree)"},
	&cli.StringFlag{Name: "underlay-ip", Usage: "this node's address for the overlay (default: the source address of the default route)"},
	&cli.StringFlag{Name: "storage-driver", Value: "none", Usage: "storage driver for task sandboxes (sized by the task's disk) and volumes: local or none (local needs root; dcosd dev as root defaults to local where loop images or project quotas work)"},
	&cli.StringFlag{Name: "storage-enforcement", Usage: "how the local storage driver enforces sizes: quota, loop or none (default: quota where the filesystem has project quotas, else loop)"},
	&cli.StringSliceFlag{Name: "host-volume", Usage: "a host path tasks may mount, NAME=/PATH[,ro] (repeatable; local storage driver)"},
	&cli.DurationFlag{Name: "sandbox-retention", Usage: "how long a task's sandbox is kept after it ended (local storage driver); a restart of the agent ends it"},
	&cli.StringFlag{Name: "bpf-pin-dir", Usage: "bpffs directory of this agent's network counters, kept across restarts (default /sys/fs/bpf/dcos/agent-HASH, HASH from the data dir)"},
	&cli.StringFlag{Name: "cgroup-parent", Usage: "cgroup the task cgroups go beneath, one per agent: absolute (/dcos) or relative to the agent's own cgroup (default dcos-tasks/agent-HASH, HASH from the data dir)"},
}

// agentPlugins is the agent's view of the plugin host.
type agentPlugins struct{ *host.Host }

func (p agentPlugins) Info() []*syscallsv1.PluginInfo {
	var out []*syscallsv1.PluginInfo
	for _, s := range p.Status() {
		out = append(out, &syscallsv1.PluginInfo{
			Name: s.Name, Kind: s.Kind, Builtin: s.Builtin, Protocol: int32(s.Protocol), Health: string(s.Health),
			Restarts: int32(s.Restarts), LastError: s.LastError, Sha256: s.SHA256, Path: s.Path,
		})
	}
	return out
}

// newAgent builds the plugin host and the agent of dataDir and starts the
// host's plugins. The returned stop closes the host (its plugin processes;
// tasks keep running) and must be called after the agent's Run returned.
func newAgent(ctx context.Context, c *cli.Context, log *slog.Logger, cfg agent.Config) (*agent.Agent, func(), error) {
	exe, err := selfExe()
	if err != nil {
		return nil, nil, fmt.Errorf("plugins: own executable: %w", err)
	}
	if cfg.DataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return nil, nil, err
	}
	if err := taskIsolation(c, log, &cfg); err != nil {
		return nil, nil, err
	}
	if err := logLimits(c, &cfg); err != nil {
		return nil, nil, err
	}
	// One process serves the driver and, with isolation, the isolator.
	cmd := []string{exe, "plugin", builtinGroup}
	switch iso := c.String("isolation"); iso {
	case "none":
		log.Warn("tasks run without isolation (--isolation none): no cgroup limits, usage from /proc only")
	case builtinIsolator:
		parent := c.String("cgroup-parent")
		if parent == "" {
			// One parent per agent (per data dir): an isolator removes the
			// task cgroups beneath its parent that its agent does not know.
			sum := sha256.Sum256([]byte(cfg.DataDir))
			parent = isocgroups.DefaultParent + "/agent-" + hex.EncodeToString(sum[:6])
		}
		if _, err := isocgroups.New(isocgroups.Config{Parent: parent}); err != nil {
			log.Warn("tasks run WITHOUT cgroup isolation: no memory, cpu or pids limits", "reason", err)
			break
		}
		cmd = append(cmd, "--isolator", builtinIsolator, "--cgroup-parent", parent)
		cfg.Isolator = builtinIsolator
		cfg.Net = loadNetAccounting(c, log, cfg.DataDir)
	default:
		return nil, nil, fmt.Errorf("--isolation %q: want cgroups or none", iso)
	}
	switch nd := c.String("network-driver"); nd {
	case "none":
	case builtinNet:
		if os.Geteuid() != 0 {
			log.Warn("tasks cannot ask for network bridge: the bridge driver needs root")
			break
		}
		cmd = append(cmd, "--net", builtinNet, "--bridge", c.String("bridge"), "--vxlan-port", strconv.Itoa(c.Int("vxlan-port")))
		cfg.Network = builtinNet
		cfg.UnderlayIP = c.String("underlay-ip")
		if cfg.UnderlayIP == "" {
			cfg.UnderlayIP = defaultUnderlay()
		}
	default:
		return nil, nil, fmt.Errorf("--network-driver %q: want bridge or none", nd)
	}
	switch sd := c.String("storage-driver"); sd {
	case "none":
	case builtinStorage:
		if os.Geteuid() != 0 {
			log.Warn("task sandboxes are plain directories without a size limit: the local storage driver needs root")
			break
		}
		cmd = append(cmd, "--storage", builtinStorage)
		if e := c.String("storage-enforcement"); e != "" {
			cmd = append(cmd, "--storage-enforcement", e)
		}
		cfg.HostVolumes = map[string]string{}
		for _, hv := range hostVolumeFlags(c) {
			name, v, err := storage.ParseHostVolume(hv)
			if err != nil {
				return nil, nil, fmt.Errorf("--host-volume: %w", err)
			}
			cmd = append(cmd, "--host-volume", hv)
			cfg.HostVolumes[name] = v.Path
		}
		cfg.Storage = builtinStorage
		cfg.SandboxRetention = c.Duration("sandbox-retention")
	default:
		return nil, nil, fmt.Errorf("--storage-driver %q: want local or none", sd)
	}
	builtins := []host.Builtin{{Name: builtinDriver, Kind: contract.KindDriver, Cmd: cmd, Group: builtinGroup}}
	if cfg.Isolator != "" {
		builtins = append(builtins, host.Builtin{Name: builtinIsolator, Kind: contract.KindIsolator, Cmd: cmd, Group: builtinGroup})
	}
	if cfg.Network != "" {
		builtins = append(builtins, host.Builtin{Name: builtinNet, Kind: contract.KindNet, Cmd: cmd, Group: builtinGroup})
	}
	if cfg.Storage != "" {
		builtins = append(builtins, host.Builtin{Name: builtinStorage, Kind: contract.KindStorage, Cmd: cmd, Group: builtinGroup})
	}
	img, err := imageBuiltin(c, log, exe)
	if err != nil {
		return nil, nil, err
	}
	if img != nil {
		builtins = append(builtins, *img)
	}
	var a *agent.Agent
	h, err := host.New(host.Config{
		Dir: c.String("plugin-dir"), Catalog: c.String("plugin-catalog"),
		StateDir: filepath.Join(cfg.DataDir, "plugins"), Builtins: builtins,
		Logger: log.With("component", "plugins"),
		OnRestart: func(kind, name string) {
			if a != nil {
				a.PluginRestarted(kind, name)
			}
		},
	})
	if err != nil {
		return nil, nil, err
	}
	if err := h.Start(ctx); err != nil {
		h.Close()
		return nil, nil, err
	}
	cfg.Plugins = agentPlugins{h}
	stop := func() {
		h.Close()
		if cfg.Net != nil {
			cfg.Net.Close() // keeps the pins: counting goes on while the agent is down
		}
	}
	if a, err = agent.New(cfg); err != nil {
		stop()
		return nil, nil, err
	}
	return a, stop, nil
}

// disableNetEnv, when set, turns network accounting off with its value as
// the reason, as if the kernel lacked a feature (for tests of that path).
const disableNetEnv = "DCOS_EBPF_DISABLE"

// loadNetAccounting loads the eBPF network counters of the agent of
// dataDir. Where the kernel cannot (or DCOS_EBPF_DISABLE is set), it logs
// exactly what is missing and returns nil: tasks run without network
// counters.
func loadNetAccounting(c *cli.Context, log *slog.Logger, dataDir string) *ebpf.Accounting {
	dir := c.String("bpf-pin-dir")
	if dir == "" {
		sum := sha256.Sum256([]byte(dataDir))
		dir = ebpf.PinDirFor("agent-" + hex.EncodeToString(sum[:6]))
	}
	acc, err := ebpf.Load(ebpf.Config{PinDir: dir, Disable: os.Getenv(disableNetEnv)})
	if err != nil {
		log.Warn("tasks run WITHOUT network accounting: usage has no network counters", "reason", err)
		return nil
	}
	return acc
}

// hostVolumeFlags returns the --host-volume flags as given: the flag
// library splits a value at its commas ("certs=/etc/ssl,ro" arrives as
// "certs=/etc/ssl" and "ro"), so a piece without "=" is joined back to the
// one before.
func hostVolumeFlags(c *cli.Context) []string {
	return rejoinSplit(c.StringSlice("host-volume"), func(p string) bool { return !strings.Contains(p, "=") })
}

// vxlanName is the VXLAN device of bridge br: br + "-vx", shortened to the
// kernel's 15 bytes.
func vxlanName(br string) string {
	if len(br) > 12 {
		br = br[:12]
	}
	return br + "-vx"
}

// defaultUnderlay is the source address of the default route (no packet is
// sent), or "" when there is none.
func defaultUnderlay() string {
	c, err := net.Dial("udp4", "192.0.2.1:9") // TEST-NET-1: routing only
	if err != nil {
		return ""
	}
	defer c.Close()
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok {
		return a.IP.String()
	}
	return ""
}

// selfExe is the path that runs this very binary again: /proc/self/exe,
// which stays the running binary even if the file on disk is replaced by
// an upgrade (so built-in plugins keep matching the checksum taken at
// start), or os.Executable where /proc is missing.
func selfExe() (string, error) {
	if _, err := os.Stat("/proc/self/exe"); err == nil {
		return "/proc/self/exe", nil
	}
	return os.Executable()
}

// pluginCommand serves the built-in plugins; the agent's plugin host starts
// it.
func pluginCommand() *cli.Command {
	return &cli.Command{
		Name:   "plugin",
		Hidden: true,
		Usage:  "serve the built-in plugins (started by the agent, not by hand)",
		Subcommands: []*cli.Command{
			imagePluginCommand(),
			{
				Name:  builtinGroup,
				Usage: "serve the exec driver and, with --isolator cgroups, the cgroups isolator, from this one process",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "isolator", Usage: "also serve this isolator: cgroups (default: none)"},
					&cli.StringFlag{Name: "cgroup-parent", Usage: "the cgroups isolator's parent cgroup"},
					&cli.StringFlag{Name: "net", Usage: "also serve this net driver: bridge (default: none)"},
					&cli.StringFlag{Name: "bridge", Usage: "the bridge driver's bridge"},
					&cli.IntFlag{Name: "vxlan-port", Usage: "the bridge driver's VXLAN port"},
					&cli.StringFlag{Name: "storage", Usage: "also serve this storage driver: local (default: none)"},
					&cli.StringFlag{Name: "storage-enforcement", Usage: "the local storage driver's enforcement: quota, loop or none (default: chosen)"},
					&cli.StringSliceFlag{Name: "host-volume", Usage: "a host volume of the local storage driver, NAME=/PATH[,ro]"},
				},
				Action: func(c *cli.Context) error {
					env := host.MemberStateDirEnv(contract.KindDriver, builtinDriver)
					dir := os.Getenv(env)
					if dir == "" {
						return errors.New("plugin " + builtinGroup + ": " + env + " is not set: only the agent starts plugins")
					}
					impls := map[string]any{}
					switch iso := c.String("isolator"); iso {
					case "":
						if c.IsSet("cgroup-parent") {
							return errors.New("plugin " + builtinGroup + ": --cgroup-parent without --isolator " + builtinIsolator)
						}
					case builtinIsolator:
						// Before the driver starts its supervisor: on pure
						// v2, New may move the processes of this process's
						// cgroup (see isolators/cgroups).
						i, err := isocgroups.New(isocgroups.Config{Parent: c.String("cgroup-parent"), Logger: logger(c)})
						if err != nil {
							return err
						}
						impls[contract.KindIsolator] = i
					default:
						return fmt.Errorf("plugin %s: --isolator %q: want %s or nothing", builtinGroup, iso, builtinIsolator)
					}
					exe, err := selfExe()
					if err != nil {
						return err
					}
					d, err := execdriver.New(execdriver.Config{
						StateDir: dir, SupervisorCmd: []string{exe, "supervisor", "--state-dir", dir}, Logger: logger(c),
					})
					if err != nil {
						return err
					}
					defer d.Close()
					impls[contract.KindDriver] = d
					if n := c.String("net"); n != "" {
						if n != builtinNet {
							return fmt.Errorf("plugin %s: --net %q: want %s or nothing", builtinGroup, n, builtinNet)
						}
						br := c.String("bridge")
						nd, err := bridge.New(bridge.Config{StateDir: os.Getenv(host.MemberStateDirEnv(contract.KindNet, builtinNet)),
							Bridge: br, VXLAN: vxlanName(br), VXLANPort: c.Int("vxlan-port"), Logger: logger(c)})
						if err != nil {
							return err
						}
						defer nd.Close()
						impls[contract.KindNet] = nd
					}
					if st := c.String("storage"); st != "" {
						if st != builtinStorage {
							return fmt.Errorf("plugin %s: --storage %q: want %s or nothing", builtinGroup, st, builtinStorage)
						}
						hvs := map[string]storage.HostVolume{}
						for _, s := range hostVolumeFlags(c) {
							name, hv, err := storage.ParseHostVolume(s)
							if err != nil {
								return err
							}
							hvs[name] = hv
						}
						sd, err := storage.New(storage.Config{StateDir: os.Getenv(host.MemberStateDirEnv(contract.KindStorage, builtinStorage)),
							Enforcement: storage.Enforcement(c.String("storage-enforcement")), HostVolumes: hvs, Logger: logger(c)})
						if err != nil {
							return err
						}
						impls[contract.KindStorage] = sd
					}
					return servePlugins(impls)
				},
			},
		},
	}
}

// servePlugins serves impls (kind → implementation) from this one process
// until the host stops it, or until the process that started it dies (a
// SIGKILLed agent cannot stop its plugins).
func servePlugins(impls map[string]any) error {
	cfg, err := contract.ServeConfigMulti(impls)
	if err != nil {
		return err
	}
	parent := os.Getppid()
	go func() {
		for range time.Tick(500 * time.Millisecond) {
			if os.Getppid() != parent {
				os.Exit(0)
			}
		}
	}()
	goplugin.Serve(cfg)
	return nil
}

// supervisorCommand runs the exec driver's task supervisor.
func supervisorCommand() *cli.Command {
	return &cli.Command{
		Name:   "supervisor",
		Hidden: true,
		Usage:  "hold the exec driver's tasks (started by the exec driver, not by hand)",
		Flags:  []cli.Flag{&cli.StringFlag{Name: "state-dir", Required: true}},
		Action: func(c *cli.Context) error {
			if code := execdriver.SupervisorMain(c.String("state-dir"), logger(c)); code != 0 {
				return cli.Exit("", code)
			}
			return nil
		},
	}
}

// taskIsolation sets cfg's task isolation from the flags: on by default
// as root, and said either way at start.
func taskIsolation(c *cli.Context, log *slog.Logger, cfg *agent.Config) error {
	switch {
	case !c.Bool("task-isolation"):
		log.Warn("tasks run UNISOLATED (--task-isolation=false): as this agent's user, with its capabilities, seeing the node", "uid", os.Geteuid())
		return nil
	case os.Geteuid() != 0:
		log.Warn("tasks run unisolated, as this agent's user: task isolation needs root", "uid", os.Geteuid())
		return nil
	}
	for _, p := range c.StringSlice("task-hidden-path") {
		p, err := filepath.Abs(p)
		if err != nil {
			return fmt.Errorf("--task-hidden-path: %w", err)
		}
		cfg.HiddenPaths = append(cfg.HiddenPaths, p)
	}
	var hidden []string
	for _, p := range cfg.HiddenPaths {
		if p != "" {
			p, _ = filepath.Abs(p)
			hidden = append(hidden, p)
		}
	}
	cfg.HiddenPaths = hidden
	if _, _, err := agent.ParseUIDRange(c.String("task-uids")); err != nil {
		return fmt.Errorf("--task-uids: %w", err)
	}
	cfg.TaskIsolation, cfg.TaskUIDs = true, c.String("task-uids")
	log.Info("tasks run isolated: a uid per framework, no capabilities, own mount/pid/ipc/uts/cgroup namespaces",
		"task_uids", cfg.TaskUIDs, "hidden", append([]string{cfg.DataDir}, cfg.HiddenPaths...))
	return nil
}

// logLimits sets cfg's defaults of the tasks' log limits from
// --log-max-size and --log-max-files.
func logLimits(c *cli.Context, cfg *agent.Config) error {
	b, err := quantity.ParseBytes(c.String("log-max-size"))
	if err != nil {
		return fmt.Errorf("--log-max-size: %w", err)
	}
	if b < 4<<10 || b > 1<<30 {
		return fmt.Errorf("--log-max-size %s: want 4Ki to 1Gi", c.String("log-max-size"))
	}
	if n := c.Int("log-max-files"); n < 1 || n > 100 {
		return fmt.Errorf("--log-max-files %d: want 1 to 100", n)
	}
	cfg.LogMaxBytes, cfg.LogMaxFiles = b, c.Int("log-max-files")
	return nil
}
