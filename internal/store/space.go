package store

import (
	"fmt"
	"sync"
	"time"
)

// Defaults of the disk guard (dcosd's --store-min-free, --store-quota).
const (
	// DefaultMinFree is the free space below which the kernel refuses
	// writes. It covers etcd's next WAL segment (walSegmentBytes,
	// preallocated ahead of use), a database growth step and a snapshot.
	DefaultMinFree = 64 << 20
	// DefaultQuota is etcd's own backend quota (its default too): past
	// it etcd raises its NOSPACE alarm and refuses writes.
	DefaultQuota = 2 << 30
	// spaceTTL is how long one statfs answer is reused: a commit costs
	// ~1.3 ms, a statfs ~1 µs, so a burst of commits needs only one; but
	// a writer can fill a disk in tens of milliseconds (dd on tmpfs), and
	// a commit that lands on a disk already full makes etcd exit ("failed
	// to commit tx: no space left on device"), so the answer is kept
	// briefly (250 ms let a CI run hit that window).
	spaceTTL = 5 * time.Millisecond
)

// SpaceError is why the store refuses writes: the data dir's filesystem
// is below the floor, or etcd's database reached its quota. Writes resume
// by themselves once the cause is gone.
type SpaceError struct {
	Dir     string // the data dir
	Free    int64  // bytes available to etcd when measured
	MinFree int64  // the floor
	Quota   int64  // with NoSpace: etcd's quota
	DBSize  int64  // with NoSpace: the database's size and what is in use
	DBInUse int64
	NoSpace bool // etcd's NOSPACE alarm, not the floor
}

func (e *SpaceError) Error() string {
	if e.NoSpace {
		return fmt.Sprintf("kernel store: etcd database in %s is %s (%s in use), at its %s quota (--store-quota); writes refused until it is compacted below the quota or the quota is raised",
			e.Dir, mib(e.DBSize), mib(e.DBInUse), mib(e.Quota))
	}
	return fmt.Sprintf("kernel store: data dir %s has %s free, below the %s floor (--store-min-free); writes refused until space is freed",
		e.Dir, mib(e.Free), mib(e.MinFree))
}

func mib(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }

// floor is the free-space check of a directory's filesystem, with the
// answer cached for ttl. It is safe for concurrent use.
type floor struct {
	dir    string
	min    int64
	ttl    time.Duration
	statfs func(dir string) (avail int64, err error)
	clock  func() time.Time

	mu      sync.Mutex
	checked time.Time
	avail   int64
	err     error
}

// check returns a *SpaceError when the filesystem has less than min bytes
// available (to an unprivileged writer: etcd must not count on the root
// reserve), nil otherwise. A filesystem that cannot be measured is not
// refused (etcd's own errors say more than ours).
func (f *floor) check() error {
	if f == nil || f.min <= 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.clock()
	if f.checked.IsZero() || now.Sub(f.checked) >= f.ttl || now.Before(f.checked) {
		f.avail, f.err = f.statfs(f.dir)
		f.checked = now
	}
	if f.err != nil || f.avail >= f.min {
		return nil
	}
	return &SpaceError{Dir: f.dir, Free: f.avail, MinFree: f.min}
}

// forget drops the cached answer, so that the next check measures.
func (f *floor) forget() {
	if f == nil {
		return
	}
	f.mu.Lock()
	f.checked = time.Time{}
	f.mu.Unlock()
}

// FreeBytes returns the bytes of dir's filesystem available to an
// unprivileged writer (statfs f_bavail), what the floor compares with
// --store-min-free.
func FreeBytes(dir string) (int64, error) { return statfsAvail(dir) }
