package logfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkWriter writes 4 KiB chunks of lines through a Writer with
// default options, then the same bytes to a plain *os.File in the same
// run, and reports plain_ns/op and the ratio logfile/plain throughput.
func BenchmarkWriter(b *testing.B) {
	chunk := bytes.Repeat([]byte("a log line of 32 bytes or so..\n"), 4096/32)
	dir := b.TempDir()
	w, err := Create(dir, "stdout", Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := w.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	logDur := time.Since(start)
	b.StopTimer()

	f, err := os.Create(filepath.Join(dir, "plain"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	start = time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
		if i%2560 == 2559 { // the same size bound as the Writer's files
			if err := f.Truncate(0); err != nil {
				b.Fatal(err)
			}
			if _, err := f.Seek(0, 0); err != nil {
				b.Fatal(err)
			}
		}
	}
	plainDur := time.Since(start)
	b.ReportMetric(float64(plainDur.Nanoseconds())/float64(b.N), "plain_ns/op")
	b.ReportMetric(float64(plainDur)/float64(logDur), "throughput_ratio")
}

// BenchmarkFollow measures the latency from a Writer's Write returning to
// Follow's callback receiving the line, and reports p50 and p99.
func BenchmarkFollow(b *testing.B) {
	for _, mode := range []string{"inotify", "poll"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			w, err := Create(dir, "stdout", Options{MaxBytes: 64 << 10, MaxFiles: 5})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			r, err := Open(dir, "stdout")
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			r.poll = mode == "poll"
			ctx, cancel := context.WithCancel(context.Background())
			got := make(chan time.Time, 1)
			done := make(chan error, 1)
			from := w.Cursor() // before the first Write
			go func() {
				done <- r.Follow(ctx, from, func(p []byte, _ Cursor) error {
					got <- time.Now()
					return nil
				})
			}()
			lat := make([]time.Duration, 0, b.N)
			line := []byte("a line of about forty bytes, numbered\n")
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if _, err := w.Write(line); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, (<-got).Sub(start))
			}
			b.StopTimer()
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				b.Fatal(err)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50_µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99_µs")
		})
	}
}

// BenchmarkTail measures Tail(10) of a 1 GiB sparse log.
func BenchmarkTail(b *testing.B) {
	dir := b.TempDir()
	f, err := os.Create(genPath(dir, "stdout", 1))
	if err != nil {
		b.Fatal(err)
	}
	lines := []byte{}
	for i := 0; i < 100; i++ {
		lines = fmt.Appendf(lines, "line %d\n", i)
	}
	if err := f.Truncate(1<<30 - int64(len(lines))); err != nil {
		b.Fatal(err)
	}
	if _, err := f.WriteAt(lines, 1<<30-int64(len(lines))); err != nil {
		b.Fatal(err)
	}
	f.Close()
	r, err := Open(dir, "stdout")
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Tail(10); err != nil {
			b.Fatal(err)
		}
	}
}
