package host

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

var (
	// ErrUnknownPlugin is returned (wrapped) by Driver, Isolator, Net and
	// Storage for a name the host has no plugin of, of the kind asked for;
	// the message lists the names of that kind it has.
	ErrUnknownPlugin = errors.New("unknown plugin")

	// ErrRefused is returned (wrapped) for a plugin the host refuses to run:
	// not in the catalog, shadowed by a built-in, altered since it was
	// catalogued (wraps goplugin.ErrChecksumsDoNotMatch too), or speaking
	// no protocol version the host speaks (wraps
	// contract.ErrIncompatibleVersion too). A refusal is final until the
	// host is made again.
	ErrRefused = errors.New("plugin refused")
)

// Health is a plugin's state as `dcosctl plugin ls` shows it.
type Health string

const (
	// HealthHealthy: the plugin process is up and serving.
	HealthHealthy Health = "healthy"
	// HealthRestarting: the plugin crashed or failed to start and the host
	// is waiting to start it again. LastError says why.
	HealthRestarting Health = "restarting"
	// HealthRefused: the host will not run the plugin. LastError says why.
	HealthRefused Health = "refused"
	// HealthStopped: the plugin is not running because the host has not
	// started it yet or was closed.
	HealthStopped Health = "stopped"
)

// Status is what the host knows of one plugin. The members of a built-in
// Group share one process: their rows have the same Path, SHA256, Protocol,
// Health, Restarts, LastError and PID.
type Status struct {
	Kind string // contract.KindDriver, KindIsolator, KindNet or KindStorage
	Name string
	// Path is the plugin's executable (for a built-in, Cmd[0]).
	Path    string
	Builtin bool
	// Protocol is the plugin protocol version negotiated at the plugin's
	// last start; 0 if it was never up.
	Protocol int
	// SHA256 is the checksum the executable must have (hex); empty for a
	// plugin not in the catalog.
	SHA256 string
	Health Health
	// Restarts counts the starts after the first one.
	Restarts int
	// LastError is why the plugin last exited, failed to start or was
	// refused; empty if it never failed.
	LastError string
	// PID is the plugin process's pid while it is up, else 0.
	PID int
}

// Host runs the plugins of a node. Make one with New, then Start it; Close
// stops it. Its methods are safe for concurrent use.
type Host struct {
	cfg Config
	log *slog.Logger
	// all is every plugin, refused ones included, sorted by kind and name
	// (a built-in before a discovered plugin of the same name).
	all []*plugin
	// byName maps "<kind>/<name>" to the plugin of that name: a built-in
	// before a discovered plugin, refused or not.
	byName map[string]*plugin
	// procs is every process, refused ones included: one per discovered
	// plugin or ungrouped built-in, one per built-in Group.
	procs []*process

	mu      sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc // stops the supervisors
	wg      sync.WaitGroup     // supervisors and OnRestart calls
}

// New validates cfg, finds the plugins in cfg.Dir, reads the catalog and
// takes the checksums of the built-ins. It starts nothing. It returns an
// error for a malformed configuration: an invalid built-in, an unreadable
// plugin directory, a malformed catalog line.
func New(cfg Config) (*Host, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	h := &Host{cfg: cfg, log: cfg.Logger, byName: map[string]*plugin{}}
	groups := map[string]*process{}
	for _, b := range cfg.Builtins {
		switch {
		case !validKind(b.Kind):
			return nil, fmt.Errorf("plugin host: built-in %q: kind %q: want one of %s", b.Name, b.Kind, strings.Join(kinds, ", "))
		case !validName(b.Name):
			return nil, fmt.Errorf("plugin host: built-in %s %q: want a name of [a-z0-9][a-z0-9_-]*", b.Kind, b.Name)
		case len(b.Cmd) == 0 || !filepath.IsAbs(b.Cmd[0]):
			return nil, fmt.Errorf("plugin host: built-in %s/%s: Cmd %q: want an absolute path to the binary first", b.Kind, b.Name, b.Cmd)
		}
		key := b.Kind + "/" + b.Name
		if h.byName[key] != nil {
			return nil, fmt.Errorf("plugin host: built-in %s is listed twice", key)
		}
		pr := groups[b.Group]
		if pr != nil {
			if cmd := append([]string{pr.path}, pr.args...); !slices.Equal(cmd, b.Cmd) {
				return nil, fmt.Errorf("plugin host: built-in %s: group %q: Cmd %q differs from the Cmd %q of %s: want one command per group",
					key, b.Group, b.Cmd, cmd, pr.members[0].id)
			}
			for _, m := range pr.members {
				if m.kind == b.Kind {
					return nil, fmt.Errorf("plugin host: built-in %s: group %q already has a %s (%s): want one member of each kind per group", key, b.Group, b.Kind, m.id)
				}
			}
		} else {
			sum, err := sha256File(b.Cmd[0])
			if err != nil {
				return nil, fmt.Errorf("plugin host: built-in %s: %w", key, err)
			}
			pr = h.newProcess(b.Cmd[0], b.Cmd[1:])
			pr.sum, pr.grouped = sum, b.Group != ""
			if pr.grouped {
				groups[b.Group] = pr
			}
		}
		h.byName[key] = h.newPlugin(b.Kind, b.Name, true, pr)
	}

	var cat catalog
	if cfg.Catalog != "" {
		if cat, err = loadCatalog(cfg.Catalog); err != nil {
			return nil, fmt.Errorf("plugin host: %w", err)
		}
	}
	found, err := discover(cfg.Dir, h.log)
	if err != nil {
		return nil, fmt.Errorf("plugin host: %w", err)
	}
	for _, f := range found {
		key := f.kind + "/" + f.name
		pr := h.newProcess(f.path, nil)
		h.newPlugin(f.kind, f.name, false, pr)
		if b := h.byName[key]; b != nil {
			pr.refuse(fmt.Errorf("plugin %s: a built-in %s named %q exists (%s): rename or remove the file: %w", f.path, f.kind, f.name, b.proc.path, ErrRefused))
			continue
		}
		h.byName[key] = pr.members[0] // refused or not, the plugin of that name
		sum, ok := cat.lookup(f.path)
		if !ok {
			pr.refuse(fmt.Errorf("plugin %s: not in the catalog %s: add its sha256 (sha256sum %s >> %s): %w", f.path, cfg.Catalog, f.path, cfg.Catalog, ErrRefused))
			continue
		}
		pr.sum = sum
	}
	slices.SortStableFunc(h.all, func(a, b *plugin) int {
		return cmp.Or(strings.Compare(a.kind, b.kind), strings.Compare(a.name, b.name))
	})
	return h, nil
}

// newProcess returns a process of the executable path, with no member yet.
func (h *Host) newProcess(path string, args []string) *process {
	pr := &process{host: h, path: path, args: args, health: HealthStopped, changed: make(chan struct{})}
	h.procs = append(h.procs, pr)
	return pr
}

// newPlugin returns the plugin kind/name, served by pr.
func (h *Host) newPlugin(kind, name string, builtin bool, pr *process) *plugin {
	id := kind + "/" + name
	p := &plugin{
		host: h, kind: kind, name: name, id: id, builtin: builtin,
		stateDir: filepath.Join(h.cfg.StateDir, kind+"-"+name),
	}
	switch kind {
	case contract.KindDriver:
		p.proxy = &driverProxy{p: p}
	case contract.KindIsolator:
		p.proxy = &isolatorProxy{p: p}
	case contract.KindNet:
		p.proxy = &netProxy{p: p}
	case contract.KindStorage:
		p.proxy = &storageProxy{p: p}
	}
	pr.add(p)
	h.all = append(h.all, p)
	return p
}

// Start starts the process of every plugin that is not refused (one per
// built-in Group), in parallel, and supervises them until Close. It returns
// once each process has come up once, been refused or failed its first
// start (the host keeps retrying it), or when ctx is done; ctx bounds only
// the wait, not the plugins' lives. A plugin's failure is not Start's: see
// Status. Start may be called once.
func (h *Host) Start(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return errors.New("plugin host: start: closed")
	}
	if h.started {
		h.mu.Unlock()
		return errors.New("plugin host: start: already started")
	}
	h.started = true
	sctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	var firsts []chan struct{}
	for _, pr := range h.procs {
		if pr.refusedAtNew() {
			continue
		}
		first := make(chan struct{})
		firsts = append(firsts, first)
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			pr.run(sctx, first)
		}()
	}
	h.mu.Unlock()
	for _, first := range firsts {
		select {
		case <-first:
		case <-ctx.Done():
			return fmt.Errorf("plugin host: start: %w", ctx.Err())
		}
	}
	return nil
}

// Close stops supervising the plugins and stops their processes (the shared
// process of a built-in Group once): it asks each to exit and kills it
// after a grace period (2s), and returns once all have exited. The tasks a
// driver started are not its children and keep running. Calls through the
// proxies fail at once from then on. Close is idempotent.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		h.wg.Wait()
		return nil
	}
	h.closed = true
	cancel := h.cancel
	h.mu.Unlock()
	for _, pr := range h.procs {
		pr.close()
	}
	if cancel != nil {
		cancel()
	}
	h.wg.Wait()
	return nil
}

// Driver returns the driver plugin name: a proxy that forwards each call to
// the plugin's current process. The proxy stays valid across restarts: while
// the plugin is down a call waits for it until the call's ctx is done, then
// returns an error wrapping contract.ErrPluginExited; a call in flight when
// the process dies returns contract.ErrPluginExited at once (it is not
// retried: it may have taken effect). An unknown name returns an error
// wrapping ErrUnknownPlugin that lists the drivers there are; a refused
// plugin, one wrapping ErrRefused.
func (h *Host) Driver(name string) (contract.Driver, error) {
	p, err := h.lookup(contract.KindDriver, name)
	if err != nil {
		return nil, err
	}
	return p.proxy.(contract.Driver), nil
}

// Isolator returns the isolator plugin name, as Driver returns a driver.
func (h *Host) Isolator(name string) (contract.Isolator, error) {
	p, err := h.lookup(contract.KindIsolator, name)
	if err != nil {
		return nil, err
	}
	return p.proxy.(contract.Isolator), nil
}

// Net returns the net driver plugin name, as Driver returns a driver. What
// a net plugin set up on the node (namespaces, veths, NAT rules) outlives
// its process; its in-memory state does not: after a restart the agent is
// to call ConfigureNode, Recover and GC (see contract.NetDriver) from
// Config.OnRestart.
func (h *Host) Net(name string) (contract.NetDriver, error) {
	p, err := h.lookup(contract.KindNet, name)
	if err != nil {
		return nil, err
	}
	return p.proxy.(contract.NetDriver), nil
}

// Storage returns the storage driver plugin name, as Driver returns a
// driver. After a restart the agent is to call its Recover (see
// contract.StorageDriver) from Config.OnRestart.
func (h *Host) Storage(name string) (contract.StorageDriver, error) {
	p, err := h.lookup(contract.KindStorage, name)
	if err != nil {
		return nil, err
	}
	return p.proxy.(contract.StorageDriver), nil
}

func (h *Host) lookup(kind, name string) (*plugin, error) {
	if p := h.byName[kind+"/"+name]; p != nil {
		if err := p.refusal(); err != nil {
			return nil, err
		}
		return p, nil
	}
	var names []string
	for _, p := range h.all {
		if p.kind == kind && h.byName[p.id] == p && p.refusal() == nil {
			names = append(names, p.name)
		}
	}
	have := "none"
	if len(names) > 0 {
		have = strings.Join(names, ", ")
	}
	return nil, fmt.Errorf("no %s plugin %q (there are: %s): %w", kind, name, have, ErrUnknownPlugin)
}

// Status returns the state of every plugin, refused ones included, sorted
// by kind and name.
func (h *Host) Status() []Status {
	out := make([]Status, 0, len(h.all))
	for _, p := range h.all {
		out = append(out, p.status())
	}
	return out
}
