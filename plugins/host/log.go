package host

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"slices"
	"strings"
	"sync"

	hclog "github.com/hashicorp/go-hclog"
)

// levelTrace is hclog's Trace level in slog, below Debug.
const levelTrace = slog.LevelDebug - 4

// slogLevel maps an hclog level to slog.
func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return levelTrace
	case hclog.Debug, hclog.NoLevel:
		return slog.LevelDebug
	case hclog.Info:
		return slog.LevelInfo
	case hclog.Warn:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

// hclogAdapter is an hclog.Logger that writes to a slog.Logger, keeping
// levels. go-plugin logs through it both its own events and the plugin's
// stderr lines (JSON hclog lines with their level, "[WARN] ..." lines with
// the level of the prefix, other lines at debug). Names are dropped: the
// slog logger already carries plugin=<kind>/<name>.
//
// onExit, if set, is called with go-plugin's account of how the plugin
// process exited ("exit status 3", "signal: killed"; empty for a clean exit)
// before go-plugin reports the exit to its clients.
type hclogAdapter struct {
	l       *slog.Logger
	name    string
	implied []any
	onExit  func(how string)
	// stderr, if set, keeps the last plain lines of the plugin's stderr
	// (go-plugin logs them through a Named logger, without arguments, at
	// debug unless a prefix says otherwise), so that a plugin that dies
	// before its handshake can be quoted in the start error.
	stderr *lineTail
}

// lineTail keeps the last few lines written to it. It is safe for
// concurrent use.
type lineTail struct {
	mu    sync.Mutex
	lines []string
}

// tailLines is how many stderr lines a start error quotes.
const tailLines = 5

func (t *lineTail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == tailLines {
		t.lines = append(t.lines[:0], t.lines[1:]...)
	}
	t.lines = append(t.lines, line)
}

// String is the lines kept, joined by " | "; empty if none.
func (t *lineTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, " | ")
}

var _ hclog.Logger = (*hclogAdapter)(nil)

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off {
		return
	}
	if a.onExit != nil && msg == "plugin process exited" {
		how := ""
		for i := 0; i+1 < len(args); i += 2 {
			if args[i] == "error" {
				how = fmt.Sprint(args[i+1])
			}
		}
		a.onExit(how)
	}
	if a.stderr != nil && a.name != "" && len(args) == 0 {
		a.stderr.add(msg)
	}
	ctx := context.Background()
	lvl := slogLevel(level)
	if !a.l.Enabled(ctx, lvl) {
		return
	}
	if len(a.implied) > 0 {
		args = append(append([]any{}, a.implied...), args...)
	}
	// go-plugin names the plugin's command "plugin"; that key is ours.
	for i := 0; i < len(args); i += 2 {
		if args[i] == "plugin" {
			args = slices.Clone(args)
			args[i] = "cmd"
		}
	}
	a.l.Log(ctx, lvl, msg, args...)
}

func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) enabled(l hclog.Level) bool {
	return a.l.Enabled(context.Background(), slogLevel(l))
}

func (a *hclogAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }
func (a *hclogAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }
func (a *hclogAdapter) IsInfo() bool  { return a.enabled(hclog.Info) }
func (a *hclogAdapter) IsWarn() bool  { return a.enabled(hclog.Warn) }
func (a *hclogAdapter) IsError() bool { return a.enabled(hclog.Error) }

func (a *hclogAdapter) ImpliedArgs() []any { return a.implied }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	b := *a
	b.implied = append(append([]any{}, a.implied...), args...)
	return &b
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	b := *a
	if b.name != "" {
		name = b.name + "." + name
	}
	b.name = name
	return &b
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	b := *a
	b.name = name
	return &b
}

// SetLevel does nothing: the slog handler decides what is logged.
func (a *hclogAdapter) SetLevel(hclog.Level) {}

// GetLevel returns the lowest level the slog handler logs; go-plugin skips
// parsing plugin lines below it.
func (a *hclogAdapter) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if a.enabled(l) {
			return l
		}
	}
	return hclog.Off
}

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	lvl := hclog.Info
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		lvl = opts.ForceLevel
	}
	return &lineWriter{log: func(line string) { a.Log(lvl, line) }}
}

// lineWriter calls log with each complete line written to it; Flush logs a
// last unterminated line. It is safe for concurrent use.
type lineWriter struct {
	log func(line string)
	mu  sync.Mutex
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(w.buf[:i]), "\r")
		w.buf = w.buf[i+1:]
		if line != "" {
			w.log(line)
		}
	}
	if len(w.buf) > 64<<10 { // a runaway line: log what we have
		w.log(string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

// Flush logs what is left of an unterminated line.
func (w *lineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.log(string(w.buf))
		w.buf = nil
	}
}
