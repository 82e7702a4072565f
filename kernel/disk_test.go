package kernel_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dcos-kernel/dcos/internal/store"
	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// mountTmpfs mounts a tmpfs of size bytes on a fresh directory, unmounted
// when the test ends (after everything registered later was cleaned up).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size="+size); err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("mount tmpfs: %v (needs root)", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func availBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// TestKernel_FullDisk fills the etcd data dir's filesystem (a 64 MiB
// tmpfs) below the floor: writes answer Unavailable naming the cause,
// leave memory as it was, reads and the history's Watch keep working, and
// writes resume once the file is removed.
func TestKernel_FullDisk(t *testing.T) {
	ctx := context.Background()
	mnt := mountTmpfs(t, "64m")
	dir := filepath.Join(mnt, "data")
	const floor = 8 << 20
	e, err := store.StartEmbedded(store.EmbeddedConfig{Dir: dir, MinFree: floor})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	s := store.New(e.Client(), "").WithGate(e.Writable)
	k, err := kernel.New(ctx, kernel.Config{Store: s, HeartbeatTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { k.Run(rctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	register(t, k, 4, 4<<30)
	a, err := k.Allocate(ctx, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	before := len(k.ListAllocations(ctx, ops, &pb.ListAllocationsRequest{}).GetAllocations())
	rev := k.Revision()

	// Leave 4 MiB: below the 8 MiB floor.
	fill := filepath.Join(mnt, "fill")
	if err := os.WriteFile(fill, make([]byte, availBytes(t, mnt)-4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the floor's cache (250 ms)
	want := "kernel store: data dir " + dir + " has "
	_, err = k.Allocate(ctx, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}, Count: 1})
	if kernel.CodeOf(err) != kernel.Unavailable || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "below the 8 MiB floor (--store-min-free); writes refused until space is freed") {
		t.Fatalf("Allocate on a full disk: %v (%v), want Unavailable %q...", err, kernel.CodeOf(err), want)
	}
	_, err = k.Launch(ctx, fwA, &pb.LaunchRequest{AllocationId: a.GetAllocations()[0].GetId(), Command: "true"})
	if kernel.CodeOf(err) != kernel.Unavailable || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Launch on a full disk: %v, want Unavailable %q...", err, want)
	}
	// Reads: the table, unchanged, and the event log's history.
	if n := len(k.ListAllocations(ctx, ops, &pb.ListAllocationsRequest{}).GetAllocations()); n != before || k.Revision() != rev {
		t.Fatalf("after refused writes: %d allocations at revision %d, want %d at %d", n, k.Revision(), before, rev)
	}
	if len(k.ListAgents(ctx, ops).GetAgents()) != 1 {
		t.Fatal("ListAgents lost the agent")
	}
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	var granted bool
	err = k.Watch(wctx, ops, &pb.WatchRequest{AfterRevision: 1}, func(ev *pb.Event) error {
		if ev.GetKind() == pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED {
			granted = true
			wcancel()
		}
		return nil
	})
	if err != nil || !granted {
		t.Fatalf("Watch of the history on a full disk: granted %v, %v", granted, err)
	}

	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err = k.Allocate(ctx, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}, Count: 1})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Allocate after the file was removed: %v", err)
	}
	if n := len(k.ListAllocations(ctx, ops, &pb.ListAllocationsRequest{}).GetAllocations()); n != before+1 {
		t.Fatalf("%d allocations after writes resumed, want %d", n, before+1)
	}
}

// Allocations that ask for no disk get Config.DefaultDisk; others keep
// theirs.
func TestKernel_DefaultDisk(t *testing.T) {
	ctx := context.Background()
	k, _ := newEnv(t).startWith(t, kernel.Config{DefaultDisk: 64 << 20})
	for _, tc := range []struct {
		name       string
		disk, want int64
	}{
		{"none asked", 0, 64 << 20},
		{"asked", 1 << 20, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := k.Allocate(ctx, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20, DiskBytes: tc.disk}, Count: 1})
			if err != nil {
				t.Fatal(err)
			}
			if got := res.GetAllocations()[0].GetResources().GetDiskBytes(); got != tc.want {
				t.Errorf("disk %d, want %d", got, tc.want)
			}
		})
	}
}

// gated is the real store with a gate the test opens and closes.
type gated struct {
	*store.Etcd
	refuse atomic.Bool
}

func (g *gated) Writable() error {
	if g.refuse.Load() {
		return errors.New("kernel store: test refuses writes")
	}
	return nil
}

// While writes are refused nothing expires, and after they resume a lease
// that ran out meanwhile gets a grace in which its owner can renew it.
func TestKernel_RefusedWritesGraceLeases(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	g := &gated{Etcd: e.store.Etcd}
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	k, err := kernel.New(ctx, kernel.Config{Store: g, Clock: clock, HeartbeatTimeout: 30 * time.Second, Tick: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { k.Run(rctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	register(t, k, 4, 4<<30)
	res, err := k.Allocate(ctx, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}, Count: 1, LeaseTtl: durationpb.New(10 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	id := res.GetAllocations()[0].GetId()

	// A call through the loop makes it see the gate, at the fake time.
	throughLoop := func() error { _, err := k.Revoke(ctx, ops, &pb.RevokeRequest{Id: "a-999"}); return err }
	g.refuse.Store(true)
	if err := throughLoop(); kernel.CodeOf(err) != kernel.Unavailable {
		t.Fatalf("Revoke while refused: %v, want Unavailable", err)
	}
	advance(time.Minute) // the lease ran out while refused
	if _, err := k.KeepAlive(ctx, fwA, &pb.KeepAliveRequest{AllocationIds: []string{id}}); kernel.CodeOf(err) != kernel.Unavailable {
		t.Fatalf("KeepAlive while refused: %v, want Unavailable", err)
	}
	g.refuse.Store(false)
	if err := throughLoop(); kernel.CodeOf(err) != kernel.NotFound {
		t.Fatalf("Revoke of an unknown id once writes resumed: %v, want NotFound", err)
	} // resumed: a grace as long as the refusal, one minute
	advance(30 * time.Second)
	ka, err := k.KeepAlive(ctx, fwA, &pb.KeepAliveRequest{AllocationIds: []string{id}})
	if err != nil || ka.GetAllocations()[0].GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
		t.Fatalf("KeepAlive within the grace after writes resumed: %v, %v; want the allocation still granted", ka, err)
	}
	// Past the grace, an unrenewed lease expires as usual.
	advance(2 * time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for {
		as := k.ListAllocations(ctx, ops, &pb.ListAllocationsRequest{}).GetAllocations()
		if len(as) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease not expired past the grace: %v", as)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
