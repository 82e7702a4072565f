package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dcos-kernel/dcos/kernel"
)

func TestFloor_Check(t *testing.T) {
	errStatfs := errors.New("statfs: no such file")
	for _, tc := range []struct {
		name    string
		avail   int64
		err     error
		min     int64
		wantErr string
	}{
		{name: "above", avail: 100 << 20, min: 64 << 20},
		{name: "at the floor", avail: 64 << 20, min: 64 << 20},
		{name: "below", avail: 12 << 20, min: 64 << 20,
			wantErr: "kernel store: data dir /x has 12 MiB free, below the 64 MiB floor (--store-min-free); writes refused until space is freed"},
		{name: "unmeasurable is not refused", err: errStatfs, min: 64 << 20},
		{name: "no floor", avail: 0, min: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &floor{dir: "/x", min: tc.min, ttl: time.Second, clock: time.Now,
				statfs: func(string) (int64, error) { return tc.avail, tc.err }}
			err := f.check()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("check: %v, want nil", err)
				}
				return
			}
			var se *SpaceError
			if !errors.As(err, &se) || err.Error() != tc.wantErr || se.Free != tc.avail || se.NoSpace {
				t.Fatalf("check: %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// The answer is cached for ttl, measured again after it, and at once
// after forget.
func TestFloor_CheckCaches(t *testing.T) {
	now := time.Unix(1000, 0)
	calls, avail := 0, int64(1<<30)
	f := &floor{dir: "/x", min: 64 << 20, ttl: 250 * time.Millisecond, clock: func() time.Time { return now },
		statfs: func(string) (int64, error) { calls++; return avail, nil }}
	if err := f.check(); err != nil || calls != 1 {
		t.Fatalf("first check: %v, %d statfs calls", err, calls)
	}
	avail = 1 << 20
	now = now.Add(100 * time.Millisecond)
	if err := f.check(); err != nil || calls != 1 {
		t.Fatalf("check within the ttl: %v, %d statfs calls; want the cached answer", err, calls)
	}
	now = now.Add(200 * time.Millisecond)
	if err := f.check(); err == nil || calls != 2 {
		t.Fatalf("check after the ttl: %v, %d statfs calls; want a refusal from a new measurement", err, calls)
	}
	avail = 1 << 30
	f.forget()
	if err := f.check(); err != nil || calls != 3 {
		t.Fatalf("check after forget: %v, %d statfs calls", err, calls)
	}
	now = now.Add(-time.Hour) // a clock that went back measures again
	if f.check(); calls != 4 {
		t.Fatalf("%d statfs calls after the clock went back, want 4", calls)
	}
}

// A store whose gate refuses writes nothing and says why; reads work.
func TestEtcd_GateRefuses(t *testing.T) {
	ctx := context.Background()
	s, _ := startStore(t)
	avail := int64(1 << 30)
	f := &floor{dir: "/d", min: 64 << 20, ttl: 0, clock: time.Now, statfs: func(string) (int64, error) { return avail, nil }}
	s.WithGate(f.check)
	if _, err := s.Commit(ctx, changesWithSeq(1)); err != nil {
		t.Fatal(err)
	}
	avail = 1 << 20
	var se *SpaceError
	if _, err := s.Commit(ctx, changesWithSeq(2)); !errors.As(err, &se) {
		t.Fatalf("Commit below the floor: %v, want a *SpaceError", err)
	}
	if err := s.PutBlob(ctx, hexDigest([]byte("b")), []byte("b")); !errors.As(err, &se) {
		t.Fatalf("PutBlob below the floor: %v, want a *SpaceError", err)
	}
	st, err := s.Load(ctx)
	if err != nil || st.Seq != 1 {
		t.Fatalf("Load after a refused commit: %+v, %v; want seq 1", st, err)
	}
	avail = 1 << 30
	if _, err := s.Commit(ctx, changesWithSeq(2)); err != nil {
		t.Fatalf("Commit once space is back: %v", err)
	}
}

// etcd's NOSPACE alarm: writes past the quota are refused with the
// quota named, and Writable disarms the alarm by itself once the data is
// deleted and compacted away (defragmenting the file).
func TestEmbedded_NoSpaceAlarmDisarms(t *testing.T) {
	ctx := context.Background()
	const quota = 4 << 20
	e, err := StartEmbedded(EmbeddedConfig{Dir: t.TempDir(), Quota: quota, MinFree: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	cli := e.Client()
	val := strings.Repeat("x", 256<<10)
	// Fill until etcd's NOSPACE (a loaded machine may time a put out:
	// only NOSPACE ends a filling). Writable then reports the alarm — or,
	// when etcd's figure says enough of the full file is free pages,
	// defragments, finds the database under 90% of the quota and disarms:
	// then fill again (its next try is 2 s away, so the second filling's
	// alarm stays).
	var se *SpaceError
	var werr error
	for round := 0; round < 4 && werr == nil; round++ {
		full := false
		for i := 0; i < 64 && !full; i++ {
			_, err := cli.Put(ctx, fmt.Sprintf("/big/%d/%d", round, i), val)
			switch {
			case errors.Is(err, rpctypes.ErrNoSpace):
				full = true
			case err != nil:
				t.Logf("put %d/%d: %v", round, i, err)
			}
		}
		if !full {
			t.Fatal("16 MiB of puts under a 4 MiB quota never met etcd's NOSPACE")
		}
		if werr = e.Writable(); werr == nil {
			t.Logf("filling %d: the alarm was disarmed after a defragmentation; filling again", round)
		}
	}
	if !errors.As(werr, &se) || !se.NoSpace || !strings.Contains(werr.Error(), "at its 4 MiB quota (--store-quota)") {
		t.Fatalf("Writable past the quota: %v, want the NOSPACE SpaceError", werr)
	}
	// Deletes and compaction are allowed under the alarm.
	resp, err := cli.Delete(ctx, "/big/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.Writable() != nil && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if err := e.Writable(); err != nil {
		t.Fatalf("Writable after compaction: %v", err)
	}
	if _, err := cli.Put(ctx, "/small", "v"); err != nil {
		t.Fatalf("Put after the alarm was disarmed: %v", err)
	}
}

func changesWithSeq(seq uint64) *kernel.Changes { return &kernel.Changes{Seq: seq} }
