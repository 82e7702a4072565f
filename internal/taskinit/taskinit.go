package taskinit

import (
	_ "embed"
	"strconv"
	"strings"
)

//go:generate env LC_ALL=C gcc -std=gnu11 -static -Os -s -Wall -Wextra -Werror -ffile-prefix-map=./= -Wl,--build-id=none -o taskinit.bin initc/init.c

// Binary is the init program for linux/amd64, a static C program (see
// initc/init.c), built with the host's gcc and glibc.
//
//go:embed taskinit.bin
var Binary []byte

// Spec is what the init does for one task.
type Spec struct {
	UID, GID uint32
	// Groups are the supplementary groups; nil or empty: none.
	Groups []uint32
	// KeepCaps keeps the capabilities the uid has (root) and leaves
	// no_new_privs unset; else the bounding set is emptied and
	// no_new_privs set.
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
	// search.
	Sandbox string
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
	if s.KeepCaps {
		a = append(a, "-keepcaps")
	}
	if s.PIDNamespace {
		a = append(a, "-pidns")
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
	// Cgroups are the task's cgroup directories, joined first.
	Cgroups []string
	// Dir is the working directory inside the task (its sandbox).
	Dir string
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
	if e.KeepCaps {
		a = append(a, "-keepcaps")
	}
	for _, c := range e.Cgroups {
		a = append(a, "-cgroup", c)
	}
	if e.Dir != "" {
		a = append(a, "-sandbox", e.Dir)
	}
	a = append(a, "--", path)
	return append(a, argv...)
}
