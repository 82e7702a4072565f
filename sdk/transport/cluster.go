package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Headers of a standby kernel's answer to a syscall (every one but
// ClusterInfo): StandbyHeader is set to "1", and LeaderHeader to the
// leading kernel's URL when the standby knows it. The answer itself is the
// Unavailable error "kernel … is a standby; the leader is at …".
const (
	StandbyHeader = "Dcos-Standby"
	LeaderHeader  = "Dcos-Leader"
)

// DefaultFailoverWait is how long a client of a Cluster keeps trying to
// reach a leading kernel for one call whose context has no deadline,
// while none answers (an election takes about a second after a crash, a
// lease TTL after a partition; docs/operations.md).
const DefaultFailoverWait = 30 * time.Second

// Cluster is the kernels of one dcos cluster, as a client reaches them: a
// list of endpoints (any may lead) and what its clients learnt of which
// one leads. Its HTTP clients send each call to the kernel believed to
// lead and, when that kernel cannot be dialled or answers as a standby,
// resend it to the leader the standby names or to the next endpoint,
// until one serves it (waiting between rounds while an election runs) —
// but only a call that can be sent again without risk: one whose request
// never reached a kernel (the dial failed) or that a standby refused
// (standbys do nothing but refuse), and whose body can be replayed (unary
// and server-streaming calls; a bidirectional stream's answer is passed
// on, and its next call goes to the leader learnt). A call that failed
// after its request reached the leader is not resent: the caller sees
// Unavailable and decides. It is safe for concurrent use.
type Cluster struct {
	eps  []string // scheme://host[:port], no trailing slash
	wait time.Duration
	tls  *tls.Config // of https:// endpoints; nil: the system's roots (WithTLS)

	mu     sync.Mutex
	leader string // the endpoint believed to lead; "" before the first call
}

// DefaultPort is a kernel's API port when an address names none.
const DefaultPort = "7070"

// ParseCluster parses a comma-separated list of kernel addresses
// ("10.0.0.1:7070,10.0.0.2" or URLs), each as NormalizeEndpoint does;
// duplicates are dropped. Empty or malformed entries are errors.
func ParseCluster(addrs string) (*Cluster, error) {
	c := &Cluster{wait: DefaultFailoverWait}
	for i, a := range strings.Split(addrs, ",") {
		ep, err := NormalizeEndpoint(a)
		if err != nil {
			return nil, fmt.Errorf("kernel address %d of %q: %w", i+1, addrs, err)
		}
		if !slices.Contains(c.eps, ep) {
			c.eps = append(c.eps, ep)
		}
	}
	return c, nil
}

// NormalizeEndpoint returns addr as a kernel base URL: "host[:port]" is
// "https://host:port" (kernels serve only TLS); a URL keeps its scheme (http or https) and loses a
// trailing slash; a missing port is DefaultPort; a path, query or user is
// an error. Every client of the kernels (dcosctl --kernel, dcosctl login's
// config, agents' --kernel, the SDK) reads addresses through it.
func NormalizeEndpoint(addr string) (string, error) {
	addr = strings.TrimRight(strings.TrimSpace(addr), "/")
	if addr == "" {
		return "", errors.New("empty")
	}
	if !strings.Contains(addr, "://") {
		addr = "https://" + addr
	}
	u, err := url.Parse(addr)
	switch {
	case err != nil:
		return "", err
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("want http:// or https://, got %q", addr)
	case u.Host == "" || strings.HasSuffix(u.Host, ":") || u.Hostname() == "":
		return "", fmt.Errorf("no host in %q", addr)
	case u.Path != "" || u.RawQuery != "" || u.User != nil || u.Fragment != "":
		return "", fmt.Errorf("want HOST[:PORT] or http://HOST:PORT, got %q", addr)
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), DefaultPort)
	}
	return u.Scheme + "://" + u.Host, nil
}

// Endpoints returns the cluster's endpoints, in the order given.
func (c *Cluster) Endpoints() []string { return append([]string(nil), c.eps...) }

// URL is the base URL to build clients with: the first endpoint. Calls
// to it (or to any endpoint) go where the cluster's clients route them.
func (c *Cluster) URL() string { return c.eps[0] }

// String is the endpoints, comma-separated.
func (c *Cluster) String() string { return strings.Join(c.eps, ",") }

// Leader returns the endpoint calls go to now.
func (c *Cluster) Leader() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur()
}

func (c *Cluster) cur() string {
	if c.leader == "" && len(c.eps) > 0 {
		return c.eps[0]
	}
	return c.leader
}

// WithTLS sets the TLS configuration of the cluster's clients made from
// now on (HTTPClient, H2CClient), e.g. pki.Reloader.ClientConfig or one
// from TLSConfig; nil: the system's roots. Clients of one configuration
// (the same pointer) share one connection pool. It returns c, and must
// not be called while c's clients are made.
func (c *Cluster) WithTLS(cfg *tls.Config) *Cluster {
	c.tls = cfg
	return c
}

// HTTPClient returns an HTTP client like the package's HTTPClient that
// routes calls to the cluster's leader (see Cluster).
func (c *Cluster) HTTPClient() *http.Client {
	return &http.Client{Transport: &failover{c: c, next: sharedFor(c.tls)}}
}

// PrivateHTTPClient is HTTPClient with a connection pool of its own,
// which CloseIdleConnections closes: for calls whose connections must
// not be reused by the process's other clients (e.g. an agent's first
// call, made before it has its client certificate).
func (c *Cluster) PrivateHTTPClient() *http.Client {
	t := newTransport()
	SetTLS(t, c.tls)
	return &http.Client{Transport: &failover{c: c, next: t}}
}

// CloseIdleConnections closes the idle connections of the shared pool
// of the TLS configuration cfg (see WithTLS): e.g. once a client
// certificate is renewed, so that later calls make new connections that
// present it.
func CloseIdleConnections(cfg *tls.Config) {
	if cfg == nil {
		return
	}
	if t, ok := tlsShared.Load(cfg); ok {
		t.(*http.Transport).CloseIdleConnections()
	}
}

// tlsShared are the shared pools of the TLS configurations given to
// WithTLS, by configuration.
var tlsShared sync.Map // *tls.Config → *http.Transport

func sharedFor(cfg *tls.Config) *http.Transport {
	if cfg == nil {
		return shared
	}
	if t, ok := tlsShared.Load(cfg); ok {
		return t.(*http.Transport)
	}
	t := newTransport()
	SetTLS(t, cfg)
	got, _ := tlsShared.LoadOrStore(cfg, t)
	return got.(*http.Transport)
}

// shared is the one connection pool of every HTTPClient of a process. A
// transport per client left each client's idle keep-alive connections
// open for IdleConnTimeout: a program making a client per call (a
// poller) held hundreds, and reached the kernel's per-client connection
// cap, which then refused everyone on its address (an e2e harness polling
// dcosd dev starved dev's own init, on 127.0.0.1 too). One pool keeps at
// most MaxIdleConnsPerHost idle per kernel.
var shared = newTransport()

// H2CClient returns an HTTP client like the package's H2CClient that
// routes calls to the cluster's leader (see Cluster).
func (c *Cluster) H2CClient() *http.Client {
	return &http.Client{Transport: &failover{c: c, next: h2cTransport(c.tls)}}
}

// failover is the RoundTripper of a Cluster's clients.
type failover struct {
	c    *Cluster
	next http.RoundTripper
}

func (f *failover) CloseIdleConnections() {
	if ci, ok := f.next.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

func (f *failover) RoundTrip(req *http.Request) (*http.Response, error) {
	c := f.c
	origin := req.URL.Scheme + "://" + req.URL.Host
	if len(c.eps) > 0 && !c.has(origin) {
		return f.next.RoundTrip(req) // not a kernel of ours
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	ctx := req.Context()
	var deadline time.Time
	if d, ok := ctx.Deadline(); ok {
		deadline = d
	} else {
		deadline = time.Now().Add(c.wait)
	}
	tried := map[string]bool{}
	standbys := 0 // standby answers this round: an election may be under way
	backoff := 50 * time.Millisecond
	first := true
	for {
		target := c.target(origin)
		r := req
		if !first || target != origin {
			r = req.Clone(ctx)
			r.URL.Scheme, r.URL.Host, r.Host = schemeHost(target)
			if !first && req.GetBody != nil {
				b, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				r.Body = b
			}
		}
		first = false
		tried[target] = true
		resp, err := f.next.RoundTrip(r)
		var hint string
		switch {
		case err != nil && isDialError(err):
			c.failed(target, origin)
		case err == nil && resp.Header.Get(StandbyHeader) != "":
			standbys++
			hint = resp.Header.Get(LeaderHeader)
			if h, herr := NormalizeEndpoint(hint); herr == nil && hint != "" {
				c.follow(h)
			} else {
				c.failed(target, origin)
			}
		default:
			return resp, err // served (or failed after it was sent)
		}
		if !replayable || ctx.Err() != nil || !time.Now().Before(deadline) {
			return resp, err
		}
		// Every endpoint tried this round: if some answered as standbys,
		// an election is under way — wait a little before the next round;
		// if none could even be dialled, nothing serves: say so now. When
		// the wait would pass the deadline, the standby's answer ("no
		// kernel leads: …") is the clearest error to give.
		var wait time.Duration
		if next := c.target(origin); tried[next] {
			if standbys == 0 {
				return resp, err
			}
			wait = min(backoff, time.Until(deadline))
			if !time.Now().Add(wait).Before(deadline) {
				return resp, err
			}
		}
		if resp != nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		if wait > 0 {
			clear(tried)
			standbys = 0
			if !sleepCtx(ctx, wait) {
				return nil, ctx.Err()
			}
			backoff = min(backoff*2, 500*time.Millisecond)
		}
	}
}

// target is where a call addressed to origin goes now.
func (c *Cluster) target(origin string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.eps) == 0 {
		if c.leader != "" {
			return c.leader
		}
		return origin
	}
	return c.cur()
}

// follow records a standby's word that ep leads.
func (c *Cluster) follow(ep string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leader = ep
}

// failed moves on from an endpoint that could not be dialled or that
// knows no leader: to the next endpoint, or back to origin for a client
// without a list.
func (c *Cluster) failed(ep, origin string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.eps) == 0 {
		c.leader = "" // back to the address the caller gave
		return
	}
	for i, e := range c.eps {
		if e == ep {
			c.leader = c.eps[(i+1)%len(c.eps)]
			return
		}
	}
	c.leader = c.eps[0] // a leader learnt from a hint, not in the list
}

func (c *Cluster) has(origin string) bool {
	for _, e := range c.eps {
		if e == origin {
			return true
		}
	}
	return false
}

func schemeHost(ep string) (scheme, host, hostHeader string) {
	s, h, _ := strings.Cut(ep, "://")
	return s, h, h
}

// isDialError reports whether err means the request never reached a
// server: the connection could not be made.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
