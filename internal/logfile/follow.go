package logfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// followBuf is the most Follow hands to out in one call.
const followBuf = 64 << 10

// pollEvery is how often Follow looks for growth when inotify is not
// available.
const pollEvery = 10 * time.Millisecond

// Follow reads the stream from c and calls out with each chunk read and
// the cursor just after it, following the stream across rotations, until
// ctx ends (it returns ctx.Err()) or out returns an error (it returns that
// error). Chunks end at a line boundary when they hold a newline; a chunk
// without one (a partial line at the live end, the tail of a line split by
// rotation, binary data) is passed as is. out must not retain the slice.
//
// At the end of the live generation Follow waits for growth with inotify
// on dir, or by polling every 10 ms when inotify is unavailable. When the
// cap deleted what Follow was about to read it returns the
// *TruncatedError (errors.Is ErrTruncated); call Follow again with its
// Resume cursor to go on.
func (r *Reader) Follow(ctx context.Context, c Cursor, out func([]byte, Cursor) error) error {
	w, err := newWaiter(ctx, r.dir, r.poll)
	if err != nil {
		return fmt.Errorf("logfile follow: %w", err)
	}
	defer w.close()
	buf := make([]byte, followBuf)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, next, err := r.Read(c, buf)
		switch {
		case err == io.EOF:
			if err := w.wait(ctx); err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		}
		chunk := buf[:n]
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 && i < n-1 {
			chunk = chunk[:i+1]
			next = Cursor{Gen: next.Gen, Off: next.Off - int64(n-i-1)}
		}
		if err := out(chunk, next); err != nil {
			return err
		}
		c = next
	}
}

// waiter waits for the directory to change.
type waiter struct {
	f    *os.File // inotify, or nil: poll
	stop func() bool
	buf  []byte
}

func newWaiter(ctx context.Context, dir string, poll bool) (*waiter, error) {
	if poll {
		return &waiter{}, nil
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return &waiter{}, nil // poll
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MODIFY|unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil, err
		}
		return &waiter{}, nil // poll (e.g. out of watches)
	}
	// A non-blocking fd in an *os.File uses the runtime poller, so the
	// read below can be interrupted by a deadline when ctx ends.
	f := os.NewFile(uintptr(fd), "inotify")
	w := &waiter{f: f, buf: make([]byte, 4096)}
	w.stop = context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Now()) })
	return w, nil
}

func (w *waiter) wait(ctx context.Context) error {
	if w.f == nil {
		t := time.NewTimer(pollEvery)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	if _, err := w.f.Read(w.buf); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("logfile follow: inotify: %w", err)
	}
	return nil
}

func (w *waiter) close() {
	if w.f != nil {
		w.stop()
		w.f.Close()
	}
}
