package taskinit

import (
	_ "embed"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

//go:generate env LC_ALL=C gcc -std=gnu11 -static -Os -s -Wall -Wextra -Werror -ffile-prefix-map=./= -Wl,--build-id=none -o taskinit.bin initc/init.c

// Binary is the init program for linux/amd64, a static C program (see
// initc/init.c), built with the host's gcc and glibc.
//
//go:embed taskinit.bin
var Binary []byte

// Spec is what the init does for one task. With RootFS set it runs in
// container mode: the init pivot_roots into RootFS and execs the task as
// pid 1 of its pid namespace (see Prepare for what the caller sets then).
type Spec struct {
	UID, GID uint32
	// Groups are the supplementary groups; nil or empty: none.
	Groups []uint32
	// KeepCaps keeps the capabilities the uid has (root) and leaves
	// no_new_privs unset; else the bounding set is emptied and
	// no_new_privs set. Ignored in container mode (see Caps).
	KeepCaps bool
	// PIDNamespace: the init runs in a new pid namespace (pid 1) and mounts
	// its /proc; else /proc is mounted with hidepid=invisible.
	PIDNamespace bool
	// Hidden are directories (covered by an empty tmpfs) and files
	// (covered by /dev/null) the task must not see.
	Hidden []string
	// Cgroups are cgroup directories the init joins itself just before it
	// forks the task (the caller starts it in the others): a cpu cgroup,
	// so that the init's start-up does not count against the task's quota.
	Cgroups []string
	// Sandbox stays visible at its own path, with the mounts beneath it,
	// also when it is under a hidden path or a directory the task cannot
	// search. Hidden and Sandbox are ignored in container mode, where
	// nothing of the node is visible but Binds.
	Sandbox string

	// Hostname, when set, is the task's hostname (its uts namespace's);
	// in container mode and outside it.
	Hostname string

	// RootFS, when set, is the container's root: a directory on the node
	// (the driver mounted the image there; the init's own mount namespace
	// binds it onto itself, so any directory will do). Container mode
	// needs PIDNamespace.
	RootFS string
	// ReadOnlyRoot remounts the container's / read-only once the mounts
	// are made; the binds (as their ReadOnly says), /dev, /dev/shm,
	// /proc and /sys stay as they are.
	ReadOnlyRoot bool
	// Binds are node paths bound (recursively) into the container, in
	// order, before the pivot_root. Container mode only.
	Binds []Bind
	// Caps are the capabilities (names such as "CAP_CHOWN") a container
	// task running as UID 0 keeps in its bounding, effective and
	// permitted sets, without no_new_privs (a server's root drops to its
	// user with setuid); nil: DefaultContainerCaps; empty: none. A
	// container task with another UID has none and no_new_privs, whatever
	// Caps says. Container mode only.
	Caps []string
	// Dir is the working directory inside the container; "" is "/".
	// Container mode only (outside it, the caller's cmd.Dir is).
	Dir string
}

// Bind is a node path bound into a container.
type Bind struct {
	// Source is the node's path (a directory or a file), absolute.
	Source string
	// Target is the path inside the container, absolute; it is made (a
	// directory or an empty file, like Source) when missing, and symbolic
	// links in the image on the way resolve inside the container's root.
	Target string
	// ReadOnly makes the bind (and the mounts beneath it) read-only.
	ReadOnly bool
}

// DefaultContainerCaps are the capabilities a container task running as
// root keeps when its Spec's Caps is nil: Docker's default set without
// CAP_MKNOD, CAP_NET_RAW and CAP_AUDIT_WRITE, which a shared node does
// not hand out. Callers must not modify it.
var DefaultContainerCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
	"CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_SETFCAP",
}

// capNames are Linux's capability numbers (linux/capability.h; they never
// change).
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
	"CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
	"CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// CapNumber is the number of the capability name (as in capabilities(7):
// "CAP_CHOWN"; the case and the "CAP_" prefix do not matter), and whether
// it is one.
func CapNumber(name string) (int, bool) {
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	for i, c := range capNames {
		if c == n {
			return i, true
		}
	}
	return 0, false
}

// capList is the init's -caps value for names: numbers, comma-separated;
// an unknown name is passed as it is, which the init refuses.
func capList(names []string) string {
	ns := make([]string, len(names))
	for i, name := range names {
		if n, ok := CapNumber(name); ok {
			ns[i] = strconv.Itoa(n)
		} else {
			ns[i] = name
		}
	}
	return strings.Join(ns, ",")
}

func checkCaps(field string, names []string) error {
	for _, name := range names {
		if _, ok := CapNumber(name); !ok {
			return fmt.Errorf("%s: unknown capability %q", field, name)
		}
	}
	return nil
}

// Container reports whether s is in container mode (RootFS set).
func (s *Spec) Container() bool { return s.RootFS != "" }

// Validate checks s: container mode's fields only with RootFS, absolute
// paths, PIDNamespace in container mode, known capabilities, a hostname
// the kernel takes. Prepare calls it; the error names the field.
func (s *Spec) Validate() error {
	if len(s.Hostname) > 64 || strings.ContainsRune(s.Hostname, 0) {
		return fmt.Errorf("hostname %q: at most 64 bytes, no NUL", s.Hostname)
	}
	if s.RootFS == "" {
		switch {
		case s.ReadOnlyRoot:
			return errors.New("read-only root: only in container mode (no RootFS)")
		case len(s.Binds) > 0:
			return errors.New("binds: only in container mode (no RootFS)")
		case s.Caps != nil:
			return errors.New("caps: only in container mode (no RootFS)")
		case s.Dir != "":
			return errors.New("dir: only in container mode (no RootFS)")
		}
		return nil
	}
	if !filepath.IsAbs(s.RootFS) {
		return fmt.Errorf("rootfs %q: not an absolute path", s.RootFS)
	}
	if !s.PIDNamespace {
		return errors.New("rootfs: container mode needs a pid namespace (PIDNamespace)")
	}
	if s.Dir != "" && !filepath.IsAbs(s.Dir) {
		return fmt.Errorf("dir %q: not an absolute path", s.Dir)
	}
	for i, b := range s.Binds {
		if !filepath.IsAbs(b.Source) {
			return fmt.Errorf("binds[%d]: source %q: not an absolute path", i, b.Source)
		}
		if !filepath.IsAbs(b.Target) || filepath.Clean(b.Target) == "/" {
			return fmt.Errorf("binds[%d]: target %q: not an absolute path below /", i, b.Target)
		}
	}
	return checkCaps("caps", s.Caps)
}

// StatusFd is the descriptor of the status pipe in the init.
const StatusFd = 3

// Args is the init's argv for s and the task path and argv.
func Args(s *Spec, path string, argv []string) []string {
	a := []string{"dcos-init", "-uid", strconv.FormatUint(uint64(s.UID), 10), "-gid", strconv.FormatUint(uint64(s.GID), 10)}
	gs := make([]string, len(s.Groups))
	for i, g := range s.Groups {
		gs[i] = strconv.FormatUint(uint64(g), 10)
	}
	a = append(a, "-groups", strings.Join(gs, ","))
	if s.KeepCaps && s.RootFS == "" { // container mode: Caps
		a = append(a, "-keepcaps")
	}
	if s.PIDNamespace {
		a = append(a, "-pidns")
	}
	if s.Hostname != "" {
		a = append(a, "-hostname", s.Hostname)
	}
	if s.RootFS != "" {
		return containerArgs(a, s, path, argv)
	}
	for _, h := range s.Hidden {
		a = append(a, "-hide", h)
	}
	for _, c := range s.Cgroups {
		a = append(a, "-cgroup", c)
	}
	if s.Sandbox != "" {
		a = append(a, "-sandbox", s.Sandbox)
	}
	a = append(a, "--", path)
	return append(a, argv...)
}

func containerArgs(a []string, s *Spec, path string, argv []string) []string {
	a = append(a, "-rootfs", s.RootFS)
	for _, b := range s.Binds {
		flag := "-bind"
		if b.ReadOnly {
			flag = "-robind"
		}
		a = append(a, flag, b.Source, b.Target)
	}
	if s.ReadOnlyRoot {
		a = append(a, "-readonly")
	}
	if s.Dir != "" {
		a = append(a, "-dir", s.Dir)
	}
	if s.UID == 0 {
		caps := s.Caps
		if caps == nil {
			caps = DefaultContainerCaps
		}
		a = append(a, "-caps", capList(caps))
	}
	for _, c := range s.Cgroups {
		a = append(a, "-cgroup", c)
	}
	a = append(a, "--", path)
	return append(a, argv...)
}

// ParseStatus reads the init's status lines: started is true after "ok",
// startErr is the message of "err", signal the N of "signal N".
func ParseStatus(b []byte) (started bool, startErr string, signal int) {
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case line == "ok":
			started = true
		case strings.HasPrefix(line, "err "):
			startErr = strings.TrimPrefix(line, "err ")
		case strings.HasPrefix(line, "signal "):
			signal, _ = strconv.Atoi(strings.TrimPrefix(line, "signal "))
		}
	}
	return started, startErr, signal
}

// EnterSpec is what the init's enter mode does: run a command inside the
// running task whose process (any of them, usually its init) is PID.
type EnterSpec struct {
	PID int
	// Credentials, when set, are the task's user (UID, GID, Groups); nil
	// keeps the caller's.
	Credentials *Spec
	// KeepCaps keeps the capabilities (a root task); else they are
	// dropped and no_new_privs set.
	KeepCaps bool
	// Caps, when not nil, are the capabilities kept (names, as in Spec)
	// without no_new_privs, instead of KeepCaps: for a container task
	// running as root, its Spec's Caps (DefaultContainerCaps when those
	// were nil). The command path is looked up inside the container, and
	// the root and working directory start at the container's root.
	Caps []string
	// Cgroups are the task's cgroup directories, joined first.
	Cgroups []string
	// Dir is the working directory inside the task (its sandbox).
	Dir string
	// TTY: the command's stdin is a terminal (a pty slave that is
	// nobody's controlling terminal); the command leads a new session
	// with it as its controlling terminal, so that its process group is
	// one of the task's pid namespace (a shell's job control needs it).
	// The caller then kills the command through the init (PDEATHSIG) or
	// its session, not the init's process group.
	TTY bool
}

// EnterArgs is the init's argv for e and the command path (looked up in
// the environment's PATH inside the task when it has no slash) and argv.
func EnterArgs(e *EnterSpec, path string, argv []string) []string {
	a := []string{"dcos-init", "-enter", strconv.Itoa(e.PID)}
	if c := e.Credentials; c != nil {
		gs := make([]string, len(c.Groups))
		for i, g := range c.Groups {
			gs[i] = strconv.FormatUint(uint64(g), 10)
		}
		a = append(a, "-uid", strconv.FormatUint(uint64(c.UID), 10), "-gid", strconv.FormatUint(uint64(c.GID), 10),
			"-groups", strings.Join(gs, ","))
	}
	if e.Caps != nil {
		a = append(a, "-caps", capList(e.Caps))
	} else if e.KeepCaps {
		a = append(a, "-keepcaps")
	}
	for _, c := range e.Cgroups {
		a = append(a, "-cgroup", c)
	}
	if e.Dir != "" {
		a = append(a, "-sandbox", e.Dir)
	}
	if e.TTY {
		a = append(a, "-tty")
	}
	a = append(a, "--", path)
	return append(a, argv...)
}
