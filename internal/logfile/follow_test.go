package logfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// TestReader_FollowAcrossRotations writes numbered lines across more than
// 100 rotations and a restart of the writer while Follow consumes them: every line arrives exactly once,
// in order, and chunks end at line boundaries.
func TestReader_FollowAcrossRotations(t *testing.T) {
	for _, mode := range []string{"inotify", "poll"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			o := Options{MaxBytes: 64 << 10, MaxFiles: 1000}
			w, err := Create(dir, "stdout", o)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Open(dir, "stdout")
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			r.poll = mode == "poll"

			const lines = 600_000 // 13 bytes each, ~7.8 MB: ~119 rotations of 64 KiB
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			werr := make(chan error, 1)
			wend := make(chan Cursor, 1)
			go func() {
				defer func() { wend <- w.Cursor(); w.Close() }()
				rng := rand.New(rand.NewPCG(1, 2))
				var batch []byte
				restarted := false
				for i := 0; i < lines; {
					if i >= lines/2 && !restarted { // the writer's process restarts
						restarted = true
						w.Close()
						var cerr error
						if w, cerr = Create(dir, "stdout", o); cerr != nil {
							werr <- cerr
							return
						}
					}
					batch = batch[:0]
					for k := 1 + rng.IntN(20); k > 0 && i < lines; k-- {
						batch = fmt.Appendf(batch, "line %07d\n", i)
						i++
					}
					if _, err := w.Write(batch); err != nil {
						werr <- err
						return
					}
				}
				werr <- nil
			}()

			next := 0
			var partial []byte
			var last Cursor
			err = r.Follow(ctx, Cursor{}, func(b []byte, c Cursor) error {
				if i := bytes.IndexByte(b, '\n'); i >= 0 && b[len(b)-1] != '\n' {
					return fmt.Errorf("chunk ending %q holds a newline but does not end at one", b[len(b)-min(len(b), 10):])
				}
				if !(last.Gen < c.Gen || last.Gen == c.Gen && last.Off < c.Off) {
					return fmt.Errorf("cursor went from %s to %s", last, c)
				}
				last = c
				data := append(partial, b...)
				for {
					i := bytes.IndexByte(data, '\n')
					if i < 0 {
						break
					}
					want := fmt.Sprintf("line %07d", next)
					if string(data[:i]) != want {
						return fmt.Errorf("got %q, want %q", data[:i], want)
					}
					next++
					data = data[i+1:]
				}
				partial = append([]byte(nil), data...)
				if next == lines {
					cancel()
				}
				return nil
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("follow: %v (after %d lines)", err, next)
			}
			if err := <-werr; err != nil {
				t.Fatal(err)
			}
			if next != lines || len(partial) != 0 {
				t.Fatalf("followed %d lines and %q, want %d", next, partial, lines)
			}
			end := <-wend
			if end.Gen < 100 {
				t.Fatalf("only %d rotations", end.Gen-1)
			}
			if last != end {
				t.Fatalf("follow ended at %s, writer at %s", last, end)
			}
		})
	}
}

func TestReader_FollowWaitsAndStops(t *testing.T) {
	_, r, _ := newLog(t, Options{}, "ready\n")
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- r.Follow(ctx, Cursor{}, func(b []byte, c Cursor) error {
			got <- string(b) + "@" + c.String()
			return nil
		})
	}()
	if s := <-got; s != "ready\n@1:6" {
		t.Fatalf("first chunk %q", s)
	}
	cancel() // while Follow waits in inotify
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("follow returned %v, want context.Canceled", err)
	}
}

func TestReader_FollowOutError(t *testing.T) {
	_, r, _ := newLog(t, Options{}, "a\n", "b\n")
	stop := errors.New("stop")
	err := r.Follow(context.Background(), Cursor{}, func([]byte, Cursor) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("follow returned %v, want out's error", err)
	}
}

func TestReader_FollowTruncated(t *testing.T) {
	w, r, _ := newLog(t, Options{MaxBytes: 8, MaxFiles: 2})
	for i := 0; i < 5; i++ {
		mustWrite(t, w, "line "+strconv.Itoa(i)+"\n")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := r.Follow(ctx, Cursor{Gen: 1}, func([]byte, Cursor) error { return nil })
	var te *TruncatedError
	if !errors.As(err, &te) || te.Resume != (Cursor{Gen: 4}) {
		t.Fatalf("follow from a deleted generation: %v, want ErrTruncated resuming at 4:0", err)
	}
}
