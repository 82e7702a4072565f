package plugin

import (
	"os/exec"
	"time"

	"github.com/dcos-kernel/dcos/internal/taskinit"
)

// IsolatedStart is a task started under dcos's task init, the same one
// the built-in exec driver runs every isolated task under: it does what
// TaskConfig.Isolation asks (see TaskIsolation and docs/plugins.md, "Task
// isolation"). Create it with Isolate. Not safe for concurrent use.
type IsolatedStart struct{ s *taskinit.Start }

// Isolate prepares cmd, a start of the task (Path resolved to an absolute
// path, Args, Env, Dir, output files, and SysProcAttr with Setpgid set),
// to run under the task init as iso asks: cmd then starts the init, as
// root, in new mount, pid (unless iso.SharePID), ipc and uts namespaces,
// which confines them, enters a cgroup namespace, drops capabilities and
// sets no_new_privs (unless iso.UID is 0), and forks the task with iso's
// credentials in the init's process group. Signals to that group reach the
// task; the init exits with the task's status.
//
// The driver must run as root on Linux (else cmd.Start fails, or Isolate
// returns an error wrapping nothing more specific than the OS's), and
// cmd.ExtraFiles must be empty (fd 3 is the init's). Output files the
// driver creates for the task should be owned by iso.UID and iso.GID.
// After cmd.Start call Started; once the process was waited for, Exit
// maps its status; on a failed start, Close.
func Isolate(cmd *exec.Cmd, iso *TaskIsolation) (*IsolatedStart, error) {
	s, err := taskinit.Prepare(cmd, &taskinit.Spec{UID: iso.UID, GID: iso.GID, Groups: iso.Groups,
		KeepCaps: iso.UID == 0, PIDNamespace: !iso.SharePID, Hidden: iso.HiddenPaths, Sandbox: iso.Sandbox})
	if err != nil {
		return nil, err
	}
	return &IsolatedStart{s: s}, nil
}

// Started waits, after cmd.Start, until the task runs (nil) or the init
// reports why it cannot start (then the init exits 127: wait for cmd as
// usual). It waits at most 10 s.
func (i *IsolatedStart) Started() error { return i.s.Started(10 * time.Second) }

// Exit maps the init's exit code (or -1) and signal (or 0) to the task's:
// the init exits 128+N when signal N killed the task, and says so.
func (i *IsolatedStart) Exit(code, signal int) (int, int) { return i.s.Exit(code, signal) }

// Close releases the start. Idempotent; Exit closes too.
func (i *IsolatedStart) Close() { i.s.Close() }
