package image

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/imagetest"
	"github.com/klauspost/compress/gzip"
)

// benchImage pushes a ~50 MB image (4 layers of files that are half random,
// half text, so they compress like real binaries and docs) and returns its
// reference and compressed layer blob paths in the registry's storage.
func benchImage(b *testing.B) (ref string, blobs []string) {
	b.Helper()
	requireRoot(b)
	r := imagetest.StartRegistry(b)
	rng := rand.New(rand.NewPCG(1, 2))
	text := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog; ", 4096))
	var layers [][]byte
	for l := 0; l < 4; l++ {
		var es []imagetest.Entry
		total := 0
		for i := 0; total < 12<<20; i++ {
			n := 16<<10 + rng.IntN(512<<10)
			body := make([]byte, n)
			for j := 0; j < n/2; j++ {
				body[j] = byte(rng.Uint32())
			}
			for j := n / 2; j < n; j += len(text) {
				copy(body[j:], text)
			}
			es = append(es, imagetest.Entry{Name: fmt.Sprintf("l%d/d%d/f%d", l, i%16, i), Body: string(body), Mode: 0o644})
			total += n
		}
		layers = append(layers, imagetest.Tar(b, es...))
	}
	ref, _ = r.PushLayers(b, "bench:1", imagetest.Config{}, layers...)
	for _, d := range r.LayerDigests(b, ref) {
		blobs = append(blobs, r.BlobPath(d))
	}
	return ref, blobs
}

// decompress reads every blob and gunzips it to nowhere: the floor a pull is
// measured against.
func decompress(b *testing.B, blobs []string) {
	for _, p := range blobs {
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, zr); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// decompressUntar gunzips and unpacks every blob from disk into a fresh dir:
// a pull without the registry.
func decompressUntar(b *testing.B, blobs []string) {
	dir := b.TempDir()
	for i, p := range blobs {
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := unpack(zr, filepath.Join(dir, fmt.Sprint(i))); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

func pullOnce(b *testing.B, ref string) {
	s, err := Open(filepath.Join(b.TempDir(), "images"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Pull(context.Background(), ref); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPull is a cold pull (download from a loopback registry, verify,
// gunzip, untar) of a ~50 MB image into an empty store, next to just
// gunzipping the same layer blobs (sequentially, from the page cache) in the
// same run; ratio is pull time / decompress time (issue 14's goal: ≤ 1.2),
// ratio-vs-untar is pull time / (gunzip + unpack to disk, no registry).
func BenchmarkPull(b *testing.B) {
	ref, blobs := benchImage(b)
	decompress(b, blobs) // warm the page cache
	var pull, dec, untar time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		pullOnce(b, ref)
		t1 := time.Now()
		decompress(b, blobs)
		t2 := time.Now()
		decompressUntar(b, blobs)
		pull += t1.Sub(t0)
		dec += t2.Sub(t1)
		untar += time.Since(t2)
	}
	b.ReportMetric(float64(pull.Nanoseconds())/float64(b.N), "pull-ns/op")
	b.ReportMetric(float64(dec.Nanoseconds())/float64(b.N), "decompress-ns/op")
	b.ReportMetric(float64(untar.Nanoseconds())/float64(b.N), "decompress+untar-ns/op")
	b.ReportMetric(float64(pull)/float64(dec), "ratio")
	b.ReportMetric(float64(pull)/float64(untar), "ratio-vs-untar")
}

// BenchmarkDecompress is only the gunzip of the BenchmarkPull image's layers.
func BenchmarkDecompress(b *testing.B) {
	_, blobs := benchImage(b)
	var size int64
	for _, p := range blobs {
		fi, _ := os.Stat(p)
		size += fi.Size()
	}
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		decompress(b, blobs)
	}
}
