//go:build linux

package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// BenchmarkVolume_CreateMount times creating a 1 GiB loop volume and
// mounting it into a sandbox (CreateVolume + Mount), and reports the
// median as p50-ms.
func BenchmarkVolume_CreateMount(b *testing.B) {
	ctx := context.Background()
	td := newTestDriver(b, EnforceLoop, nil)
	if _, err := td.PrepareSandbox(ctx, "c1", 0); err != nil {
		b.Fatal(err)
	}
	var times []time.Duration
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprint("v", i)
		start := time.Now()
		if _, err := td.CreateVolume(ctx, contract.VolumeRequest{ID: id, Role: "db", SizeBytes: 1 << 30}); err != nil {
			b.Fatal(err)
		}
		if _, err := td.Mount(ctx, contract.MountRequest{ContainerID: "c1", VolumeID: id, Target: "data"}); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
		b.StopTimer()
		if err := td.Unmount(ctx, "c1", "data"); err != nil {
			b.Fatal(err)
		}
		if err := td.DestroyVolume(ctx, id); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(times[len(times)-1].Microseconds())/1000, "max-ms")
}

// BenchmarkVolume_SeqWrite writes 256 MiB sequentially, alternately into a
// directory beside the state dir (the agent's own filesystem) and into a
// 1 GiB loop volume (the order swapped every round), each ended by fsync
// (buffered) or written with O_DIRECT, and reports the volume's
// throughput as a ratio of the host's: over the whole run (vol/host) and
// the median of the rounds' ratios (goal ≥ 0.9).
func BenchmarkVolume_SeqWrite(b *testing.B) {
	for _, direct := range []bool{false, true} {
		name := "fsync"
		if direct {
			name = "direct"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			td := newTestDriver(b, EnforceLoop, nil)
			v, err := td.CreateVolume(ctx, contract.VolumeRequest{ID: "v", Role: "db", SizeBytes: 1 << 30})
			if err != nil {
				b.Fatal(err)
			}
			hostDir := b.TempDir()
			const size = 256 << 20
			var host, vol time.Duration
			var ratios []float64
			for i := 0; b.Loop(); i++ {
				dirs := []string{hostDir, v.Path}
				if i%2 == 1 {
					dirs[0], dirs[1] = dirs[1], dirs[0] // ABBA: drift hits both
				}
				took := map[string]time.Duration{}
				for _, dir := range dirs {
					p := filepath.Join(dir, "seq")
					d, err := seqWrite(p, size, direct)
					if err != nil {
						b.Fatal(err)
					}
					took[dir] = d
					os.Remove(p)
				}
				host += took[hostDir]
				vol += took[v.Path]
				ratios = append(ratios, float64(took[hostDir])/float64(took[v.Path]))
			}
			slices.Sort(ratios)
			b.ReportMetric(ratios[len(ratios)/2], "p50-vol/host")
			b.ReportMetric(float64(host)/float64(vol), "vol/host")
			b.ReportMetric(float64(b.N)*size/vol.Seconds()/(1<<20), "vol-MiB/s")
			b.ReportMetric(float64(b.N)*size/host.Seconds()/(1<<20), "host-MiB/s")
		})
	}
}

// seqWrite writes size bytes to a new file at path in 1 MiB writes and
// returns the time until they are on the device (O_DIRECT, or fsync).
func seqWrite(path string, size int64, direct bool) (time.Duration, error) {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if direct {
		flags |= unix.O_DIRECT
	}
	// O_DIRECT needs an aligned buffer.
	raw := make([]byte, 1<<20+4096)
	off := int(4096 - uintptr(unsafe.Pointer(&raw[0]))%4096)
	buf := raw[off : off+1<<20]
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	start := time.Now()
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	for n := int64(0); n < size; n += int64(len(buf)) {
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
