package framework

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/dcos-kernel/dcos/sdk/transport"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// Config configures a Client.
type Config struct {
	// Endpoints are the kernels' API base URLs ("https://127.0.0.1:7070";
	// a bare "host:port" gets https://: kernels serve only TLS). Calls go to one endpoint and fail
	// over to the next, in order, when it answers Unavailable. At least
	// one is required.
	Endpoints []string
	// Token is sent as "Authorization: Bearer <token>" on every call.
	Token string
	// Timeout bounds each attempt of a unary call (default 30s); the
	// caller's context bounds the call with its retries.
	Timeout time.Duration
	// HTTPClient carries the calls (default: keep-alive connections, no
	// overall timeout since Watch streams are long-lived; HTTP/1.1 to
	// http:// URLs, as dcosctl's and the agent's clients, HTTP/2 over
	// TLS; the kernel's port also speaks h2c, for a client whose
	// Transport.Protocols asks for unencrypted HTTP/2).
	HTTPClient *http.Client
	// Retry is the backoff between attempts of a call (default
	// Backoff{Initial: 50ms, Max: 5s, Factor: 2, Attempts: 8}). Only
	// Unavailable and the door's rate limit (ResourceExhausted "rate
	// limit: ...") are retried, never another code.
	Retry Backoff
	// Logger receives retries and reconnects (default: discard).
	Logger *slog.Logger
	// CACert is the cluster's trust bundle (PEM): the kernels'
	// certificates are verified against it, as it is for the client's
	// life. Unset: CAFile's bundle, else $DCOS_CA_FILE's, else the
	// system's roots. Ignored when HTTPClient or TLS is set.
	CACert []byte
	// CAFile names a file holding the cluster's trust bundle (PEM),
	// followed for the client's life: each new connection is verified
	// against the file's content of the moment (transport.CAFile: looked
	// at at most once a second, re-read when it changed; a file that no
	// longer parses keeps the last good bundle, and says so to Logger).
	// Unset: the file named by $DCOS_CA_FILE, which the agent sets for
	// every task when it has the bundle and replaces with the new bundle
	// after a CA rotation, so a framework run as a task keeps reaching
	// the kernels once the previous CA retires. Ignored when HTTPClient,
	// TLS or CACert is set.
	CAFile string
	// TLS, if set, is the TLS configuration of the calls instead of one
	// made from CACert or CAFile (e.g. one presenting a client
	// certificate). Ignored when HTTPClient is set.
	TLS *tls.Config
}

// EnvCAFile names the environment variable that holds the path of the
// cluster's trust bundle (PEM) for clients whose Config has neither
// CACert nor CAFile; the client follows the file (Config.CAFile).
const EnvCAFile = "DCOS_CA_FILE"

// tlsConfig is the TLS configuration of cfg's calls: cfg.TLS, else one
// trusting cfg.CACert, else one following cfg.CAFile's or $DCOS_CA_FILE's
// bundle, else nil (the system's roots).
func (cfg Config) tlsConfig(log *slog.Logger) (*tls.Config, error) {
	if cfg.TLS != nil {
		return cfg.TLS, nil
	}
	if len(cfg.CACert) > 0 {
		conf, err := transport.TLSConfig(cfg.CACert)
		if err != nil {
			return nil, fmt.Errorf("framework.New: CACert: %w", err)
		}
		return conf, nil
	}
	path, field := cfg.CAFile, "CAFile"
	if path == "" {
		path, field = os.Getenv(EnvCAFile), "$"+EnvCAFile
	}
	if path == "" {
		return nil, nil
	}
	f, err := transport.OpenCAFile(path, log)
	if err != nil {
		return nil, fmt.Errorf("framework.New: %s: %w", field, err)
	}
	return f.TLSConfig(), nil
}

// Backoff is an exponential backoff: the first retry waits Initial, each
// next one Factor times longer, at most Max, with ±20% jitter. Attempts
// is the most tries of one unary call, the first included.
type Backoff struct {
	Initial, Max time.Duration
	Factor       float64
	Attempts     int
}

// DefaultBackoff is the Backoff of a Config that sets none.
var DefaultBackoff = Backoff{Initial: 50 * time.Millisecond, Max: 5 * time.Second, Factor: 2, Attempts: 8}

// delay is the wait before retry n (1-based), with jitter.
func (b Backoff) delay(n int) time.Duration {
	d := float64(b.Initial)
	for i := 1; i < n && d < float64(b.Max); i++ {
		d *= b.Factor
	}
	d = min(d, float64(b.Max))
	return time.Duration(d * (0.8 + 0.4*rand.Float64()))
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = DefaultBackoff.Initial
	}
	if b.Max < b.Initial {
		b.Max = max(DefaultBackoff.Max, b.Initial)
	}
	if b.Factor < 1 {
		b.Factor = DefaultBackoff.Factor
	}
	if b.Attempts <= 0 {
		b.Attempts = DefaultBackoff.Attempts
	}
	return b
}

// Client calls a kernel's syscalls. It is safe for concurrent use; the
// clients Fenced returns share its connections and endpoint choice.
//
// Every error it returns carries the call's gRPC code and the kernel's
// message: errors.As(err, new(*connect.Error)) holds, and Code(err) is
// the code. A unary call that failed with Unavailable after the request
// was sent ("the call may still take effect") may have taken effect:
// retrying an Allocate or Launch can then duplicate it. Label what you
// allocate and launch, and reconcile from a Cache (or List*) rather than
// counting replies.
type Client struct {
	shared *shared
	fence  *pb.Fence
}

type shared struct {
	endpoints []string
	kernels   []syscallsv1connect.KernelClient
	cur       atomic.Int64 // index of the endpoint calls go to first
	timeout   time.Duration
	retry     Backoff
	log       *slog.Logger
	tls       *tls.Config // of the default HTTP client; nil: Config.HTTPClient's or the system's roots
}

// New returns a client for cfg. It dials nothing: the first call does.
func New(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("framework.New: endpoints: at least one kernel URL is required")
	}
	s := &shared{timeout: cfg.Timeout, retry: cfg.Retry.withDefaults(), log: cfg.Logger}
	if s.timeout <= 0 {
		s.timeout = 30 * time.Second
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tlsConf, err := cfg.tlsConfig(s.log)
		if err != nil {
			return nil, err
		}
		s.tls = tlsConf
		// One transport.Cluster of every endpoint: a call that cannot
		// reach its kernel, or that a standby refuses, goes on to the
		// leader in the transport, before it ever counts as an attempt.
		if cl, err := transport.ParseCluster(strings.Join(cfg.Endpoints, ",")); err == nil {
			hc = cl.WithTLS(tlsConf).HTTPClient()
		} else {
			hc = transport.HTTPClientTLS(tlsConf) // the loop below names the bad endpoint
		}
	}
	for i, ep := range cfg.Endpoints {
		ep = strings.TrimRight(strings.TrimSpace(ep), "/")
		if ep == "" {
			return nil, fmt.Errorf("framework.New: endpoints[%d]: empty", i)
		}
		if !strings.Contains(ep, "://") {
			ep = "https://" + ep
		}
		if !strings.HasPrefix(ep, "http://") && !strings.HasPrefix(ep, "https://") {
			return nil, fmt.Errorf("framework.New: endpoints[%d]: want an http:// or https:// URL or host:port, got %q", i, cfg.Endpoints[i])
		}
		s.endpoints = append(s.endpoints, ep)
		s.kernels = append(s.kernels, syscallsv1connect.NewKernelClient(hc, ep, connect.WithInterceptors(transport.Bearer(cfg.Token))))
	}
	return &Client{shared: s}, nil
}

// closeIdle closes the idle connections of c's default HTTP client, so
// that the next call makes a new one.
func (c *Client) closeIdle() { transport.CloseIdleConnections(c.shared.tls) }

// HTTPClient is transport.HTTPClient, the client every kernel client
// uses (Config.HTTPClient's default).
func HTTPClient() *http.Client { return transport.HTTPClient() }

// Fenced returns a client that sets f on every Allocate, Launch, Revoke,
// StatePut and StateDelete it makes (the request is cloned, never
// mutated; a fence the request already carries is replaced). Once
// another replica has won f's election, those calls fail with an error
// for which errors.Is(err, ErrDeposed) holds. Other calls are unchanged.
func (c *Client) Fenced(f *pb.Fence) *Client {
	return &Client{shared: c.shared, fence: proto.Clone(f).(*pb.Fence)}
}

// ErrDeposed matches (errors.Is) the FailedPrecondition "deposed: ..."
// errors of fenced calls whose epoch another replica has superseded.
var ErrDeposed = errors.New("deposed")

// ResyncError is Watch's error when the revision it would resume after
// was compacted: list the state again and watch after Current.
type ResyncError struct {
	// Current is the kernel's revision when it refused.
	Current int64
	// Compacted is the store's compaction revision (0 if not told).
	Compacted int64
	err       *connect.Error
}

func (e *ResyncError) Error() string {
	return fmt.Sprintf("watch: history compacted; resync at revision %d", e.Current)
}

// Unwrap returns the kernel's *connect.Error (FailedPrecondition).
func (e *ResyncError) Unwrap() error { return e.err }

// Code returns the gRPC code of an error the client returned: the
// kernel's code, Canceled or DeadlineExceeded for a context's end, and
// Unknown for any other error (nil is connect.Code(0), "ok").
func Code(err error) connect.Code {
	if err == nil {
		return 0
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Code()
	}
	switch {
	case errors.Is(err, context.Canceled):
		return connect.CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return connect.CodeDeadlineExceeded
	}
	return connect.CodeUnknown
}

// deposedError is a *connect.Error that also matches ErrDeposed.
type deposedError struct{ ce *connect.Error }

func (e deposedError) Error() string   { return e.ce.Error() }
func (e deposedError) Unwrap() []error { return []error{e.ce, ErrDeposed} }

// classify wraps err so that ErrDeposed matches it when it is one.
func classify(err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) && ce.Code() == connect.CodeFailedPrecondition && strings.HasPrefix(ce.Message(), "deposed") {
		return deposedError{ce}
	}
	return err
}

// retryAfterRE finds the door's hint in its rate-limit message
// ("rate limit: framework fw-a exceeded 200 calls/s (burst 400); retry
// after 5ms").
var retryAfterRE = regexp.MustCompile(`retry after ([0-9.]+[a-zµ]+)`)

// retryable reports whether err may be retried, and the wait the kernel
// asked for (0: use the backoff). failover is set when another endpoint
// should be tried.
func retryable(err error) (ok, failover bool, wait time.Duration) {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return false, false, 0
	}
	switch ce.Code() {
	case connect.CodeUnavailable:
		return true, true, 0
	case connect.CodeResourceExhausted:
		if !strings.HasPrefix(ce.Message(), "rate limit") {
			return false, false, 0
		}
		if m := retryAfterRE.FindStringSubmatch(ce.Message()); m != nil {
			if d, perr := time.ParseDuration(m[1]); perr == nil {
				wait = d
			}
		}
		if h := ce.Meta().Get("Retry-After"); h != "" && wait == 0 {
			if d, perr := time.ParseDuration(h + "s"); perr == nil {
				wait = d
			}
		}
		return true, false, wait
	}
	return false, false, 0
}

// call runs one unary syscall with failover and retries.
func call[Req, Resp any](ctx context.Context, c *Client, name string, req *Req,
	method func(syscallsv1connect.KernelClient) func(context.Context, *connect.Request[Req]) (*connect.Response[Resp], error),
) (*Resp, error) {
	s := c.shared
	var err error
	for attempt := 1; ; attempt++ {
		i := int(s.cur.Load()) % len(s.kernels)
		actx, cancel := context.WithTimeout(ctx, s.timeout)
		var resp *connect.Response[Resp]
		resp, err = method(s.kernels[i])(actx, connect.NewRequest(req))
		cancel()
		if err == nil {
			return resp.Msg, nil
		}
		ok, failover, wait := retryable(err)
		if !ok || attempt >= s.retry.Attempts {
			return nil, classify(err)
		}
		if failover && len(s.kernels) > 1 {
			s.cur.CompareAndSwap(int64(i), int64((i+1)%len(s.kernels)))
		}
		if wait == 0 {
			wait = s.retry.delay(attempt)
		}
		s.log.Debug("framework: retrying syscall", "call", name, "endpoint", s.endpoints[i], "attempt", attempt, "in", wait, "err", err)
		if ctx.Err() != nil || !sleep(ctx, wait) {
			// The caller gave up while the kernel could not serve the call.
			code := connect.CodeCanceled
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				code = connect.CodeDeadlineExceeded
			}
			return nil, connect.NewError(code, fmt.Errorf("%s: %w (last error: %v)", name, ctx.Err(), err))
		}
	}
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// fenced returns r, or a clone of it with fence set by set, for a Fenced
// client.
func fenced[M proto.Message](c *Client, r M, set func(M, *pb.Fence)) M {
	if c.fence == nil {
		return r
	}
	cl := proto.Clone(r).(M)
	set(cl, proto.Clone(c.fence).(*pb.Fence))
	return cl
}
