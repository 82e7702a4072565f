package ebpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	cebpf "github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// feature is one kernel capability Load probes for.
type feature struct {
	name  string
	probe func() error
}

// requiredFeatures are probed in order by Load; the first one missing is
// named in its FeatureError. A variable so tests can make one fail.
var requiredFeatures = []feature{
	{"cgroup_skb programs (CONFIG_CGROUP_BPF)", func() error { return features.HaveProgramType(cebpf.CGroupSKB) }},
	{"per-CPU hash maps", func() error { return features.HaveMapType(cebpf.PerCPUHash) }},
	{"bpf_skb_cgroup_id in cgroup_skb programs (CONFIG_SOCK_CGROUP_DATA)", func() error {
		return features.HaveProgramHelper(cebpf.CGroupSKB, asm.FnSkbCgroupId)
	}},
}

// checkFeatures returns a *FeatureError for the first required feature the
// kernel lacks (or that this process may not use), nil if all are there.
func checkFeatures() error {
	for _, f := range requiredFeatures {
		err := f.probe()
		switch {
		case err == nil:
		case errors.Is(err, cebpf.ErrNotSupported):
			return &FeatureError{Feature: f.name, Err: err}
		case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
			return &FeatureError{Feature: "permission to load BPF programs (CAP_BPF or CAP_SYS_ADMIN)", Err: err}
		default:
			return fmt.Errorf("probe %s: %w", f.name, err)
		}
	}
	return nil
}

// Accounting is one agent's loaded programs and counter map. Its methods
// are safe for concurrent use.
type Accounting struct {
	pinDir string

	mu       sync.Mutex
	objs     netcountObjects
	attached map[uint64]*Attachment
	closed   bool
}

// Attachment is the two links (ingress, egress) of one cgroup. Detach ends
// it; after Close of its Accounting it is no longer usable.
type Attachment struct {
	a      *Accounting
	id     uint64
	dir    string
	links  [2]link.Link // ingress, egress
	pins   [2]string    // "" when not pinned
	gone   bool
	adopts bool
}

var directions = [2]struct {
	name   string
	attach cebpf.AttachType
}{
	{"ingress", cebpf.AttachCGroupInetIngress},
	{"egress", cebpf.AttachCGroupInetEgress},
}

// Load checks that the kernel can run the programs, then loads them and the
// counter map, once per agent. With cfg.PinDir it mounts bpffs if needed,
// re-uses the map pinned there by a previous run (keeping its counters) and
// pins it otherwise.
//
// Errors wrap ErrNotSupported (as a *FeatureError naming the feature) when
// the kernel or configuration rules accounting out; a pinned map of an
// incompatible older layout is reported as an error that says to remove
// PinDir.
func Load(cfg Config) (*Accounting, error) {
	if cfg.Disable != "" {
		return nil, &FeatureError{Feature: "disabled by configuration: " + cfg.Disable}
	}
	if err := checkFeatures(); err != nil {
		return nil, fmt.Errorf("ebpf load: %w", err)
	}
	spec, err := loadNetcount()
	if err != nil {
		return nil, fmt.Errorf("ebpf load: %w", err)
	}
	var opts cebpf.CollectionOptions
	if cfg.PinDir != "" {
		if err := ensurePinDir(cfg.PinDir); err != nil {
			return nil, fmt.Errorf("ebpf load: %w", err)
		}
		opts.Maps.PinPath = cfg.PinDir
	} else {
		// The C declares the map pinned by name; without a PinDir it is not.
		for _, m := range spec.Maps {
			m.Pinning = cebpf.PinNone
		}
	}
	a := &Accounting{pinDir: cfg.PinDir, attached: map[uint64]*Attachment{}}
	if err := spec.LoadAndAssign(&a.objs, &opts); err != nil {
		if errors.Is(err, cebpf.ErrMapIncompatible) {
			return nil, fmt.Errorf("ebpf load: the map pinned in %s is of an older layout (remove the directory to start counting anew): %w", cfg.PinDir, err)
		}
		return nil, fmt.Errorf("ebpf load: %w", err)
	}
	return a, nil
}

// CgroupID returns the id of the cgroup v2 directory dir (its inode number),
// as bpf_skb_cgroup_id sees it. It fails for a directory that is not on a
// cgroup2 file system.
func CgroupID(dir string) (uint64, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return 0, fmt.Errorf("cgroup id of %s: %w", dir, err)
	}
	if fs.Type != unix.CGROUP2_SUPER_MAGIC {
		return 0, fmt.Errorf("cgroup id of %s: not a cgroup v2 directory", dir)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0, fmt.Errorf("cgroup id of %s: %w", dir, err)
	}
	return st.Ino, nil
}

// Attach starts counting the traffic of the sockets in cgroupDir (a cgroup
// v2 directory: Task.UnifiedDir on hybrid hosts): it registers the cgroup's
// counters and links the ingress and egress programs to it. Sockets of
// processes in sub-cgroups of cgroupDir pass the programs but are not
// counted (they are keyed by their own cgroup), nor are sockets created
// before their process joined cgroupDir.
//
// With a PinDir, links and counters left pinned for this cgroup by a
// previous run are adopted (their programs replaced by this run's) and its
// counts go on; new links are pinned. Attaching a cgroup that is already
// attached returns the same *Attachment. On error nothing of the attempt is
// left.
func (a *Accounting) Attach(cgroupDir string) (*Attachment, error) {
	id, err := CgroupID(cgroupDir)
	if err != nil {
		return nil, fmt.Errorf("ebpf attach: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, errors.New("ebpf attach: accounting closed")
	}
	if at, ok := a.attached[id]; ok {
		return at, nil
	}
	at := &Attachment{a: a, id: id, dir: cgroupDir}
	created, err := a.register(id)
	if err != nil {
		return nil, fmt.Errorf("ebpf attach %s: %w", cgroupDir, err)
	}
	progs := [2]*cebpf.Program{a.objs.DcosIngress, a.objs.DcosEgress}
	for i, d := range directions {
		l, pin, adopted, err := a.linkOne(cgroupDir, id, d.name, d.attach, progs[i])
		if err != nil {
			at.undo(created)
			return nil, fmt.Errorf("ebpf attach %s %s: %w", cgroupDir, d.name, err)
		}
		at.links[i], at.pins[i] = l, pin
		at.adopts = at.adopts || adopted
	}
	a.attached[id] = at
	return at, nil
}

// register puts zero counters for id into the map unless it has some
// already (adopted from a previous run). It reports whether it created them.
func (a *Accounting) register(id uint64) (bool, error) {
	zero := make([]netcountNetcount, cebpf.MustPossibleCPU())
	err := a.objs.DcosNet.Update(id, zero, cebpf.UpdateNoExist)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, cebpf.ErrKeyExist):
		return false, nil
	default:
		return false, fmt.Errorf("register counters: %w", err)
	}
}

// linkPin is where the link of cgroup id for direction dir is pinned.
func (a *Accounting) linkPin(id uint64, dir string) string {
	if a.pinDir == "" {
		return ""
	}
	return filepath.Join(a.pinDir, "links", strconv.FormatUint(id, 10)+"_"+dir)
}

// linkOne adopts the pinned link of (id, dir) or makes (and pins) a new one.
func (a *Accounting) linkOne(cgroupDir string, id uint64, dir string, typ cebpf.AttachType, prog *cebpf.Program) (l link.Link, pin string, adopted bool, err error) {
	pin = a.linkPin(id, dir)
	if pin != "" {
		old, err := link.LoadPinnedLink(pin, nil)
		switch {
		case err == nil:
			if info, err := old.Info(); err != nil || info.Cgroup() == nil ||
				info.Cgroup().CgroupId != id || cebpf.AttachType(info.Cgroup().AttachType) != typ {
				old.Close()
				return nil, "", false, fmt.Errorf("pinned link %s is not the %s link of cgroup %d (info %+v, %v)", pin, dir, id, info, err)
			}
			// Run this agent's program from now on; the counters are in
			// the same pinned map.
			if err := old.Update(prog); err != nil {
				old.Close()
				return nil, "", false, fmt.Errorf("update pinned link %s: %w", pin, err)
			}
			return old, pin, true, nil
		case !errors.Is(err, os.ErrNotExist):
			return nil, "", false, err
		}
	}
	f, err := os.Open(cgroupDir)
	if err != nil {
		return nil, "", false, err
	}
	defer f.Close()
	raw, err := link.AttachRawLink(link.RawLinkOptions{Target: int(f.Fd()), Program: prog, Attach: typ})
	if err != nil {
		if errors.Is(err, link.ErrNotSupported) {
			return nil, "", false, &FeatureError{Feature: "bpf_link for cgroups (Linux 5.7)", Err: err}
		}
		return nil, "", false, err
	}
	if pin != "" {
		if err := os.MkdirAll(filepath.Dir(pin), 0o700); err != nil {
			raw.Close()
			return nil, "", false, err
		}
		if err := raw.Pin(pin); err != nil {
			raw.Close()
			return nil, "", false, err
		}
	}
	return raw, pin, false, nil
}

// undo releases what a failed Attach made; created says whether it made
// the counters.
func (at *Attachment) undo(created bool) {
	at.release()
	if created {
		_ = at.a.objs.DcosNet.Delete(at.id)
	}
}

// release detaches, unpins and closes the links of at.
func (at *Attachment) release() error {
	var errs []error
	for i, l := range at.links {
		if l == nil {
			continue
		}
		// Before Linux 5.9 there is no BPF_LINK_DETACH: unpinning and
		// closing the last reference below detaches.
		if err := l.Detach(); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, link.ErrNotSupported) {
			errs = append(errs, fmt.Errorf("detach %s: %w", directions[i].name, err))
		}
		if at.pins[i] != "" {
			if err := l.Unpin(); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("unpin %s: %w", directions[i].name, err))
			}
		}
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", directions[i].name, err))
		}
		at.links[i] = nil
	}
	return errors.Join(errs...)
}

// CgroupID returns the id of the attached cgroup.
func (at *Attachment) CgroupID() uint64 { return at.id }

// Dir returns the cgroup directory given to Attach.
func (at *Attachment) Dir() string { return at.dir }

// Adopted reports whether Attach took over links pinned by a previous run.
func (at *Attachment) Adopted() bool { return at.adopts }

// Counters returns the cgroup's counters (see Accounting.Counters).
func (at *Attachment) Counters() (Counters, error) { return at.a.CountersOf(at.id) }

// Detach stops counting the cgroup: it detaches both links (even where a
// pin or another process holds them), removes their pins and deletes the
// cgroup's counters. The cgroup can be removed afterwards (it also can
// before: the kernel then drops the links itself). Idempotent.
func (at *Attachment) Detach() error {
	a := at.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if at.gone {
		return nil
	}
	err := at.release()
	if a.closed {
		// The map is closed; with pins the entry stays for Forget.
		return errors.Join(err, errors.New("ebpf detach: accounting closed"))
	}
	if derr := a.objs.DcosNet.Delete(at.id); derr != nil && !errors.Is(derr, cebpf.ErrKeyNotExist) {
		err = errors.Join(err, fmt.Errorf("delete counters: %w", derr))
	}
	at.gone = true
	delete(a.attached, at.id)
	if err != nil {
		return fmt.Errorf("ebpf detach %s: %w", at.dir, err)
	}
	return nil
}

// Counters returns the counters of the cgroup v2 directory dir, summed over
// all CPUs. It returns ErrNotAttached for a cgroup that has no counters.
func (a *Accounting) Counters(cgroupDir string) (Counters, error) {
	id, err := CgroupID(cgroupDir)
	if err != nil {
		return Counters{}, fmt.Errorf("ebpf counters: %w", err)
	}
	return a.CountersOf(id)
}

// CountersOf is Counters by cgroup id.
func (a *Accounting) CountersOf(id uint64) (Counters, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return Counters{}, errors.New("ebpf counters: accounting closed")
	}
	var per []netcountNetcount
	if err := a.objs.DcosNet.Lookup(id, &per); err != nil {
		if errors.Is(err, cebpf.ErrKeyNotExist) {
			return Counters{}, fmt.Errorf("ebpf counters of cgroup %d: %w", id, ErrNotAttached)
		}
		return Counters{}, fmt.Errorf("ebpf counters of cgroup %d: %w", id, err)
	}
	var c Counters
	for _, p := range per {
		c.RxBytes += p.RxBytes
		c.RxPackets += p.RxPackets
		c.TxBytes += p.TxBytes
		c.TxPackets += p.TxPackets
	}
	return c, nil
}

// Registered returns the ids of the cgroups that have counters, sorted:
// those attached in this run and, with a PinDir, those a previous run left
// (Attach adopts them, Forget drops them).
func (a *Accounting) Registered() ([]uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, errors.New("ebpf registered: accounting closed")
	}
	var ids []uint64
	var id uint64
	var per []netcountNetcount
	it := a.objs.DcosNet.Iterate()
	for it.Next(&id, &per) {
		ids = append(ids, id)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("ebpf registered: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}

// Forget drops what a previous run left for cgroup id without attaching it
// (its task ended while the agent was down): it detaches and unpins the
// links pinned for id and deletes its counters. Forgetting an id attached in
// this run detaches it. Idempotent.
func (a *Accounting) Forget(id uint64) error {
	a.mu.Lock()
	at, ok := a.attached[id]
	a.mu.Unlock()
	if ok {
		return at.Detach()
	}
	var errs []error
	for _, d := range directions {
		pin := a.linkPin(id, d.name)
		if pin == "" {
			continue
		}
		l, err := link.LoadPinnedLink(pin, nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := l.Detach(); err != nil && !errors.Is(err, link.ErrNotSupported) {
			errs = append(errs, err)
		}
		if err := l.Unpin(); err != nil {
			errs = append(errs, err)
		}
		l.Close()
	}
	a.mu.Lock()
	if err := a.objs.DcosNet.Delete(id); err != nil && !errors.Is(err, cebpf.ErrKeyNotExist) {
		errs = append(errs, err)
	}
	a.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ebpf forget cgroup %d: %w", id, err)
	}
	return nil
}

// Close releases this process's handles. Without a PinDir that detaches
// every attachment and frees the map. With one, links and counters stay
// pinned and keep counting for the next Load with the same PinDir (agent
// restart). Idempotent.
func (a *Accounting) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	var errs []error
	for _, at := range a.attached {
		for i, l := range at.links {
			if l == nil {
				continue
			}
			if err := l.Close(); err != nil {
				errs = append(errs, err)
			}
			at.links[i] = nil
		}
		at.gone = true
	}
	clear(a.attached)
	if err := a.objs.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ebpf close: %w", err)
	}
	return nil
}

// Destroy detaches every cgroup this agent counts, pinned or not, removes
// PinDir and closes a: for uninstalling an agent, and for tests.
func (a *Accounting) Destroy() error {
	ids, err := a.Registered()
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	if a.pinDir != "" {
		// Links pinned for cgroups whose counters are gone.
		ents, _ := os.ReadDir(filepath.Join(a.pinDir, "links"))
		for _, e := range ents {
			s, _, _ := strings.Cut(e.Name(), "_")
			if id, err := strconv.ParseUint(s, 10, 64); err == nil {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	for _, id := range slices.Compact(ids) {
		if err := a.Forget(id); err != nil {
			errs = append(errs, err)
		}
	}
	if a.pinDir != "" {
		if err := a.objs.DcosNet.Unpin(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := a.Close(); err != nil {
		errs = append(errs, err)
	}
	if a.pinDir != "" {
		if err := os.RemoveAll(a.pinDir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ebpf destroy: %w", err)
	}
	return nil
}

// ensurePinDir makes dir, mounting bpffs at BPFFS first when dir is beneath
// it and nothing is mounted there. dir must end up on a bpffs.
func ensurePinDir(dir string) error {
	dir = filepath.Clean(dir)
	if dir == BPFFS || strings.HasPrefix(dir, BPFFS+"/") {
		var fs unix.Statfs_t
		if err := unix.Statfs(BPFFS, &fs); err != nil {
			return fmt.Errorf("pin dir: %w", err)
		}
		if fs.Type != unix.BPF_FS_MAGIC {
			if err := unix.Mount("bpffs", BPFFS, "bpf", 0, "mode=0700"); err != nil {
				return &FeatureError{Feature: "bpffs (mount -t bpf bpffs " + BPFFS + ")", Err: err}
			}
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "links"), 0o700); err != nil {
		return fmt.Errorf("pin dir: %w", err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return fmt.Errorf("pin dir: %w", err)
	}
	if fs.Type != unix.BPF_FS_MAGIC {
		return fmt.Errorf("pin dir %s is not on a bpffs", dir)
	}
	return nil
}
