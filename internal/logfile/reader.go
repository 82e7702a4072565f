package logfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ErrTruncated is matched (errors.Is) by the *TruncatedError a Reader
// returns when the generation a cursor points at was deleted by the cap.
var ErrTruncated = errors.New("log truncated: older generations were deleted")

// TruncatedError reports that bytes between From and Resume were deleted
// before they were read. Reading continues at Resume.
type TruncatedError struct {
	From, Resume Cursor
}

func (e *TruncatedError) Error() string {
	return fmt.Sprintf("log truncated: cursor %s was deleted, resuming at %s", e.From, e.Resume)
}

// Is makes errors.Is(err, ErrTruncated) true.
func (e *TruncatedError) Is(target error) bool { return target == ErrTruncated }

// ErrBadCursor is matched by errors for a cursor that does not point into
// the stream: past the end of its generation or beyond the newest one.
var ErrBadCursor = errors.New("cursor is not in the log")

// Reader reads a stream written by a Writer, possibly in another process.
// It holds at most one open file between calls; Close releases it. A
// Reader is safe for concurrent use, though calls are serialized.
type Reader struct {
	dir, name string

	mu   sync.Mutex
	f    *os.File // cached open generation fgen, or nil
	fg   uint64
	tot  atomic.Int64 // bytes read by Tail, for tests
	poll bool         // tests: Follow polls instead of using inotify
}

// Open returns a Reader of stream name in dir. The stream need not exist
// yet: reads then return io.EOF until its writer starts.
func Open(dir, name string) (*Reader, error) {
	if err := checkName(dir, name); err != nil {
		return nil, fmt.Errorf("logfile open: %w", err)
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("logfile open: %w", err)
	}
	return &Reader{dir: dir, name: name}, nil
}

// Close releases the Reader's open file. It is idempotent.
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drop()
	return nil
}

func (r *Reader) drop() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

// file returns generation g open, or an error wrapping os.ErrNotExist.
func (r *Reader) file(g uint64) (*os.File, error) {
	if r.f != nil && r.fg == g {
		return r.f, nil
	}
	f, err := openRead(genPath(r.dir, r.name, g))
	if err != nil {
		return nil, err
	}
	r.drop()
	r.f, r.fg = f, g
	return f, nil
}

func (r *Reader) exists(g uint64) bool {
	_, err := os.Lstat(genPath(r.dir, r.name, g))
	return err == nil
}

// Read reads into p from cursor c and returns the cursor after the bytes
// read. A call reads from one generation only. At the end of a complete
// generation (a higher one exists) it continues at the next one, offset
// 0. At the end of the live generation it returns what it read with a nil
// error, or 0, c, io.EOF when there was nothing: wait and call again.
//
// The zero Cursor starts at the oldest stored byte. When c's generation
// was deleted by the cap, Read returns 0, the cursor of the oldest stored
// byte, and a *TruncatedError (errors.Is ErrTruncated): call again with
// that cursor to go on. (If this Reader still had the deleted generation
// open from an earlier call, it first returns the rest of it: those bytes
// are not lost.) A cursor past the end of the stream is an error
// matching ErrBadCursor.
func (r *Reader) Read(c Cursor, p []byte) (int, Cursor, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.Off < 0 {
		return 0, c, fmt.Errorf("logfile read %s: negative offset: %w", c, ErrBadCursor)
	}
	if c.Gen == 0 {
		gens, err := listGens(r.dir, r.name)
		if err != nil {
			return 0, c, fmt.Errorf("logfile read: %w", err)
		}
		if len(gens) == 0 {
			return 0, c, io.EOF
		}
		c = Cursor{Gen: gens[0]}
	}
	for {
		f, err := r.file(c.Gen)
		if errors.Is(err, os.ErrNotExist) {
			return r.lost(c)
		}
		if err != nil {
			return 0, c, fmt.Errorf("logfile read: %w", err)
		}
		complete := false
		for {
			n, err := f.ReadAt(p, c.Off)
			if n > 0 {
				return n, Cursor{Gen: c.Gen, Off: c.Off + int64(n)}, nil
			}
			if err != nil && err != io.EOF {
				return 0, c, fmt.Errorf("logfile read: %w", err)
			}
			if len(p) == 0 {
				return 0, c, nil
			}
			if complete {
				break
			}
			// The writer creates gen+1 only after its last write to gen:
			// if gen+1 exists now, one more read of gen sees all of it.
			// So does a gen the cap deleted (we hold it open), whose
			// successor may be gone too.
			if !r.exists(c.Gen+1) && r.exists(c.Gen) {
				if fi, err := f.Stat(); err == nil && fi.Size() < c.Off {
					return 0, c, fmt.Errorf("logfile read %s: offset past the end (%d bytes): %w", c, fi.Size(), ErrBadCursor)
				}
				return 0, c, io.EOF
			}
			complete = true
		}
		if fi, err := f.Stat(); err == nil && fi.Size() < c.Off {
			return 0, c, fmt.Errorf("logfile read %s: offset past the end (%d bytes): %w", c, fi.Size(), ErrBadCursor)
		}
		c = Cursor{Gen: c.Gen + 1}
	}
}

// lost handles a cursor whose generation does not exist.
func (r *Reader) lost(c Cursor) (int, Cursor, error) {
	gens, err := listGens(r.dir, r.name)
	if err != nil {
		return 0, c, fmt.Errorf("logfile read: %w", err)
	}
	if len(gens) == 0 || c.Gen > gens[len(gens)-1] {
		return 0, c, fmt.Errorf("logfile read %s: generation not found: %w", c, ErrBadCursor)
	}
	for _, g := range gens {
		if g > c.Gen {
			resume := Cursor{Gen: g}
			return 0, resume, &TruncatedError{From: c, Resume: resume}
		}
	}
	// c.Gen itself was listed: it reappeared; treat as bad rather than loop.
	return 0, c, fmt.Errorf("logfile read %s: generation vanished: %w", c, ErrBadCursor)
}

// tailBlock is how much Tail reads at a time, backwards from the end.
const tailBlock = 64 << 10

// Tail returns the cursor of the start of the last n lines of the stream,
// counted across generations (a final line without a newline counts). It
// reads backwards from the end in blocks and stops as soon as it has found
// them, so its cost depends on n and the line length, not the log size.
// With fewer than n lines stored it returns the oldest byte's cursor; n ==
// 0 gives the end of the stream. An empty stream gives the zero Cursor.
func (r *Reader) Tail(n int) (Cursor, error) {
	if n < 0 {
		return Cursor{}, fmt.Errorf("logfile tail: lines %d: must not be negative", n)
	}
	gens, err := listGens(r.dir, r.name)
	if err != nil {
		return Cursor{}, fmt.Errorf("logfile tail: %w", err)
	}
	if len(gens) == 0 {
		return Cursor{}, nil
	}
	buf := make([]byte, tailBlock)
	first := true // the next byte seen is the stream's last
	need := n
	var after Cursor // cursor after the newest generation's end
	for i := len(gens) - 1; i >= 0; i-- {
		g := gens[i]
		f, err := openRead(genPath(r.dir, r.name, g))
		if errors.Is(err, os.ErrNotExist) {
			break // deleted meanwhile: everything older is gone too
		}
		if err != nil {
			return Cursor{}, fmt.Errorf("logfile tail: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return Cursor{}, fmt.Errorf("logfile tail: %w", err)
		}
		end := fi.Size()
		if i == len(gens)-1 {
			after = Cursor{Gen: g, Off: end}
			if n == 0 {
				f.Close()
				return after, nil
			}
		}
		for end > 0 {
			start := max(end-tailBlock, 0)
			b := buf[:end-start]
			if _, err := f.ReadAt(b, start); err != nil && err != io.EOF {
				f.Close()
				return Cursor{}, fmt.Errorf("logfile tail: %w", err)
			}
			r.tot.Add(int64(len(b)))
			if first {
				first = false
				if b[len(b)-1] == '\n' {
					b = b[:len(b)-1] // ends the last line, does not start one
				}
			}
			for len(b) > 0 {
				j := bytes.LastIndexByte(b, '\n')
				if j < 0 {
					break
				}
				if need--; need == 0 {
					f.Close()
					return r.norm(gens, i, Cursor{Gen: g, Off: start + int64(j) + 1}, fi.Size()), nil
				}
				b = b[:j]
			}
			end = start
		}
		f.Close()
	}
	return Cursor{Gen: gens[0]}, nil
}

// norm turns the end of a complete generation into the start of the next.
func (r *Reader) norm(gens []uint64, i int, c Cursor, size int64) Cursor {
	if c.Off == size && i < len(gens)-1 {
		return Cursor{Gen: gens[i+1]}
	}
	return c
}

// Since returns the cursor of the start of the first generation last
// written at or after t (its modification time). It is coarse: that
// generation may begin with lines older than t. If no generation was
// written since t it returns the end of the stream; an empty stream gives
// the zero Cursor.
func (r *Reader) Since(t time.Time) (Cursor, error) {
	gens, err := listGens(r.dir, r.name)
	if err != nil {
		return Cursor{}, fmt.Errorf("logfile since: %w", err)
	}
	for i, g := range gens {
		fi, err := os.Lstat(genPath(r.dir, r.name, g))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return Cursor{}, fmt.Errorf("logfile since: %w", err)
		}
		if !fi.ModTime().Before(t) {
			return Cursor{Gen: g}, nil
		}
		if i == len(gens)-1 {
			return Cursor{Gen: g, Off: fi.Size()}, nil
		}
	}
	return Cursor{}, nil
}
