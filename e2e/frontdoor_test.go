package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// TestFrontDoor_HostileClients attacks a real `dcosd kernel` as
// unauthenticated clients: 3,000 slow connections from 127.0.0.2 that
// send their headers and 1 byte of a 1,000-byte body and are held open
// (the server answers each 401 and closes it half a second later, so how
// many are open at once depends on how fast the machine dials), 1,200
// from 127.0.0.3 that send only part of their headers (held by the
// server until its 10 s header timeout: more than the per-client cap of
// 1,000 whatever the machine's speed, so the last are closed at accept
// and the refusal is logged), then 16 concurrent 47 MB PolicyLoad
// bodies. The kernel keeps serving authenticated calls from 127.0.0.1,
// each big body is answered 401, RSS stays within 100 MB of its idle
// figure, and the process is alive.
func TestFrontDoor_HostileClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opTok := newToken()
	tokens := e.writeTokens(e.path("tokens.json"), tokenEntry{Token: opTok, Name: "ops", Role: "operator"})
	p := e.startKernel(tokens, opTok)
	pid := p.cmd.Process.Pid
	host := strings.TrimPrefix(e.url, "https://")
	op := e.op()
	call := func(what string) {
		t.Helper()
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := op.Allocate(c, connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.001, MemBytes: mi}})); err != nil {
			t.Fatalf("authenticated Allocate %s: %v", what, err)
		}
		if _, err := op.ListAllocations(c, connect.NewRequest(&pb.ListAllocationsRequest{})); err != nil {
			t.Fatalf("authenticated ListAllocations %s: %v", what, err)
		}
	}
	for range 20 {
		call("before the attack")
	}
	idle := vmRSS(pid)
	var peak atomic.Int64
	peak.Store(idle)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if v := vmRSS(pid); v > peak.Load() {
				peak.Store(v)
			}
		}
	}()

	conns := append(holdSlowConns(t, host, 3000, "127.0.0.2", true), holdSlowConns(t, host, 1200, "127.0.0.3", false)...)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	call("with 4,200 slow connections")
	afterConns := peak.Load()

	var wg sync.WaitGroup
	statuses := make([]int, 16)
	for i := range statuses {
		wg.Go(func() { statuses[i] = postUnauthenticated(host, 47<<20) })
	}
	call("during 16 unauthenticated 47 MB bodies")
	wg.Wait()
	call("after 16 unauthenticated 47 MB bodies")
	close(stop)
	<-sampled
	if !p.running() {
		t.Fatalf("dcosd exited: %v; stderr:\n%s", p.err, tail(p.stderr.String(), 50))
	}
	for i, s := range statuses {
		if s != http.StatusUnauthorized {
			t.Errorf("47 MB body %d: status %d, want 401", i, s)
		}
	}
	t.Logf("VmRSS idle %d MiB, peak %d MiB with the slow connections, %d MiB with the bodies too", idle>>20, afterConns>>20, peak.Load()>>20)
	// The bound is for dcosd as shipped. Built with -race (when
	// the tests run with it), every goroutine a connection starts costs
	// several times more (shadow memory, kept once touched): 3,300
	// connections took 85–125 MiB there against 10–20 MiB without.
	// Over TLS each held connection also keeps a tls.Conn and what its
	// handshake allocated, all instrumented under -race: as shipped the
	// attack cost 39–48 MiB (bound 100), with -race 255–307 MiB once the
	// handshakes moved off the connections' goroutines (395 before).
	bound := int64(100 << 20)
	if raceEnabled {
		bound = 400 << 20
	}
	if grow := peak.Load() - idle; grow > bound {
		t.Errorf("RSS grew by %d MiB under unauthenticated load, want ≤ %d MiB", grow>>20, bound>>20)
	}
	if !strings.Contains(p.stderr.String(), "api connection caps") || !strings.Contains(p.stderr.String(), "connection refused: cap reached") {
		t.Errorf("dcosd logged neither its caps nor a refusal; stderr:\n%s", tail(p.stderr.String(), 30))
	}
}

// holdSlowConns opens n connections to host from source: with body,
// each sends its headers and 1 byte of a 1,000-byte body; without, part
// of its headers. They are left open.
func holdSlowConns(t testing.TB, host string, n int, source string, body bool) []net.Conn {
	t.Helper()
	req := "POST " + syscallsv1connect.KernelAllocateProcedure + " HTTP/1.1\r\nHost: dcos\r\n"
	if body {
		req += "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
	}
	conns := make([]net.Conn, n)
	// In parallel, as an attacker would, and in two rounds: first every
	// TCP connection, then every TLS handshake and request. The caps count
	// connections at accept, so all n are counted within the moment the
	// dials take; handshaking each right after its dial (slow under -race
	// on a loaded machine) let the first connections reach the server's
	// header timeout and close before the last were made, and the caps
	// were then never reached (CI run of session 12).
	var mu sync.Mutex
	var dialErr error
	parallel := func(do func(i int)) {
		var wg sync.WaitGroup
		next := make(chan int)
		for range 64 {
			wg.Go(func() {
				for i := range next {
					do(i)
				}
			})
		}
		for i := range n {
			next <- i
		}
		close(next)
		wg.Wait()
	}
	parallel(func(i int) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", host)
		if err != nil {
			mu.Lock()
			dialErr = fmt.Errorf("connection %d: %w", i, err)
			mu.Unlock()
			return
		}
		conns[i] = c
	})
	parallel(func(i int) {
		c := conns[i]
		if c == nil {
			return
		}
		// The kernel speaks TLS: the attacker completes the handshake (a
		// connection refused at accept fails it; it is kept, closed).
		tc := tlsClient(c)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if tc.Handshake() != nil {
			return
		}
		tc.SetDeadline(time.Time{})
		tc.Write([]byte(req))
		conns[i] = tc
	})
	out := conns[:0]
	for _, c := range conns {
		if c != nil {
			out = append(out, c)
		}
	}
	if dialErr != nil {
		for _, c := range out {
			c.Close()
		}
		t.Fatal(dialErr)
	}
	return out
}

// tlsClient is a TLS client of the tests' kernels on c, speaking
// HTTP/1.1.
func tlsClient(c net.Conn) *tls.Conn {
	conf := kernelTLS.Clone()
	conf.ServerName = "127.0.0.1"
	return tls.Client(c, conf)
}

// postUnauthenticated sends an unauthenticated PolicyLoad with a body of
// size bytes over a raw connection and returns the answer's status (0 if
// none came).
func postUnauthenticated(host string, size int) int {
	raw, err := net.Dial("tcp", host)
	if err != nil {
		return 0
	}
	defer raw.Close()
	c := tlsClient(raw)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: dcos\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", syscallsv1connect.KernelPolicyLoadProcedure, size)
	go func() {
		chunk := bytes.Repeat([]byte("A"), 1<<20)
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// vmRSS returns pid's resident set size in bytes, 0 when it cannot be
// read (the process may be gone while a sampler polls).
func vmRSS(pid int) int64 {
	n, _ := statusBytes(pid, "VmRSS")
	return n
}

// holderEnv names the environment variable that turns the test binary
// into a connection holder (see runHolder).
const holderEnv = "DCOS_E2E_HOLD_CONNECTIONS"

// runHolder holds connections to a kernel, as described by spec
// "HOST:PORT N SRC1,SRC2,... KIND": N connections from the source
// addresses in turn, until stdin closes. KIND "body" sends a request's
// headers and 1 byte of a 1,000-byte body (the attack; answered
// 401 at once); "headers" sends part of a request's headers (held by the
// server until its header timeout) and dials again when the server closed
// it after holding it (not when it was refused at accept). It prints
// "holding" once all N are open the first time. It runs in a process of
// its own, so that the attack's file descriptors are not the test's (the
// hard limit of open files is 20,000 here).
func runHolder(spec string) int {
	f := strings.Fields(spec)
	if len(f) != 4 {
		fmt.Fprintln(os.Stderr, "holder: bad spec", spec)
		return 2
	}
	host, sources, kind := f[0], strings.Split(f[2], ","), f[3]
	n, _ := strconv.Atoi(f[1])
	req := "POST " + syscallsv1connect.KernelAllocateProcedure + " HTTP/1.1\r\nHost: dcos\r\n"
	if kind == "body" {
		req += "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
	}
	var opened sync.WaitGroup
	opened.Add(n)
	var held []net.Conn
	var mu sync.Mutex
	for i := range n {
		go func() {
			first := true
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(sources[i%len(sources)])}, Timeout: 10 * time.Second}
			for {
				c, err := d.Dial("tcp", host)
				if err == nil {
					// TLS first (an attacker need not verify the
					// kernel); a connection refused at accept fails it.
					tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
					tc.SetDeadline(time.Now().Add(10 * time.Second))
					if tc.Handshake() == nil {
						tc.SetDeadline(time.Time{})
						c = tc
					}
					io.WriteString(c, req)
				}
				if first {
					first = false
					opened.Done()
				}
				if err != nil {
					time.Sleep(time.Second)
					continue
				}
				if kind == "body" {
					mu.Lock()
					held = append(held, c) // held open, never read
					mu.Unlock()
					return
				}
				start := time.Now()
				io.Copy(io.Discard, c)
				c.Close()
				if time.Since(start) < time.Second {
					return // refused at accept: the socket is kept, closed
				}
			}
		}()
	}
	opened.Wait()
	fmt.Println("holding")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// BenchmarkHostileConnections measures the authenticated Allocate round
// trip (as BenchmarkAllocateRoundTrip) on dcosd dev, idle and then while
// 20,000 unauthenticated connections are held against it, from 4 helper
// processes and 20 loopback addresses, 1,000 from each (so that the total
// cap is what refuses: dcosd holds at most 10,000 and closes the rest at
// accept). Two kinds of attacker (see runHolder): "body" sends headers and
// 1 byte of body (the issue's), "headers" part of its headers. It reports
// both medians, their ratio (goal ≤ 2) and the growth of dcosd's RSS.
//
//	go test ./e2e -run '^$' -bench HostileConnections -benchtime 1000x
func BenchmarkHostileConnections(b *testing.B) {
	for _, kind := range []string{"body", "headers"} {
		b.Run(kind, func(b *testing.B) { hostileConnections(b, kind) })
	}
}

func hostileConnections(b *testing.B, kind string) {
	e := newEnv(b)
	p := e.startDev("--resources", "cpus=100000,mem=1000Ti")
	c := e.op()
	host := strings.TrimPrefix(e.url, "https://")
	p50 := func() time.Duration {
		req := connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.001, MemBytes: mi}})
		durs := make([]time.Duration, 0, b.N)
		for range b.N {
			start := time.Now()
			_, err := c.Allocate(context.Background(), req)
			durs = append(durs, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
		}
		slices.Sort(durs)
		return percentile(durs, 50)
	}
	p50() // warm up
	idle, rssIdle := p50(), vmRSS(p.cmd.Process.Pid)
	const helpers, perHelper, addrsPerHelper = 4, 5000, 5
	for h := range helpers {
		var srcs []string
		for a := range addrsPerHelper {
			srcs = append(srcs, fmt.Sprintf("127.0.0.%d", 10+h*addrsPerHelper+a))
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), holderEnv+"="+host+" "+strconv.Itoa(perHelper)+" "+strings.Join(srcs, ",")+" "+kind)
		stdin, _ := cmd.StdinPipe()
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
		if l, err := bufio.NewReader(out).ReadString('\n'); err != nil || l != "holding\n" {
			b.Fatalf("holder %d: %q %v", h, l, err)
		}
	}
	b.ResetTimer()
	attacked := p50()
	b.StopTimer()
	rss := vmRSS(p.cmd.Process.Pid)
	if !p.running() {
		b.Fatalf("dcosd exited: %v", p.err)
	}
	b.ReportMetric(float64(idle.Nanoseconds()), "idle-p50-ns")
	b.ReportMetric(float64(attacked.Nanoseconds()), "attacked-p50-ns")
	b.ReportMetric(float64(attacked)/float64(idle), "ratio")
	b.ReportMetric(float64(rss-rssIdle)/(1<<20), "rss-growth-MiB")
}
