//go:build linux

package supervisor

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/dcos-kernel/dcos/internal/executor/wire"
	"github.com/dcos-kernel/dcos/internal/logfile"
)

// copyBuf is the fixed buffer of one stream's copier: a 100 MB line or
// binary junk flows through in pieces of at most this size.
const copyBuf = 32 << 10

// drainTimeout bounds how long a task's exit waits for its output to be
// copied: a daemon that left the task's process group may hold the pipe
// open forever, and then its copier goes on alone until EOF.
const drainTimeout = 2 * time.Second

// outputs are a task's stdout and stderr: for each a pipe whose write end
// the task gets and whose read end a copier drains into a logfile.Writer,
// or /dev/null.
type outputs struct {
	task [2]*os.File // the task's ends (pipe write ends or /dev/null), nil once closed
	read [2]*os.File // pipe read ends, nil for /dev/null
	logs [2]*logfile.Writer
	// drained is closed once every copier has reached EOF (at once
	// without pipes).
	drained chan struct{}
	// created are the files this start created, removed if it fails.
	created []string
}

// openOutputs opens spec's output logs and pipes. The log files are
// created by the supervisor through logfile (which never follows a
// symlink the task planted), 0644, owned by the task's user (the
// container's, else the isolation's; the supervisor's without either):
// the task may read, and even truncate, its own logs, as when it wrote
// them itself, but it never gets the supervisor to write anywhere else.
func openOutputs(spec *wire.StartSpec) (_ *outputs, err error) {
	o := &outputs{drained: make(chan struct{})}
	var owner *logfile.Owner
	if c := spec.Container; c != nil {
		owner = &logfile.Owner{UID: int(c.UID), GID: int(c.GID)}
	} else if iso := spec.Isolation; iso != nil {
		owner = &logfile.Owner{UID: int(iso.UID), GID: int(iso.GID)}
	}
	defer func() {
		if err != nil {
			o.closeTaskEnds()
			o.abort()
		}
	}()
	for i, path := range []string{spec.Stdout, spec.Stderr} {
		name := [2]string{"stdout", "stderr"}[i]
		if path == "" {
			f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			o.task[i] = f
			continue
		}
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			o.created = append(o.created, path, path+".000001")
		}
		w, err := logfile.Create(filepath.Dir(path), filepath.Base(path),
			logfile.Options{MaxBytes: spec.LogMaxBytes, MaxFiles: spec.LogMaxFiles, Owner: owner})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		o.logs[i] = w
		r, wr, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		o.read[i], o.task[i] = r, wr
	}
	return o, nil
}

// taskEnd is the file the task gets as stream i (0 stdout, 1 stderr).
func (o *outputs) taskEnd(i int) *os.File { return o.task[i] }

// closeTaskEnds closes the supervisor's copies of the task's ends, so
// that the copiers see EOF once the task's processes are gone. Idempotent.
func (o *outputs) closeTaskEnds() {
	for i, f := range o.task {
		if f != nil {
			f.Close()
			o.task[i] = nil
		}
	}
}

// abort closes everything of a start that failed (what run has not
// handed to the copiers yet) and removes the log files it created.
func (o *outputs) abort() {
	defer func() {
		for _, p := range o.created {
			os.Remove(p)
		}
	}()
	for i := range 2 {
		if o.read[i] != nil {
			o.read[i].Close()
			o.read[i] = nil
		}
		if o.logs[i] != nil {
			o.logs[i].Close()
			o.logs[i] = nil
		}
	}
}

// run starts one copier per pipe; drained closes when all have ended.
func (o *outputs) run(log *slog.Logger) {
	done := make(chan struct{}, 2)
	n := 0
	for i := range 2 {
		if o.read[i] == nil {
			continue
		}
		n++
		r, w := o.read[i], o.logs[i]
		o.read[i], o.logs[i] = nil, nil
		go func() {
			defer func() { done <- struct{}{} }()
			if err := copyOut(w, r); err != nil {
				log.Warn("task output lost", "log", w.Cursor(), "err", err)
			}
		}()
	}
	go func() {
		for range n {
			<-done
		}
		close(o.drained)
	}()
}

// copyOut copies r to w until r's EOF through one fixed buffer, then
// closes both. A failed write (disk full, a planted file) drops the rest
// of the output but still drains r, so that the task never blocks on a
// full pipe.
func copyOut(w *logfile.Writer, r *os.File) error {
	defer r.Close()
	buf := make([]byte, copyBuf)
	var werr error
	for {
		n, err := r.Read(buf)
		if n > 0 && werr == nil {
			_, werr = w.Write(buf[:n])
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, syscall.EIO) {
				break
			}
			werr = errors.Join(werr, err)
			break
		}
	}
	return errors.Join(werr, w.Close())
}
