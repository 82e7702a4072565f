package api_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// serveReal runs a kernel on an embedded etcd behind Serve on
// 127.0.0.1:0 (the production server: HTTP/1.1 and h2c), with a watch
// buffer (0: the kernel's default) and a Watch write timeout. lc, when
// set, makes the listener (e.g. with small socket buffers).
func serveReal(t *testing.T, watchBuffer int, writeTimeout time.Duration, lc *net.ListenConfig) (url string, k *kernel.Kernel) {
	t.Helper()
	if lc == nil {
		lc = &net.ListenConfig{}
	}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := kerneltest.Start(t, kerneltest.Options{
		Kernel: func(c *kernel.Config) {
			c.WatchBuffer = watchBuffer
			c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		},
		API:      func(c *api.Config) { c.WatchWriteTimeout = writeTimeout },
		Listener: ln,
	})
	if _, err := srv.Kernel.RegisterAgent(context.Background(), kernel.Principal{Name: "agent-test", Role: kernel.RoleAgent}, &pb.RegisterAgentRequest{Hostname: "h", Resources: &pb.Resources{Cpus: 10_000, MemBytes: 1 << 40}}); err != nil {
		t.Fatal(err)
	}
	return srv.URL, srv.Kernel
}

// goroutines counts this process's goroutines after a GC (which lets the
// runtime's cleanup goroutines go).
func goroutines() int {
	runtime.GC()
	return runtime.NumGoroutine()
}

// openSockets counts this process's file descriptors that are sockets.
func openSockets(t *testing.T) int {
	t.Helper()
	des, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, de := range des {
		if l, err := os.Readlink("/proc/self/fd/" + de.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// settle waits until f() is at most limit, and returns its last value.
func settle(f func() int, limit int, within time.Duration) int {
	deadline := time.Now().Add(within)
	for {
		n := f()
		if n <= limit || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWatch_MassCancel: 500 Watch streams opened and then cancelled at
// the same moment, 20 times in a row (Connect over HTTP/1.1 and gRPC over
// h2c in turn): after each round a fresh watcher receives the next event
// promptly, and goroutines and sockets return to their baseline.
func TestWatch_MassCancel(t *testing.T) {
	url, k := serveReal(t, 0, api.WatchWriteTimeout, nil)
	op := kerneltest.OperatorToken
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	hcs := []*http.Client{kclient.HTTPClient(), {Transport: &http.Transport{Protocols: &p}}}
	clients := []syscallsv1connect.KernelClient{
		syscallsv1connect.NewKernelClient(hcs[0], url, connect.WithInterceptors(kclient.Bearer(op))),
		syscallsv1connect.NewKernelClient(hcs[1], url, connect.WithGRPC(), connect.WithInterceptors(kclient.Bearer(op))),
	}
	allocate := func() {
		if _, err := clients[0].Allocate(context.Background(), connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.01, MemBytes: 1 << 20}})); err != nil {
			t.Fatal(err)
		}
	}
	// freshWatch watches from the current revision and returns how long
	// the next Allocate's grant took to arrive.
	freshWatch := func(c syscallsv1connect.KernelClient) time.Duration {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := c.Watch(ctx, connect.NewRequest(&pb.WatchRequest{AfterRevision: k.Revision(),
			Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED}}))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		t0 := time.Now()
		allocate()
		if !s.Receive() {
			t.Fatalf("fresh watcher got nothing: %v", s.Err())
		}
		return time.Since(t0)
	}
	idleConns := func() {
		for _, c := range hcs {
			c.CloseIdleConnections()
		}
	}
	// Baseline after one watch of each kind has come and gone.
	for _, c := range clients {
		freshWatch(c)
	}
	idleConns()
	time.Sleep(200 * time.Millisecond)
	baseG, baseS := goroutines(), openSockets(t)
	const streams, rounds = 500, 20
	var lags []time.Duration
	for round := range rounds {
		c := clients[round%2]
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var errMu sync.Mutex
		var openErrs []error
		for range streams {
			wg.Go(func() {
				// A stream that fails to open (on a loaded machine a dial
				// may time out) is opened again: the test is about
				// cancelling open streams.
				for ctx.Err() == nil {
					s, err := c.Watch(ctx, connect.NewRequest(&pb.WatchRequest{}))
					if err == nil {
						for s.Receive() {
						}
						err = s.Err()
						s.Close()
					}
					if ctx.Err() != nil {
						return
					}
					errMu.Lock()
					openErrs = append(openErrs, err)
					errMu.Unlock()
					time.Sleep(50 * time.Millisecond)
				}
			})
		}
		for i := 0; k.WatchStats().Subscribers < streams; i++ {
			if i > 6000 {
				errMu.Lock()
				t.Fatalf("round %d: %d of %d watches subscribed after 60s; %d stream errors: %v", round, k.WatchStats().Subscribers, streams, len(openErrs), openErrs[:min(3, len(openErrs))])
			}
			time.Sleep(10 * time.Millisecond)
		}
		errMu.Lock()
		if len(openErrs) > 0 {
			t.Logf("round %d: %d streams failed to open and were opened again (first: %v)", round, len(openErrs), openErrs[0])
		}
		errMu.Unlock()
		cancel()
		wg.Wait()
		d := freshWatch(clients[(round+1)%2])
		lags = append(lags, d)
		if d > 5*time.Second {
			t.Fatalf("round %d: a fresh watcher took %v to see an event", round, d)
		}
	}
	slices.Sort(lags)
	t.Logf("%d rounds of %d streams cancelled together: a fresh watcher saw the next event (Allocate call included) in %v median, %v worst", rounds, streams, lags[len(lags)/2], lags[len(lags)-1])
	if n := settle(func() int { return k.WatchStats().Subscribers }, 0, 10*time.Second); n != 0 {
		t.Errorf("%d watch subscribers left", n)
	}
	g := settle(func() int { idleConns(); return goroutines() }, baseG+10, 30*time.Second)
	sk := settle(func() int { idleConns(); return openSockets(t) }, baseS+4, 30*time.Second)
	t.Logf("goroutines %d → %d, sockets %d → %d", baseG, g, baseS, sk)
	if g > baseG+10 {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Errorf("%d goroutines after the rounds, %d before:\n%s", g, baseG, buf[:n])
	}
	if sk > baseS+4 {
		t.Errorf("%d sockets open after the rounds, %d before", sk, baseS)
	}
}

// smallBuffers makes sockets with small kernel buffers, so that a client
// that does not read blocks the server's writes after a few KiB.
func smallBuffers(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096)
		if serr == nil {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// TestWatch_SlowReader: a client that stops reading does not make the
// kernel buffer without bound. Its watch is ended as fallen behind once
// its queue is full (at most WatchBuffer events held meanwhile); when it
// reads again it receives whole revisions and then FailedPrecondition
// with a ResyncInfo detail and the revision to resume after. A client
// that never reads again has its stream reset by the write deadline, and
// the handler ends.
func TestWatch_SlowReader(t *testing.T) {
	t.Run("reads again", func(t *testing.T) {
		c, k, _ := slowReaderServer(t, 30*time.Second)
		s, cancel := stuck(t, c, k, true)
		defer cancel()
		defer s.Close()
		var last int64
		n := 0
		for s.Receive() {
			if r := s.Msg().GetRevision(); r < last {
				t.Fatalf("revision %d after %d", r, last)
			}
			last = s.Msg().GetRevision()
			n++
		}
		var ce *connect.Error
		if !errors.As(s.Err(), &ce) || ce.Code() != connect.CodeFailedPrecondition || !strings.Contains(ce.Message(), "watch: fell behind: ") {
			t.Fatalf("after %d events: %v, want FailedPrecondition fell behind", n, s.Err())
		}
		if want := "resume after revision " + strconv.FormatInt(last, 10); !strings.HasSuffix(ce.Message(), want) {
			t.Errorf("message %q, want it to end %q (the last revision received)", ce.Message(), want)
		}
		if len(ce.Details()) != 1 {
			t.Fatalf("details %v, want one ResyncInfo", ce.Details())
		}
		v, err := ce.Details()[0].Value()
		if info, ok := v.(*pb.ResyncInfo); err != nil || !ok || info.GetCurrentRevision() < last || info.GetCompactRevision() != 0 {
			t.Fatalf("resync detail %v %v", v, err)
		}
		t.Logf("received %d events, then: %s", n, ce.Message())
	})

	t.Run("never reads", func(t *testing.T) {
		c, k, hc := slowReaderServer(t, 2*time.Second)
		count := func() int { hc.CloseIdleConnections(); return goroutines() }
		if _, err := c.ListAgents(context.Background(), connect.NewRequest(&pb.ListAgentsRequest{})); err != nil {
			t.Fatal(err)
		}
		baseG := settle(count, 0, time.Second)
		s, cancel := stuck(t, c, k, false)
		defer cancel()
		defer s.Close()
		// The handler is blocked writing (or its watch fell behind); the
		// write deadline resets the stream and the handler's goroutines
		// end while the client still holds the stream unread (its
		// connection's two goroutines stay, on the client's side).
		if g := settle(count, baseG+3, 15*time.Second); g > baseG+3 {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines with the unread stream held, %d before it:\n%s", g, baseG, buf[:runtime.Stack(buf, true)])
		}
		if st := k.WatchStats(); st.Subscribers != 0 || st.Buffered != 0 {
			t.Errorf("watch stats %+v, want no subscriber and nothing buffered", st)
		}
	})
}

const slowBuffer = 64

// slowReaderServer serves a kernel with a 64-event watch buffer and the
// given write timeout, on sockets with small buffers, and returns a
// client whose sockets have small buffers too.
func slowReaderServer(t *testing.T, writeTimeout time.Duration) (syscallsv1connect.KernelClient, *kernel.Kernel, *http.Client) {
	url, k := serveReal(t, slowBuffer, writeTimeout, &net.ListenConfig{Control: smallBuffers})
	hc := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{Control: smallBuffers}).DialContext}}
	t.Cleanup(hc.CloseIdleConnections)
	return syscallsv1connect.NewKernelClient(hc, url, connect.WithInterceptors(kclient.Bearer(kerneltest.OperatorToken))), k, hc
}

// stuck opens a Watch it does not read and launches tasks with 16 KiB
// environments (big events) from several goroutines until the watch has
// fallen behind (fell) or, else, until its handler is gone. It checks
// that the kernel never buffered more than the watch buffer for it.
func stuck(t *testing.T, c syscallsv1connect.KernelClient, k *kernel.Kernel, fell bool) (*connect.ServerStreamForClient[pb.Event], context.CancelFunc) {
	t.Helper()
	ctx := context.Background()
	res, err := c.Allocate(ctx, connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1000, MemBytes: 1 << 30}}))
	if err != nil {
		t.Fatal(err)
	}
	allocID := res.Msg.GetAllocations()[0].GetId()
	env := map[string]string{"BIG": strings.Repeat("x", 16<<10)}
	wctx, cancel := context.WithCancel(ctx)
	s, err := c.Watch(wctx, connect.NewRequest(&pb.WatchRequest{AfterRevision: k.Revision()}))
	if err != nil {
		t.Fatal(err)
	}
	for k.WatchStats().Subscribers == 0 {
		time.Sleep(time.Millisecond)
	}
	done := func() bool {
		st := k.WatchStats()
		return st.FellBehind > 0 || !fell && st.Subscribers == 0
	}
	var mu sync.Mutex
	maxBuffered, launched := 0, 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := 0; i < 1000 && !done(); i++ {
				if _, err := c.Launch(ctx, connect.NewRequest(&pb.LaunchRequest{AllocationId: allocID, Command: "true", Env: env,
					Resources: &pb.Resources{Cpus: 0.001, MemBytes: 1}})); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				maxBuffered, launched = max(maxBuffered, k.WatchStats().Buffered), launched+1
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if !done() {
		t.Fatalf("a watcher that does not read neither fell behind nor ended after %d events", launched)
	}
	if maxBuffered > slowBuffer {
		t.Errorf("the kernel buffered %d events for a watcher with a %d-event buffer", maxBuffered, slowBuffer)
	}
	t.Logf("%d events of 16 KiB produced; at most %d buffered; %+v", launched, maxBuffered, k.WatchStats())
	return s, cancel
}
