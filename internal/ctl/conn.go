package ctl

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/proto"

	"github.com/dcos-kernel/dcos/internal/clientconfig"
	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/sdk/transport"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// target is where and as whom calls go.
type target struct {
	baseURL string
	token   string
	// tls verifies the kernels: their CA from --ca-cert or the client
	// config (nil: the system's roots).
	tls *tls.Config
	// trace, when set, receives one strace-style line per call.
	trace io.Writer
	// follow is the client config tls came from, when the target calls
	// that config's kernels: its CA follows a CA rotation (cafollow.go).
	follow *caFollow
}

// resolveTarget merges flags and environment (which urfave/cli folds into
// the flags) over the config file: each of kernel and token comes from the
// flag or variable when set, else from the file. The file is read only when
// something is missing, and may be absent when the kernel is given.
//
// When the CA comes from the file and the kernels are the file's, the
// file's CA follows a CA rotation (cafollow.go): a check at most every
// clientconfig.CACheckInterval.
func resolveTarget(c *cli.Context, e *env) (target, error) {
	t := target{baseURL: c.String("kernel"), token: c.String("token")}
	if c.Bool("trace") {
		t.trace = e.stderr
	}
	ca := ""
	var fromFile *caFollow
	if f := c.String("ca-cert"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return t, usagef("--ca-cert: %v", err)
		}
		ca = string(b)
	}
	if t.baseURL == "" || t.token == "" || ca == "" {
		path := c.String("config")
		if path == "" {
			p, err := clientconfig.DefaultPath()
			if err != nil && t.baseURL == "" {
				return t, usagef("no kernel: pass --kernel or set DCOS_KERNEL (%v)", err)
			}
			path = p
		}
		if path != "" {
			cfg, err := clientconfig.Load(path)
			switch {
			case err == nil:
				if t.baseURL == "" {
					t.baseURL = cfg.Kernel
				}
				if t.token == "" {
					t.token = cfg.Token
				}
				if ca == "" && cfg.CA != "" {
					ca = cfg.CA
					fromFile = &caFollow{path: path, cfg: cfg}
				}
			case errors.Is(err, fs.ErrNotExist):
				if t.baseURL == "" {
					return t, usagef("no kernel: pass --kernel, set DCOS_KERNEL, or run \"dcosd dev\" to write %s", path)
				}
			default:
				return t, err
			}
		}
	}
	t.baseURL = normalizeURL(t.baseURL)
	if ca != "" {
		conf, err := caTLS(ca)
		if err != nil {
			return t, err
		}
		t.tls = conf
	}
	if fromFile != nil && t.baseURL == normalizeURL(fromFile.cfg.Kernel) {
		t.follow = fromFile
		t.followCA(c.Context, e, false)
	}
	return t, nil
}

// caTLSs are the TLS configurations of the CA bundles used so far, by
// bundle: one per bundle, so that its clients share one connection pool
// (transport.Cluster.WithTLS).
var caTLSs sync.Map // string → *tls.Config

// caTLS returns the TLS configuration trusting the CA bundle caPEM.
func caTLS(caPEM string) (*tls.Config, error) {
	if conf, ok := caTLSs.Load(caPEM); ok {
		return conf.(*tls.Config), nil
	}
	conf, err := transport.TLSConfig([]byte(caPEM))
	if err != nil {
		return nil, fmt.Errorf("the cluster's CA: %w", err)
	}
	got, _ := caTLSs.LoadOrStore(caPEM, conf)
	return got.(*tls.Config), nil
}

// normalizeURL accepts "127.0.0.1:7070" for "http://127.0.0.1:7070",
// and a comma-separated list of a cluster's kernels, each so normalised
// (transport.ParseCluster); a malformed list is kept as given, for
// target.cluster to report.
func normalizeURL(u string) string {
	if cl, err := transport.ParseCluster(u); err == nil {
		return cl.String()
	}
	return strings.TrimSpace(u)
}

// cluster is the kernels t.baseURL names (one, or a comma-separated
// list), for clients built by hand.
func (t target) cluster() (*transport.Cluster, error) {
	cl, err := transport.ParseCluster(t.baseURL)
	if err != nil {
		return nil, usagef("--kernel: %v", err)
	}
	return cl.WithTLS(t.tls), nil
}

// options are the Connect options every client of t uses besides the token.
func (t target) options() []connect.ClientOption {
	if t.trace == nil {
		return nil
	}
	return []connect.ClientOption{connect.WithInterceptors(&tracer{w: t.trace})}
}

// kernel returns the typed client of t.
func (t target) kernel() syscallsv1connect.KernelClient {
	return kclient.NewTLS(t.baseURL, t.token, t.tls, t.options()...)
}

// dial resolves the target of c and returns its typed client.
func dial(c *cli.Context, e *env) (syscallsv1connect.KernelClient, error) {
	t, err := resolveTarget(c, e)
	if err != nil {
		return nil, err
	}
	return t.kernel(), nil
}

// tracer is a client interceptor that writes one line per call to w:
//
//	Allocate({"resources":{"cpus":0.5}}) = OK <1.234ms>
//	Allocate({...}) = InvalidArgument "resources.cpus: ..." <0.812ms>
//	Watch({}) = OK <2.5s> 3 events
type tracer struct {
	mu sync.Mutex
	w  io.Writer
}

func (t *tracer) log(procedure string, req any, n int, stream bool, err error, d time.Duration) {
	name := procedure[strings.LastIndex(procedure, "/")+1:]
	result := "OK"
	if err != nil && !errors.Is(err, io.EOF) {
		code := connect.CodeOf(err)
		msg := err.Error()
		var ce *connect.Error
		if errors.As(err, &ce) {
			msg = ce.Message()
		}
		result = fmt.Sprintf("%s %q", codeName(code), msg)
	}
	line := fmt.Sprintf("%s(%s) = %s <%s>", name, compactJSON(req), result, formatDuration(d))
	if stream {
		line += fmt.Sprintf(" %d events", n)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintln(t.w, line)
}

func formatDuration(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.3fs", d.Seconds())
}

// compactJSON renders a request for a trace line; anything that is not a
// message renders as "?".
func compactJSON(req any) string {
	m, ok := req.(proto.Message)
	if !ok || m == nil {
		return "?"
	}
	b, err := marshalCompact(m)
	if err != nil {
		return "?"
	}
	return string(b)
}

func (t *tracer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		start := time.Now()
		res, err := next(ctx, req)
		t.log(req.Spec().Procedure, req.Any(), 0, false, err, time.Since(start))
		return res, err
	}
}

func (t *tracer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		return &tracedStream{StreamingClientConn: next(ctx, spec), t: t, start: time.Now()}
	}
}

func (t *tracer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// tracedStream logs a streaming call once, when it ends.
type tracedStream struct {
	connect.StreamingClientConn
	t     *tracer
	start time.Time
	req   any
	n     int
	done  bool
}

func (s *tracedStream) Send(msg any) error {
	s.req = msg
	err := s.StreamingClientConn.Send(msg)
	if err != nil && !errors.Is(err, io.EOF) {
		s.finish(err)
	}
	return err
}

func (s *tracedStream) Receive(msg any) error {
	err := s.StreamingClientConn.Receive(msg)
	if err == nil {
		s.n++
		return nil
	}
	s.finish(err)
	return err
}

func (s *tracedStream) CloseResponse() error {
	s.finish(nil)
	return s.StreamingClientConn.CloseResponse()
}

func (s *tracedStream) finish(err error) {
	if s.done {
		return
	}
	s.done = true
	s.t.log(s.Spec().Procedure, s.req, s.n, true, err, time.Since(s.start))
}

// formatAndDial resolves the command's --output format and dials the
// kernel: the preamble of every command that prints what it calls.
func formatAndDial(c *cli.Context, e *env) (format, syscallsv1connect.KernelClient, error) {
	f, err := outputFormat(c)
	if err != nil {
		return 0, nil, err
	}
	k, err := dial(c, e)
	return f, k, err
}

// tlsHint says what to do about a failed TLS handshake with a kernel,
// given the error's message; "" for other errors.
func tlsHint(msg string) string {
	switch {
	case strings.Contains(msg, "x509:") || strings.Contains(msg, "not trusted"):
		return " (the kernel's certificate does not verify against the CA this client trusts: is the client config's CA this cluster's? pin it with dcosctl login ADDR --token T --ca-fingerprint sha256:HEX, or pass --ca-cert FILE)"
	case strings.Contains(msg, "remote error: tls:"):
		return " (the kernel refused this client's TLS handshake: a client certificate that is expired or of another CA?)"
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return " (this address serves plain HTTP, not a dcos kernel)"
	}
	return ""
}
