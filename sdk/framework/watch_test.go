package framework

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/kernel"
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

// TestWatch_FellBehindResumes makes fn so slow that the kernel ends the
// stream (its buffer of 4 revisions' events overflows once the
// connection's buffers are full): the watch resumes, and fn still sees
// every event once, in order.
func TestWatch_FellBehindResumes(t *testing.T) {
	t.Parallel()
	k := startKernelWith(t, map[kernel.Role]api.RateLimit{kernel.RoleFramework: {}}, func(c *kernel.Config) { c.WatchBuffer = 4 })
	ctx := testCtx(t)
	var logs syncBuffer
	// A small, fixed receive buffer (it turns autotuning off): loopback's
	// autotuned buffers grow to net.ipv4.tcp_rmem's maximum (32 MiB on
	// some machines) and could absorb all that is sent.
	small := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetReadBuffer(64 << 10)
		}
		return conn, err
	}}}
	c, err := New(Config{Endpoints: []string{k.URL}, Token: fwToken, HTTPClient: small, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	start, err := c.ListAllocations(ctx, &pb.ListAllocationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	const revisions, per = 12, 200
	release := make(chan struct{})
	var got []*pb.Event
	errDone := errors.New("done")
	watched := make(chan error, 1)
	go func() {
		watched <- c.Watch(ctx, &pb.WatchRequest{AfterRevision: start.GetRevision()}, func(ev *pb.Event) error {
			if len(got) == 0 {
				<-release // stall while the kernel queues more than it may
			}
			got = append(got, ev)
			if len(got) == revisions*per {
				return errDone
			}
			return nil
		})
	}()
	for range revisions {
		// ~4 KiB of random labels per event, ~10 MiB in all: more than
		// the connection holds (the client's fixed 64 KiB receive
		// buffer, the kernel's send buffer of at most
		// net.ipv4.tcp_wmem's 4 MiB), so the kernel's queue of 4 must
		// overflow.
		padding := map[string]string{}
		for i := range 16 {
			// Random, so that gzip (the kernel compresses messages
			// over 4 KiB) cannot shrink it.
			padding[fmt.Sprintf("padding%d", i)] = rand.Text() + rand.Text() + rand.Text() + rand.Text() + rand.Text() + rand.Text() + rand.Text() + rand.Text() + rand.Text()[:26]
		}
		if _, err := c.Allocate(ctx, &pb.AllocateRequest{Count: per, Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20},
			Labels: padding}); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	if err := <-watched; !errors.Is(err, errDone) {
		t.Fatalf("Watch: %v", err)
	}
	if !strings.Contains(logs.String(), "fell behind") {
		t.Fatalf("the watch never fell behind; logs:\n%s", logs.String())
	}
	seen := map[string]bool{}
	for i, ev := range got {
		if seen[eventKey(ev)] || (i > 0 && ev.GetRevision() < got[i-1].GetRevision()) {
			t.Fatalf("event %d (%s) repeated or out of order", i, eventKey(ev))
		}
		seen[eventKey(ev)] = true
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
