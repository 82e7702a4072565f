package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dcos-kernel/dcos/drivers/oci/internal/image"
	"github.com/dcos-kernel/dcos/sdk/plugin"
)

// Version is the driver's version attribute ("driver.oci.version").
const Version = "1"

// SandboxPath is where a task's sandbox (its stdout and stderr files, its
// volumes) appears inside the container; DCOS_SANDBOX says so too.
const SandboxPath = "/dcos/sandbox"

// defaultPath is the PATH of an image that sets none (Docker's).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultGCDelay is how long an image no task uses stays cached.
const DefaultGCDelay = 10 * time.Minute

// Credentials are a registry's: a user and password (basic), or a bearer
// token.
type Credentials = image.Credentials

// Options configure a Driver.
type Options struct {
	// StateDir is the driver's own directory: the executor's state, the
	// image cache (images/), each task's generated files (tasks/).
	StateDir string
	// Insecure are registries (host[:port]) pulled from over plain HTTP
	// besides loopback ones.
	Insecure []string
	// Auth returns the credentials of a registry, if any.
	Auth func(registry string) (Credentials, bool)
	// GCDelay is how long an unused image stays cached (0: DefaultGCDelay;
	// negative: never collected by time, only by RemoveImage).
	GCDelay time.Duration
	// SupervisorCmd, if set, starts the executor's supervisor (the
	// built-in driver runs `dcosd supervisor`); nil: the SDK's default.
	SupervisorCmd []string
	Logger        *slog.Logger
}

// Driver is the oci task driver. Create it with New; its methods are safe
// for concurrent use. The task methods it does not override are the
// executor's.
type Driver struct {
	*plugin.Executor
	opts   Options
	images *image.Store
	log    *slog.Logger

	mu   sync.Mutex
	pins map[string]int // image digest → starts between its pull and their mount

	stop chan struct{}
	done chan struct{}
}

var (
	_ plugin.Driver      = (*Driver)(nil)
	_ plugin.ImageDriver = (*Driver)(nil)
)

// state is the driver's part of a task's handle.
type state struct {
	Exec     []byte `json:"exec"`   // the executor's DriverState
	Image    string `json:"image"`  // the reference pulled
	Digest   string `json:"digest"` // its manifest digest
	ReadOnly bool   `json:"readonly_root,omitempty"`
}

// New returns a driver over opts.StateDir and starts its image collector.
// Close stops it; tasks keep running.
func New(opts Options) (*Driver, error) {
	if opts.StateDir == "" || !filepath.IsAbs(opts.StateDir) {
		return nil, fmt.Errorf("oci driver: state dir %q: want an absolute path", opts.StateDir)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.GCDelay == 0 {
		opts.GCDelay = DefaultGCDelay
	}
	ex, err := plugin.NewExecutor(plugin.ExecutorConfig{StateDir: filepath.Join(opts.StateDir, "executor"),
		SupervisorCmd: opts.SupervisorCmd, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("oci driver: %w", err)
	}
	st, err := image.Open(filepath.Join(opts.StateDir, "images"), image.Options{Insecure: opts.Insecure, Auth: opts.Auth, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("oci driver: %w", err)
	}
	d := &Driver{Executor: ex, opts: opts, images: st, log: log, pins: map[string]int{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go d.collect()
	return d, nil
}

// Close stops the image collector and the executor's watchers. It never
// stops tasks: a new Driver on the same StateDir recovers them.
func (d *Driver) Close() error {
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	<-d.done
	return d.Executor.Close()
}

// Capabilities implements plugin.Driver.
func (d *Driver) Capabilities(context.Context) (*plugin.Capabilities, error) {
	return &plugin.Capabilities{SendSignals: true, FSIsolation: plugin.FSIsolationImage, RecoverTasks: true,
		JoinCgroups: true, JoinNetns: true, Isolation: true, Images: true}, nil
}

// Fingerprint implements plugin.Driver: healthy as root on a kernel with
// overlayfs.
func (d *Driver) Fingerprint(context.Context) (*plugin.Fingerprint, error) {
	fp := &plugin.Fingerprint{Health: plugin.HealthHealthy, HealthDescription: "ready",
		Attributes: map[string]string{"driver.oci.version": Version}}
	if os.Geteuid() != 0 {
		fp.Health, fp.HealthDescription = plugin.HealthUndetected, "the oci driver needs root (overlay mounts, namespaces)"
		return fp, nil
	}
	if b, err := os.ReadFile("/proc/filesystems"); err != nil || !strings.Contains(string(b), "\toverlay\n") {
		fp.Health, fp.HealthDescription = plugin.HealthUndetected, "the kernel has no overlay filesystem"
	}
	return fp, nil
}

// StartTask implements plugin.Driver: it pulls the image (unless cached),
// mounts the task's root filesystem and starts the entrypoint in it. On
// any failure, and when ctx ends before the task runs, it leaves nothing
// behind (the mount and the task's files are removed).
func (d *Driver) StartTask(ctx context.Context, cfg *plugin.TaskConfig) (_ *plugin.TaskHandle, err error) {
	c, err := ParseConfig(cfg.DriverConfig)
	if err != nil {
		return nil, err
	}
	if cfg.Isolation == nil {
		return nil, fmt.Errorf("oci driver: image tasks need task isolation (an agent running as root with --task-isolation): %w", plugin.ErrNotSupported)
	}
	img, rootfs, err := d.pullAndMount(ctx, c, cfg.ID)
	if err != nil {
		return nil, err
	}
	defer d.unpin(img.Digest)
	taskDir := filepath.Join(d.opts.StateDir, "tasks", cfg.ID)
	defer func() {
		if err != nil {
			d.cleanup(cfg.ID)
		}
	}()
	ct, ccfg, err := d.container(cfg, c, img, rootfs, taskDir)
	if err != nil {
		return nil, err
	}
	h, err := d.Executor.StartContainer(ctx, ccfg, ct)
	if err != nil {
		return nil, err
	}
	ds, err := json.Marshal(state{Exec: h.DriverState, Image: c.Image, Digest: img.Digest, ReadOnly: c.ReadOnlyRoot})
	if err != nil {
		return nil, err
	}
	return &plugin.TaskHandle{Version: plugin.HandleVersion, Config: cfg, State: h.State, DriverState: ds, PID: h.PID}, nil
}

// pullAndMount pulls c.Image (unless cached) and mounts id's root over it.
// The image is pinned against the collector from the pull until the
// caller unpins it; an image removed between the pull and the mount (an
// operator's RemoveImage) is pulled again, once.
func (d *Driver) pullAndMount(ctx context.Context, c *Config, id string) (*image.Image, string, error) {
	for attempt := 0; ; attempt++ {
		img, err := d.images.Pull(ctx, c.Image)
		if err != nil {
			return nil, "", err
		}
		d.mu.Lock()
		d.pins[img.Digest]++
		d.mu.Unlock()
		rootfs, err := d.images.Mount(ctx, img, id, c.ReadOnlyRoot)
		if err == nil {
			return img, rootfs, nil
		}
		d.unpin(img.Digest)
		if !errors.Is(err, image.ErrNotFound) || attempt > 0 {
			return nil, "", err
		}
	}
}

// unpin releases a pin of pullAndMount.
func (d *Driver) unpin(digest string) {
	d.mu.Lock()
	if d.pins[digest]--; d.pins[digest] <= 0 {
		delete(d.pins, digest)
	}
	d.mu.Unlock()
}

// container is what the executor runs for cfg: the entrypoint, its
// environment and working directory in the image, the image's user, the
// sandbox and generated /etc files bound in.
func (d *Driver) container(cfg *plugin.TaskConfig, c *Config, img *image.Image, rootfs, taskDir string) (*plugin.Container, *plugin.TaskConfig, error) {
	argv := append(append([]string{}, img.Config.Entrypoint...), img.Config.Cmd...)
	switch {
	case cfg.Command != "":
		argv = append([]string{cfg.Command}, cfg.Args...)
	case len(cfg.Args) > 0:
		argv = append(append([]string{}, img.Config.Entrypoint...), cfg.Args...)
	}
	if len(argv) == 0 {
		return nil, nil, fmt.Errorf("image %s has no entrypoint or cmd, and the task gives no command", c.Image)
	}
	user := img.Config.User
	if cfg.User != "" {
		user = cfg.User
	}
	cred, err := ResolveUser(rootfs, user)
	if err != nil {
		return nil, nil, fmt.Errorf("image %s: %w", c.Image, err)
	}
	sandbox := cfg.Isolation.Sandbox
	env := containerEnv(img.Config.Env, cfg.Env, sandbox, cred.Home)
	dir := img.Config.WorkingDir
	if dir == "" {
		dir = "/"
	}
	if sandbox != "" && cfg.WorkDir != "" && cfg.WorkDir != sandbox {
		rel, err := filepath.Rel(sandbox, cfg.WorkDir)
		if err != nil || !filepath.IsLocal(rel) {
			return nil, nil, fmt.Errorf("working_dir %q: not in the task's sandbox", cfg.WorkDir)
		}
		dir = filepath.Join(SandboxPath, rel)
	}
	hostname := c.Hostname
	if hostname == "" {
		hostname = hostnameOf(cfg.ID)
	}
	binds, err := etcFiles(taskDir, hostname, env[plugin.TaskIPEnv])
	if err != nil {
		return nil, nil, err
	}
	if sandbox != "" {
		binds = append([]plugin.Bind{{Source: sandbox, Target: SandboxPath}}, binds...)
	}
	ccfg := *cfg
	ccfg.Command, ccfg.Args, ccfg.Env, ccfg.WorkDir = argv[0], argv[1:], env, dir
	return &plugin.Container{RootFS: rootfs, Hostname: hostname, ReadOnlyRoot: c.ReadOnlyRoot, Binds: binds,
		UID: cred.UID, GID: cred.GID, Groups: cred.Groups, Dir: dir}, &ccfg, nil
}

// containerEnv is the image's environment, then the host's task variables
// (the user's env and DCOS_*), except PATH and HOME, which are the image's
// (HOME: the user's home when the image sets none); DCOS_SANDBOX is the
// sandbox's path inside the container.
func containerEnv(image []string, host map[string]string, sandbox, home string) map[string]string {
	env := map[string]string{}
	for _, kv := range image {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			env[k] = v
		}
	}
	for k, v := range maps.All(host) {
		if k == "PATH" || k == "HOME" {
			continue
		}
		if sandbox != "" && (v == sandbox || strings.HasPrefix(v, sandbox+"/")) {
			v = SandboxPath + strings.TrimPrefix(v, sandbox)
		}
		env[k] = v
	}
	if env["PATH"] == "" {
		env["PATH"] = defaultPath
	}
	if env["HOME"] == "" {
		env["HOME"] = home
	}
	return env
}

// hostnameOf makes a host name of a task id (t-12 stays t-12).
func hostnameOf(id string) string {
	b := []byte(strings.ToLower(id))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	h := strings.Trim(string(b), "-")
	if len(h) > 63 {
		h = h[:63]
	}
	if h == "" {
		h = "task"
	}
	return h
}

// etcFiles writes the container's /etc/hostname, /etc/hosts and
// /etc/resolv.conf into dir and returns their binds (read-only).
func etcFiles(dir, hostname, ip string) ([]plugin.Bind, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("task files: %w", err)
	}
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if ip != "" {
		hosts += ip + "\t" + hostname + "\n"
	} else {
		hosts += "127.0.1.1\t" + hostname + "\n"
	}
	resolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		resolv = nil
	}
	files := []struct{ name, content string }{
		{"hostname", hostname + "\n"}, {"hosts", hosts}, {"resolv.conf", string(resolv)},
	}
	var binds []plugin.Bind
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, []byte(f.content), 0o644); err != nil {
			return nil, fmt.Errorf("task files: %w", err)
		}
		binds = append(binds, plugin.Bind{Source: p, Target: "/etc/" + f.name, ReadOnly: true})
	}
	return binds, nil
}

// cleanup removes what StartTask made for id: the rootfs mount and the
// task's files. Idempotent.
func (d *Driver) cleanup(id string) error {
	err := d.images.Unmount(id)
	if rerr := os.RemoveAll(filepath.Join(d.opts.StateDir, "tasks", id)); err == nil {
		err = rerr
	}
	return err
}

// DestroyTask implements plugin.Driver: the executor's, then the task's
// root filesystem is unmounted and its files removed. Idempotent.
func (d *Driver) DestroyTask(ctx context.Context, id string, force bool) error {
	if err := d.Executor.DestroyTask(ctx, id, force); err != nil {
		return err
	}
	return d.cleanup(id)
}

// RecoverTask implements plugin.Driver: the mount outlived the plugin
// (it is in the node's mount namespace); the executor reattaches.
func (d *Driver) RecoverTask(ctx context.Context, h *plugin.TaskHandle) error {
	if h == nil || h.Config == nil {
		return errors.New("oci driver: recover: no handle")
	}
	if h.Version != plugin.HandleVersion {
		return fmt.Errorf("oci driver: handle version %d: %w", h.Version, plugin.ErrHandleVersion)
	}
	var st state
	if err := json.Unmarshal(h.DriverState, &st); err != nil {
		return fmt.Errorf("oci driver: handle of %s: %w", h.Config.ID, plugin.ErrHandleVersion)
	}
	if _, err := d.images.Recover(h.Config.ID, st.ReadOnly); err != nil {
		return fmt.Errorf("oci driver: recover %s: %w", h.Config.ID, err)
	}
	inner := *h
	inner.DriverState = st.Exec
	return d.Executor.RecoverTask(ctx, &inner)
}

var _ plugin.ExecDriver = (*Driver)(nil)

// ExecTask implements plugin.ExecDriver: the command runs inside the
// container task as its entrypoint does (its root filesystem, hostname,
// user, capabilities, cgroups; a command without '/' is looked up inside
// the image, in the PATH of the task's environment), started by the
// task's supervisor (Executor.Exec).
func (d *Driver) ExecTask(ctx context.Context, opts *plugin.ExecOptions, io plugin.ExecIO) (*plugin.ExitResult, error) {
	return d.Exec(ctx, opts, io)
}

// ListImages implements plugin.ImageDriver.
func (d *Driver) ListImages(context.Context) ([]*plugin.Image, error) {
	infos, err := d.images.List()
	if err != nil {
		return nil, err
	}
	out := make([]*plugin.Image, 0, len(infos))
	for _, i := range infos {
		out = append(out, &plugin.Image{Ref: i.Ref, Digest: i.Digest, SizeBytes: i.Size, Tasks: i.Tasks,
			Pulled: i.Pulled, LastUsed: i.LastUsed})
	}
	return out, nil
}

// RemoveImage implements plugin.ImageDriver: an image a task uses is
// refused (plugin.ErrConflict); the layers no other image uses go too.
func (d *Driver) RemoveImage(_ context.Context, ref string) error {
	if err := d.images.Remove(ref); err != nil {
		switch {
		case errors.Is(err, image.ErrInUse):
			return fmt.Errorf("%w: %w", plugin.ErrConflict, err)
		case errors.Is(err, image.ErrNotFound):
			return fmt.Errorf("%w: %w", plugin.ErrImageNotFound, err)
		}
		return err
	}
	_, _, err := d.images.GC(context.Background())
	return err
}

// collect removes, every minute (or every half GCDelay when that is
// shorter), images no task used for GCDelay and the layers no image uses.
func (d *Driver) collect() {
	defer close(d.done)
	every := time.Minute
	if g := d.opts.GCDelay; g > 0 && g/2 < every {
		every = max(g/2, 50*time.Millisecond)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		if d.opts.GCDelay > 0 {
			infos, err := d.images.List()
			if err != nil {
				d.log.Warn("image gc: list", "err", err)
				continue
			}
			for _, i := range infos {
				if i.Tasks > 0 || time.Since(i.LastUsed) < d.opts.GCDelay {
					continue
				}
				d.mu.Lock() // a start pins its image under mu: none can begin meanwhile
				if d.pins[i.Digest] == 0 {
					if err := d.images.Remove(i.Digest); err != nil && !errors.Is(err, image.ErrInUse) && !errors.Is(err, image.ErrNotFound) {
						d.log.Warn("image gc: remove", "image", i.Ref, "err", err)
					}
				}
				d.mu.Unlock()
			}
		}
		if removed, freed, err := d.images.GC(context.Background()); err != nil {
			d.log.Warn("image gc", "err", err)
		} else if len(removed) > 0 {
			d.log.Info("image gc", "removed", len(removed), "freed_bytes", freed)
		}
	}
}
