package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
)

// Mode is the cgroup layout of a host.
type Mode int

const (
	// ModeNone means no usable cgroup hierarchy was found.
	ModeNone Mode = iota
	// ModeV1 means only v1 hierarchies are mounted.
	ModeV1
	// ModeHybrid means v1 hierarchies carry the resource controllers and the
	// v2 unified hierarchy is mounted too (for BPF, cgroup.kill, clone3).
	ModeHybrid
	// ModeUnified means pure cgroup v2.
	ModeUnified
)

func (m Mode) String() string {
	switch m {
	case ModeV1:
		return "v1"
	case ModeHybrid:
		return "hybrid"
	case ModeUnified:
		return "unified"
	}
	return "none"
}

// Hierarchy is one mounted cgroup hierarchy and the current process's place
// in it.
type Hierarchy struct {
	// Mount is where the hierarchy is mounted, e.g. /sys/fs/cgroup/memory.
	Mount string
	// Root is the cgroup path the mount shows at its top (mountinfo's root
	// field); "/" unless the mount is a bind mount or in a cgroup namespace.
	Root string
	// Self is the current process's cgroup path in this hierarchy, as listed
	// in /proc/self/cgroup, e.g. /process_api/b4fe.
	Self string
}

// Dir returns the directory of cgroup path p in this hierarchy. An absolute p
// is a path as in /proc/self/cgroup ("/dcos"); a relative one is beneath Self
// ("dcos" → Self/dcos); the empty path means Self.
func (h Hierarchy) Dir(p string) string {
	if !strings.HasPrefix(p, "/") {
		p = path.Join(h.Self, p)
	}
	p = path.Clean("/" + p)
	if h.Root != "" && h.Root != "/" {
		if rel, ok := strings.CutPrefix(p, h.Root); ok && (rel == "" || rel[0] == '/') {
			p = rel
		}
	}
	return path.Join(h.Mount, p)
}

// Layout is the cgroup layout of a host, as seen by the current process.
// It is a plain value: safe to copy and to use from several goroutines.
type Layout struct {
	Mode Mode
	// V1 maps each mounted v1 controller name ("memory", "cpu", "cpuacct",
	// "pids", "freezer", ...) to its hierarchy. Co-mounted controllers share
	// one Hierarchy value.
	V1 map[string]Hierarchy
	// Unified is the v2 hierarchy; nil if none is mounted.
	Unified *Hierarchy
	// UnifiedControllers lists the controllers available in the unified
	// hierarchy (the root's cgroup.controllers), filled in by Detect.
	UnifiedControllers []string
}

// mount is one cgroup or cgroup2 line of /proc/self/mountinfo.
type mount struct {
	Root, Point, FSType string
	SuperOpts           []string
}

// parseMountInfo returns the cgroup and cgroup2 mounts listed in text, in the
// format of /proc/self/mountinfo. Malformed lines are an error.
func parseMountInfo(text string) ([]mount, error) {
	var out []mount
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			return nil, fmt.Errorf("mountinfo line %d: no separator: %q", n, line)
		}
		f := strings.Fields(pre)
		g := strings.Fields(post)
		if len(f) < 6 || len(g) < 2 {
			return nil, fmt.Errorf("mountinfo line %d: too few fields: %q", n, line)
		}
		fstype := g[0]
		if fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		var opts []string
		if len(g) >= 3 {
			opts = strings.Split(g[2], ",")
		}
		out = append(out, mount{
			Root:      unescapeMount(f[3]),
			Point:     unescapeMount(f[4]),
			FSType:    fstype,
			SuperOpts: opts,
		})
	}
	return out, sc.Err()
}

// unescapeMount undoes the octal escapes (\040 for space, ...) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, ok := octal3(s[i+1 : i+4]); ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func octal3(s string) (byte, bool) {
	if len(s) != 3 {
		return 0, false
	}
	v := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '7' {
			return 0, false
		}
		v = v*8 + int(c-'0')
	}
	if v > 255 {
		return 0, false
	}
	return byte(v), true
}

// procCgroup is the parsed /proc/self/cgroup: v1 controller (or "name=x")
// to path, and the v2 path ("" and false if absent).
type procCgroup struct {
	V1    map[string]string
	V2    string
	HasV2 bool
}

// parseProcCgroup parses text in the format of /proc/<pid>/cgroup.
func parseProcCgroup(text string) (procCgroup, error) {
	pc := procCgroup{V1: map[string]string{}}
	for n, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		id, rest, ok1 := strings.Cut(line, ":")
		ctrls, p, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || id == "" || !strings.HasPrefix(p, "/") {
			return procCgroup{}, fmt.Errorf("cgroup line %d: malformed: %q", n+1, line)
		}
		if id == "0" && ctrls == "" {
			pc.V2, pc.HasV2 = p, true
			continue
		}
		for _, c := range strings.Split(ctrls, ",") {
			if c != "" {
				pc.V1[c] = p
			}
		}
	}
	return pc, nil
}

// requiredV1 are the v1 controllers a task's limits need.
var requiredV1 = []string{"memory", "cpu", "pids"}

// requiredV2 are the v2 controllers a task's limits need on a pure v2 host.
var requiredV2 = []string{"memory", "cpu", "pids"}

// buildLayout combines the texts of /proc/self/mountinfo and
// /proc/self/cgroup into a Layout (without UnifiedControllers).
func buildLayout(mountinfo, cgroup string) (Layout, error) {
	mounts, err := parseMountInfo(mountinfo)
	if err != nil {
		return Layout{}, err
	}
	pc, err := parseProcCgroup(cgroup)
	if err != nil {
		return Layout{}, err
	}
	l := Layout{V1: map[string]Hierarchy{}}
	for _, m := range mounts {
		if m.FSType == "cgroup2" {
			if l.Unified != nil || !pc.HasV2 {
				continue // first mount wins; no v2 membership: unusable
			}
			l.Unified = &Hierarchy{Mount: m.Point, Root: m.Root, Self: pc.V2}
			continue
		}
		for _, o := range m.SuperOpts {
			p, ok := pc.V1[o]
			if !ok {
				continue // "rw", "relatime", ... or not a controller we are in
			}
			if _, seen := l.V1[o]; seen {
				continue
			}
			l.V1[o] = Hierarchy{Mount: m.Point, Root: m.Root, Self: p}
		}
	}
	hasLimitsV1 := slices.ContainsFunc(requiredV1, func(c string) bool { _, ok := l.V1[c]; return ok })
	switch {
	case hasLimitsV1 && l.Unified != nil:
		l.Mode = ModeHybrid
	case hasLimitsV1:
		l.Mode = ModeV1
	case l.Unified != nil:
		l.Mode = ModeUnified
	default:
		return l, &NotSupportedError{Controller: "cgroups", Reason: "no cgroup hierarchy mounted"}
	}
	return l, nil
}

// Check reports whether the layout has every controller a task's limits
// need. The error is a *NotSupportedError naming the first missing one.
// It does not check permissions; NewTask reports those.
func (l Layout) Check() error {
	switch l.Mode {
	case ModeV1, ModeHybrid:
		for _, c := range requiredV1 {
			if _, ok := l.V1[c]; !ok {
				return &NotSupportedError{Controller: c, Reason: "no v1 " + c + " hierarchy mounted"}
			}
		}
	case ModeUnified:
		for _, c := range requiredV2 {
			if !slices.Contains(l.UnifiedControllers, c) {
				return &NotSupportedError{Controller: c, Reason: "not in the unified hierarchy's cgroup.controllers"}
			}
		}
	default:
		return &NotSupportedError{Controller: "cgroups", Reason: "no cgroup hierarchy mounted"}
	}
	return nil
}

var errBadName = errors.New("cgroups: task name must be a single non-empty path element")
