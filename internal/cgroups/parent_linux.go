//go:build linux

package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// ParentDirs returns the directory of parent (as for NewTask) in every
// hierarchy the layout uses, keyed like Task.Paths. Co-mounted controllers
// share a directory. It touches nothing.
func (l Layout) ParentDirs(parent string) (map[string]string, error) {
	p, err := l.taskPaths(parent, "probe")
	if err != nil {
		return nil, err
	}
	for k, d := range p {
		p[k] = filepath.Dir(d)
	}
	return p, nil
}

// MakeParent creates parent (as for NewTask) in every hierarchy the layout
// uses and, on a pure v2 host, enables the memory, cpu and pids controllers
// from the hierarchy's root down to it: what NewTask would do first, done
// once so that a caller learns at start whether it can create task cgroups.
// It is idempotent.
//
// A missing permission is a *NotSupportedError naming the controller and the
// directory; on a pure v2 host a cgroup on the way that holds processes (and
// so may not enable controllers for its children) is a *NotSupportedError
// for "unified" naming it (see MoveToLeaf).
func (l Layout) MakeParent(parent string) error {
	dirs, err := l.ParentDirs(parent)
	if err != nil {
		return err
	}
	for _, k := range taskKeys {
		if d, ok := dirs[k]; ok {
			if err := mkdir(k, d, true); err != nil {
				return err
			}
		}
	}
	if l.Mode != ModeUnified {
		return l.fillCPUSetV1(dirs[KeyCPUSet])
	}
	err = l.enableControllers(dirs[KeyUnified])
	var fe *FileError
	if errors.As(err, &fe) && errors.Is(err, unix.EBUSY) {
		return &NotSupportedError{
			Controller: KeyUnified,
			Reason:     "cgroup " + fe.Dir + " holds processes, so it cannot enable controllers for child cgroups (cgroup v2 no-internal-processes rule)",
			Err:        err,
		}
	}
	return err
}

// Children returns the names of the cgroups directly beneath parent (as for
// NewTask) in any hierarchy the layout uses, sorted and without duplicates.
// A parent that does not exist has none.
func (l Layout) Children(parent string) ([]string, error) {
	dirs, err := l.ParentDirs(parent)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, d := range uniqueDirs(dirs) {
		ents, err := os.ReadDir(d)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, &FileError{Op: "read", Dir: d, Err: unwrapPath(err)}
		}
		for _, e := range ents {
			if e.IsDir() && !slices.Contains(names, e.Name()) {
				names = append(names, e.Name())
			}
		}
	}
	slices.Sort(names)
	return names, nil
}

// MoveToLeaf moves every process of cgroup p of the unified hierarchy (an
// absolute cgroup path, or relative to the current process's own cgroup as
// for NewTask) into its child cgroup leaf, creating it, and returns how many
// it moved. It creates nothing when p holds no process.
//
// It exists for pure cgroup v2, where a cgroup other than the root may only
// enable controllers for its children while it holds no process itself: an
// agent that creates task cgroups beneath its own cgroup first moves itself
// (and whatever else shares that cgroup) into a leaf, as systemd documents
// for delegated units. Processes that fork while it runs are moved too (it
// repeats until p is empty, up to 100 rounds). The root cgroup cannot be
// emptied (kernel threads live there): p must not be the root.
func (l Layout) MoveToLeaf(p, leaf string) (int, error) {
	if l.Unified == nil {
		return 0, &NotSupportedError{Controller: KeyUnified, Reason: "no cgroup v2 hierarchy"}
	}
	if leaf == "" || leaf == "." || leaf == ".." || filepath.Base(leaf) != leaf {
		return 0, errBadName
	}
	d := l.Unified.Dir(p)
	if d == filepath.Clean(l.Unified.Mount) {
		return 0, &FileError{Op: "write", File: "cgroup.procs", Dir: d, Err: errors.New("the root cgroup cannot be emptied")}
	}
	leafDir := filepath.Join(d, leaf)
	moved := 0
	for range 100 {
		s, err := readFile(d, "cgroup.procs")
		if err != nil {
			return moved, err
		}
		pids, err := parsePids(s)
		if err != nil {
			return moved, err
		}
		if len(pids) == 0 {
			return moved, nil
		}
		if err := mkdir(KeyUnified, leafDir, false); err != nil && !errors.Is(err, os.ErrExist) {
			return moved, err
		}
		for _, pid := range pids {
			err := writeFile(leafDir, "cgroup.procs", strconv.Itoa(pid))
			switch {
			case err == nil:
				moved++
			case errors.Is(err, unix.ESRCH):
				// exited meanwhile
			default:
				return moved, err
			}
		}
		time.Sleep(time.Millisecond)
	}
	return moved, &FileError{Op: "write", File: "cgroup.procs", Dir: leafDir, Err: errors.New("processes keep appearing in " + d)}
}
