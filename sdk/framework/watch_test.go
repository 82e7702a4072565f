package framework

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// collect watches with c after rev until want events arrived.
func collect(ctx context.Context, c *Client, after int64, want int) ([]*pb.Event, error) {
	var got []*pb.Event
	errDone := errors.New("done")
	err := c.Watch(ctx, &pb.WatchRequest{AfterRevision: after}, func(ev *pb.Event) error {
		got = append(got, ev)
		if len(got) == want {
			return errDone
		}
		return nil
	})
	if !errors.Is(err, errDone) {
		return got, err
	}
	return got, nil
}

func eventKey(ev *pb.Event) string {
	return fmt.Sprintf("%d/%v/%s/%s", ev.GetRevision(), ev.GetKind(), ev.GetAllocation().GetId(), ev.GetTask().GetId())
}

// TestWatch_ResumesMidRevision breaks the stream after the first two of
// the three events one Allocate(count=3) makes in one revision: the
// watch must resume with neither a gap nor a duplicate.
func TestWatch_ResumesMidRevision(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	ctx := testCtx(t)
	plain := k.client(t, fwToken)
	start, err := plain.ListAllocations(ctx, &pb.ListAllocationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int32{3, 2} {
		if _, err := plain.Allocate(ctx, &pb.AllocateRequest{Count: n, Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}}); err != nil {
			t.Fatal(err)
		}
	}
	want, err := collect(ctx, plain, start.GetRevision(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if want[0].GetRevision() != want[2].GetRevision() || want[2].GetRevision() == want[3].GetRevision() {
		t.Fatalf("expected one revision of 3 events, then another: %v", want)
	}
	for _, cutAfter := range []int{1, 2, 3, 4} {
		t.Run(fmt.Sprintf("cut after %d", cutAfter), func(t *testing.T) {
			wc := newWatchControl()
			wc.cutFirst = cutAfter
			c, err := New(Config{Endpoints: []string{k.URL}, Token: fwToken, HTTPClient: wc.client(),
				Retry: Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond}})
			if err != nil {
				t.Fatal(err)
			}
			got, err := collect(ctx, c, start.GetRevision(), 5)
			if err != nil {
				t.Fatal(err)
			}
			if wc.streams.Load() < 2 {
				t.Fatalf("the stream was never cut (%d streams)", wc.streams.Load())
			}
			for i := range want {
				if eventKey(got[i]) != eventKey(want[i]) {
					t.Fatalf("event %d = %s, want %s", i, eventKey(got[i]), eventKey(want[i]))
				}
			}
		})
	}
}

func TestWatch_CompactedIsResyncError(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	ctx := testCtx(t)
	c := k.client(t, fwToken)
	var rev int64
	for range 3 {
		r, err := c.Allocate(ctx, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}})
		if err != nil {
			t.Fatal(err)
		}
		rev = r.GetRevision()
	}
	if err := k.Store.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	err := c.Watch(ctx, &pb.WatchRequest{AfterRevision: 1}, func(*pb.Event) error { return nil })
	var re *ResyncError
	if !errors.As(err, &re) || re.Current < rev {
		t.Fatalf("watch from a compacted revision: %v, want *ResyncError with Current >= %d", err, rev)
	}
	if Code(err) != connect.CodeFailedPrecondition {
		t.Fatalf("code %v", Code(err))
	}
}

func TestWatch_FnErrorEndsIt(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	ctx := testCtx(t)
	c := k.client(t, fwToken)
	if _, err := c.Allocate(ctx, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}}); err != nil {
		t.Fatal(err)
	}
	mine := errors.New("mine")
	if err := c.Watch(ctx, &pb.WatchRequest{AfterRevision: 1}, func(*pb.Event) error { return mine }); err != mine {
		t.Fatalf("Watch = %v, want fn's error", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if err := c.Watch(cctx, &pb.WatchRequest{}, func(*pb.Event) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch after ctx ended = %v, want context.Canceled", err)
	}
}
