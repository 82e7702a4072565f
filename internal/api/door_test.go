package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
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

// doorServer is a real kernel behind NewHandler and ServeWith on
// 127.0.0.1:0, with a count of the bytes the server read from its
// connections.
type doorServer struct {
	url, addr string
	read      atomic.Int64
	conns     *api.ConnLimiter
}

type doorOptions struct {
	timeouts         api.Timeouts
	total, perClient int
	limits           map[kernel.Role]api.RateLimit
}

func serveDoor(t *testing.T, o doorOptions) *doorServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &doorServer{url: "http://" + ln.Addr().String(), addr: ln.Addr().String()}
	s.conns = api.LimitListener(&countingListener{Listener: ln, n: &s.read}, o.total, o.perClient, nil)
	kerneltest.Start(t, kerneltest.Options{
		API: func(c *api.Config) {
			c.RateLimits, c.Conns = o.limits, s.conns
		},
		Listener: s.conns,
		Timeouts: o.timeouts,
	})
	return s
}

// countingListener counts the bytes read from its connections into n.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: l.n}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingConn) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }

// h2cClient returns a client that speaks cleartext HTTP/2 only.
func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}

// rawResponse is what a raw HTTP/1.1 request got back.
type rawResponse struct {
	status int
	code   string // the Connect error code of a JSON error body
	msg    string
	closed bool // the server closed the connection after answering
}

// rawPost sends an HTTP/1.1 POST declaring contentLength bytes of body
// and then writes up to send bytes of it (in the background, until the
// server stops reading), and reads the answer.
func rawPost(t *testing.T, addr, path, token string, contentLength, send int64) rawResponse {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	hdr := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: dcos\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", path, contentLength)
	if token != "" {
		hdr += "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := io.WriteString(c, hdr+"\r\n"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for sent := int64(0); sent < send; sent += int64(len(chunk)) {
			if _, err := c.Write(chunk[:min(int64(len(chunk)), send-sent)]); err != nil {
				return // the server closed: expected
			}
		}
	})
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	var e struct{ Code, Message string }
	json.Unmarshal(body, &e)
	r := rawResponse{status: resp.StatusCode, code: e.Code, msg: e.Message}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = br.ReadByte()
	r.closed = err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
	c.Close()
	wg.Wait()
	return r
}

func TestDoor_AuthBeforeBody(t *testing.T) {
	t.Parallel()
	s := serveDoor(t, doorOptions{})
	const big = 47 << 20
	tests := []struct {
		name      string
		path      string
		token     string
		length    int64
		send      int64
		status    int
		code, msg string
	}{
		{"no token, 47 MB PolicyLoad", syscallsv1connect.KernelPolicyLoadProcedure, "", big, big, 401, "unauthenticated", "missing bearer token (Authorization: Bearer <token>)"},
		{"unknown token, 47 MB PolicyLoad", syscallsv1connect.KernelPolicyLoadProcedure, "not-a-real-token-at-all", big, big, 401, "unauthenticated", "unknown token"},
		{"no token, headers and 1 byte of body", syscallsv1connect.KernelAllocateProcedure, "", 1000, 1, 401, "unauthenticated", "missing bearer token (Authorization: Bearer <token>)"},
		{"framework, 10 MB PolicyLoad", syscallsv1connect.KernelPolicyLoadProcedure, kerneltest.FrameworkToken, 10 << 20, 10 << 20, 403, "permission_denied", "framework fw-a may not call " + syscallsv1connect.KernelPolicyLoadProcedure},
		{"agent, 5 MB Allocate", syscallsv1connect.KernelAllocateProcedure, kerneltest.AgentToken, 5 << 20, 5 << 20, 403, "permission_denied", "agent agents may not call"},
		{"operator, 5 MB Allocate", syscallsv1connect.KernelAllocateProcedure, kerneltest.OperatorToken, 5 << 20, 5 << 20, 429, "resource_exhausted", "larger than the 4194304 bytes operator ops may send"},
		{"operator, 49 MB PolicyLoad", syscallsv1connect.KernelPolicyLoadProcedure, kerneltest.OperatorToken, 49 << 20, 49 << 20, 429, "resource_exhausted", "larger than the 50331648 bytes"},
		{"framework, 5 MB Allocate", syscallsv1connect.KernelAllocateProcedure, kerneltest.FrameworkToken, 5 << 20, 5 << 20, 429, "resource_exhausted", "larger than the 4194304 bytes framework fw-a may send"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.read.Load()
			r := rawPost(t, s.addr, tt.path, tt.token, tt.length, tt.send)
			read := s.read.Load() - before
			if r.status != tt.status || r.code != tt.code || !strings.Contains(r.msg, tt.msg) {
				t.Errorf("answer %d %s %q; want %d %s %q", r.status, r.code, r.msg, tt.status, tt.code, tt.msg)
			}
			if !r.closed {
				t.Errorf("connection kept open after a refusal")
			}
			// The headers (one read) and what arrived with them; the
			// body is never read.
			if read > 64<<10 {
				t.Errorf("server read %d bytes of a %d-byte request", read, tt.length)
			}
			t.Logf("%d-byte request: server read %d bytes", tt.length, read)
		})
	}
	t.Run("gRPC over HTTP/2, no token, 47 MB PolicyLoad", func(t *testing.T) {
		before := s.read.Load()
		c := syscallsv1connect.NewKernelClient(h2cClient(), s.url, connect.WithGRPC(), connect.WithSendMaxBytes(0))
		_, err := c.PolicyLoad(context.Background(), connect.NewRequest(&pb.PolicyLoadRequest{Name: "big", Wasm: make([]byte, big)}))
		read := s.read.Load() - before
		if connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "missing bearer token (Authorization: Bearer <token>)") {
			t.Errorf("err %v, want Unauthenticated: missing bearer token", err)
		}
		// HTTP/2 flow control lets a client send one window (1 MiB per
		// stream in net/http) before the server must read.
		if read > 4<<20 {
			t.Errorf("server read %d bytes of a %d-byte request", read, big)
		}
		t.Logf("gRPC %d-byte request: server read %d bytes", big, read)
	})
	t.Run("still serving", func(t *testing.T) {
		c := kclient.New(s.url, kerneltest.OperatorToken)
		if _, err := c.ListAllocations(context.Background(), connect.NewRequest(&pb.ListAllocationsRequest{})); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("refusals counted in /metrics", func(t *testing.T) {
		resp, err := http.Get(s.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			`dcos_api_requests_refused_total{reason="unauthenticated"} 4`,
			`dcos_api_requests_refused_total{reason="permission_denied"} 2`,
			`dcos_api_requests_refused_total{reason="too_large"} 3`,
			`dcos_api_requests_refused_total{reason="rate_limited"} 0`,
			`dcos_api_connections_refused_total{cap="total"} 0`,
			"\ndcos_api_connections ",
		} {
			if !strings.Contains(string(b), want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
	})
}

// TestDoor_Protocols: a refusal in the door is answered in the protocol
// the client speaks, with the code and message the handlers gave before.
func TestDoor_Protocols(t *testing.T) {
	t.Parallel()
	s := serveDoor(t, doorOptions{})
	ctx := context.Background()
	clients := map[string]syscallsv1connect.KernelClient{}
	for name, opts := range map[string][]connect.ClientOption{
		"connect+json HTTP/1.1": {connect.WithProtoJSON()},
		"connect+proto h2c":     nil,
		"grpc h2c":              {connect.WithGRPC()},
		"grpc-web HTTP/1.1":     {connect.WithGRPCWeb()},
	} {
		hc := h2cClient()
		if strings.Contains(name, "HTTP/1.1") {
			hc = kclient.HTTPClient()
		}
		clients[name] = syscallsv1connect.NewKernelClient(hc, s.url, append([]connect.ClientOption{connect.WithInterceptors(kclient.Bearer(kerneltest.AgentToken))}, opts...)...)
		clients[name+" without token"] = syscallsv1connect.NewKernelClient(hc, s.url, opts...)
	}
	for name, c := range clients {
		t.Run(name, func(t *testing.T) {
			_, err := c.Allocate(ctx, connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1}}))
			want, msg := connect.CodePermissionDenied, "agent agents may not call "+syscallsv1connect.KernelAllocateProcedure
			if strings.HasSuffix(name, "without token") {
				want, msg = connect.CodeUnauthenticated, "missing bearer token (Authorization: Bearer <token>)"
			}
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != want || ce.Message() != msg {
				t.Errorf("unary: %v, want %v %q", err, want, msg)
			}
			// A server stream (Watch) is refused the same way.
			if want == connect.CodeUnauthenticated {
				st, err := c.Watch(ctx, connect.NewRequest(&pb.WatchRequest{AfterRevision: 1}))
				if err == nil {
					st.Receive()
					err = st.Err()
					st.Close()
				}
				if !errors.As(err, &ce) || ce.Code() != want || ce.Message() != msg {
					t.Errorf("watch: %v, want %v %q", err, want, msg)
				}
			}
		})
	}
}

func TestDoor_RequestLimits(t *testing.T) {
	t.Parallel()
	s := serveDoor(t, doorOptions{})
	ctx := context.Background()
	// Without a declared length (gRPC, chunked), the body is cut at the
	// limit while it is read.
	for _, tt := range []struct {
		name  string
		token string
		call  func(c syscallsv1connect.KernelClient) error
		want  connect.Code
	}{
		{"framework Allocate of 5 MiB", kerneltest.FrameworkToken, func(c syscallsv1connect.KernelClient) error {
			_, err := c.Allocate(ctx, connect.NewRequest(&pb.AllocateRequest{Role: strings.Repeat("x", 5<<20), Resources: &pb.Resources{Cpus: 1, MemBytes: 1}}))
			return err
		}, connect.CodeResourceExhausted},
		{"operator PolicyLoad of 10 MiB passes the door", kerneltest.OperatorToken, func(c syscallsv1connect.KernelClient) error {
			_, err := c.PolicyLoad(ctx, connect.NewRequest(&pb.PolicyLoadRequest{Name: "junk", Wasm: make([]byte, 10<<20)}))
			return err
		}, connect.CodeFailedPrecondition}, // this kernel has no WebAssembly engine
		{"operator PolicyTest of 49 MiB", kerneltest.OperatorToken, func(c syscallsv1connect.KernelClient) error {
			_, err := c.PolicyTest(ctx, connect.NewRequest(&pb.PolicyTestRequest{Wasm: make([]byte, 49<<20)}))
			return err
		}, connect.CodeResourceExhausted},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := syscallsv1connect.NewKernelClient(h2cClient(), s.url, connect.WithGRPC(), connect.WithInterceptors(kclient.Bearer(tt.token)))
			if err := tt.call(c); connect.CodeOf(err) != tt.want {
				t.Errorf("%v, want %v", err, tt.want)
			}
		})
	}
}

// TestConnLimiter holds connections from several loopback addresses: the
// one beyond a cap is closed at once, and a closed one frees its place.
func TestConnLimiter(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := api.LimitListener(ln, 5, 3, nil)
	defer l.Close()
	accepted := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	// dial connects from 127.0.0.from and reports whether the server
	// kept the connection (no EOF within 300ms).
	dial := func(from byte) (net.Conn, bool) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, from)}}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err = c.Read(make([]byte, 1))
		var ne net.Error
		return c, errors.As(err, &ne) && ne.Timeout()
	}
	var held []net.Conn
	for i, tt := range []struct {
		from byte
		kept bool
	}{
		{1, true}, {1, true}, {1, true}, {1, false}, // per client
		{2, true}, {2, true}, {3, false}, // total
	} {
		c, kept := dial(tt.from)
		if kept != tt.kept {
			t.Fatalf("connection %d from 127.0.0.%d: kept %v, want %v (open %d)", i, tt.from, kept, tt.kept, l.Open())
		}
		if kept {
			held = append(held, c)
		} else {
			c.Close()
		}
	}
	if l.Open() != 5 || l.Refused() != 2 {
		t.Fatalf("open %d, refused %d; want 5, 2", l.Open(), l.Refused())
	}
	// The server closes one of 127.0.0.1's: it may connect again.
	(<-accepted).Close()
	if c, kept := dial(3); !kept {
		t.Fatal("a place freed by a close was not given again")
	} else {
		c.Close()
	}
	for _, c := range held {
		c.Close()
	}
}

// TestServer_Timeouts: a connection that sends its headers or body slowly
// is closed at the read timeout, an idle one at the idle timeout, while
// Watch streams over HTTP/1.1 and HTTP/2 outlive the read and write
// timeouts and still deliver events.
func TestServer_Timeouts(t *testing.T) {
	t.Parallel()
	to := api.Timeouts{ReadHeader: 300 * time.Millisecond, Read: 500 * time.Millisecond, Write: 500 * time.Millisecond, Idle: time.Second}
	s := serveDoor(t, doorOptions{timeouts: to})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	op := kclient.New(s.url, kerneltest.OperatorToken)
	first, err := op.Allocate(ctx, connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}}))
	if err != nil {
		t.Fatal(err)
	}
	rev := first.Msg.GetRevision()
	watches := map[string]*connect.ServerStreamForClient[pb.Event]{}
	for name, c := range map[string]syscallsv1connect.KernelClient{
		"connect HTTP/1.1": op,
		"grpc h2c":         syscallsv1connect.NewKernelClient(h2cClient(), s.url, connect.WithGRPC(), connect.WithInterceptors(kclient.Bearer(kerneltest.OperatorToken))),
		"connect h2c":      syscallsv1connect.NewKernelClient(h2cClient(), s.url, connect.WithInterceptors(kclient.Bearer(kerneltest.OperatorToken))),
	} {
		st, err := c.Watch(ctx, connect.NewRequest(&pb.WatchRequest{AfterRevision: rev}))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		watches[name] = st
	}

	// closedWithin reports how long the server took to close c (its
	// reads return EOF or a reset), or fails after limit.
	closedWithin := func(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
		start := time.Now()
		c.SetReadDeadline(start.Add(limit))
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %v", limit)
		}
		return time.Since(start)
	}
	dial := func(t *testing.T, req string) net.Conn {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		io.WriteString(c, req)
		return c
	}
	t.Run("slow headers", func(t *testing.T) {
		c := dial(t, "POST "+syscallsv1connect.KernelAllocateProcedure+" HTTP/1.1\r\nHost: dcos\r\n")
		t.Logf("closed after %v", closedWithin(t, c, 5*time.Second))
	})
	t.Run("slow body", func(t *testing.T) {
		c := dial(t, "POST "+syscallsv1connect.KernelAllocateProcedure+" HTTP/1.1\r\nHost: dcos\r\nContent-Type: application/json\r\nAuthorization: Bearer "+kerneltest.OperatorToken+"\r\nContent-Length: 100\r\n\r\n{")
		t.Logf("closed after %v", closedWithin(t, c, 5*time.Second))
	})
	t.Run("idle", func(t *testing.T) {
		c := dial(t, "GET /healthz HTTP/1.1\r\nHost: dcos\r\n\r\n")
		d := closedWithin(t, c, 5*time.Second)
		if d < to.Idle/2 {
			t.Errorf("idle connection closed after %v, before the idle timeout %v", d, to.Idle)
		}
		t.Logf("closed after %v", d)
	})
	// Past both timeouts (and the idle one): an event still reaches
	// every stream.
	time.Sleep(2 * to.Idle)
	second, err := op.Allocate(ctx, connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}}))
	if err != nil {
		t.Fatal(err)
	}
	id := second.Msg.GetAllocations()[0].GetId()
	for name, st := range watches {
		t.Run("watch over "+name, func(t *testing.T) {
			for st.Receive() {
				if st.Msg().GetAllocation().GetId() == id {
					return
				}
			}
			t.Fatalf("stream ended before the event of %s: %v", id, st.Err())
		})
	}
}

func TestDoor_RateLimit(t *testing.T) {
	t.Parallel()
	s := serveDoor(t, doorOptions{limits: map[kernel.Role]api.RateLimit{kernel.RoleFramework: {Rate: 4, Burst: 3}}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list := func(c syscallsv1connect.KernelClient) error {
		_, err := c.ListAllocations(ctx, connect.NewRequest(&pb.ListAllocationsRequest{}))
		return err
	}
	fw := kclient.New(s.url, kerneltest.FrameworkToken)
	fwGRPC := syscallsv1connect.NewKernelClient(h2cClient(), s.url, connect.WithGRPC(), connect.WithInterceptors(kclient.Bearer(kerneltest.FrameworkToken)))
	// A Watch takes one call when it opens, none per event.
	st, err := fw.Watch(ctx, connect.NewRequest(&pb.WatchRequest{AfterRevision: 1}))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range 2 {
		if err := list(fw); err != nil {
			t.Fatalf("call %d within the burst: %v", i+2, err)
		}
	}
	var ce *connect.Error
	for _, c := range []syscallsv1connect.KernelClient{fw, fwGRPC} {
		err := list(c)
		if !errors.As(err, &ce) || ce.Code() != connect.CodeResourceExhausted ||
			!strings.HasPrefix(ce.Message(), "rate limit: framework fw-a exceeded 4 calls/s (burst 3); retry after ") {
			t.Fatalf("call beyond the burst: %v", err)
		}
	}
	// Others are not limited by fw-a's calls: the operator not at all.
	op := kclient.New(s.url, kerneltest.OperatorToken)
	for range 20 {
		if err := list(op); err != nil {
			t.Fatal(err)
		}
	}
	// Recovery: after the advertised wait, a call passes; its event
	// reaches the stream opened before.
	retry, err := time.ParseDuration(ce.Message()[strings.LastIndex(ce.Message(), " ")+1:])
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(retry)
	a, err := fw.Allocate(ctx, connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}}))
	if err != nil {
		t.Fatalf("after %v: %v", retry, err)
	}
	for st.Receive() && st.Msg().GetAllocation().GetId() != a.Msg.GetAllocations()[0].GetId() {
	}
	if st.Err() != nil {
		t.Fatal(st.Err())
	}
}

func TestParseRateLimit(t *testing.T) {
	for in, want := range map[string]api.RateLimit{
		"framework=200,burst=400": {Rate: 200, Burst: 400},
		"agent=0.5":               {Rate: 0.5, Burst: 1},
		"operator=unlimited":      {},
		"framework=3":             {Rate: 3, Burst: 6},
	} {
		if _, got, err := api.ParseRateLimit(in); err != nil || got != want {
			t.Errorf("ParseRateLimit(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "framework", "root=1", "framework=0", "framework=Inf", "framework=1,burst=0", "framework=1,bust=2", "framework=1,burst=2,x", "framework:init=1"} {
		if _, _, err := api.ParseRateLimit(bad); err == nil {
			t.Errorf("ParseRateLimit(%q): want an error", bad)
		}
	}
	for in, want := range map[string]kernel.Principal{
		"framework:init=unlimited": {Name: "init", Role: kernel.RoleFramework},
		"agent=5":                  {Role: kernel.RoleAgent},
	} {
		if got, _, err := api.ParsePrincipalRateLimit(in); err != nil || got != want {
			t.Errorf("ParsePrincipalRateLimit(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"framework:=1", "root:x=1", "framework:init"} {
		if _, _, err := api.ParsePrincipalRateLimit(bad); err == nil {
			t.Errorf("ParsePrincipalRateLimit(%q): want an error", bad)
		}
	}
}
