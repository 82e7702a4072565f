package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// MaxRequestBytes bounds one request message; larger ones are refused
// with ResourceExhausted, before they are read when the request declares
// its length. An operator's PolicyLoad and PolicyTest, which carry a
// policy module, may be up to MaxModuleRequestBytes.
const (
	MaxRequestBytes       = 4 << 20
	MaxModuleRequestBytes = 48 << 20 // a 32 MiB module, base64 in JSON
)

// envelopeSlack is what framing may add to a message on the wire (the
// 5-byte envelopes of gRPC and Connect streams).
const envelopeSlack = 1 << 10

// moduleProcedures may carry up to MaxModuleRequestBytes, for operators.
var moduleProcedures = map[string]bool{
	syscallsv1connect.KernelPolicyLoadProcedure: true,
	syscallsv1connect.KernelPolicyTestProcedure: true,
}

// requestLimit returns the largest request message p may send to
// procedure.
func requestLimit(procedure string, p kernel.Principal) int64 {
	if p.Role == kernel.RoleOperator && moduleProcedures[procedure] {
		return MaxModuleRequestBytes
	}
	return MaxRequestBytes
}

// door is the front door of the Kernel service: an http.Handler in front
// of Connect that, from the request's headers alone, authenticates the
// caller (bearer token → principal), checks that its role may call the
// procedure, takes one call from its rate limit and checks the declared
// length against the procedure's limit. A request it refuses is answered
// in the protocol the client speaks (Connect, gRPC, gRPC-Web) without a
// byte of its body read, and an HTTP/1 connection is closed after the
// answer; so unauthenticated load never costs memory in proportion to
// what it sends. An accepted request's body is bounded (MaxBytesReader;
// a bidirectional stream's messages each, by Connect), and its principal is in the context for the handlers (principal).
//
// Requests for anything else (/healthz, /metrics, gRPC reflection,
// unknown paths) pass through untouched.
type door struct {
	tokens  TokenLookup
	limiter *rateLimiter
	errw    *connect.ErrorWriter
	next    http.Handler
	refused [numRefusals]atomic.Int64 // by refusal
	// audit, if not nil, records the refusals of unauthenticated and
	// unauthorised calls (audit.go).
	audit func(*pb.AuditRecord)
}

// refusal is why the door refused a request (a label of
// dcos_api_requests_refused_total).
type refusal int

const (
	refusedUnauthenticated refusal = iota
	refusedPermissionDenied
	refusedTooLarge
	refusedRateLimited
	numRefusals
)

var refusalNames = [numRefusals]string{"unauthenticated", "permission_denied", "too_large", "rate_limited"}

// refuse answers r with err in the client's protocol and counts it.
func (d *door) refuse(w http.ResponseWriter, r *http.Request, why refusal, err error) {
	d.refused[why].Add(1)
	d.errw.Write(w, r, err)
}

func (d *door) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	procedure := r.URL.Path
	roles, ok := allowed[procedure]
	if !ok {
		d.next.ServeHTTP(w, r)
		return
	}
	p, why, err := d.authenticate(procedure, roles, r.Header)
	if err == nil {
		why, err = bindCert(procedure, p, r.TLS)
	}
	limit := requestLimit(procedure, p) + envelopeSlack
	if err == nil && r.ContentLength > limit {
		why, err = refusedTooLarge, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("request of %d bytes is larger than the %d bytes %s %s may send to %s",
			r.ContentLength, limit-envelopeSlack, p.Role, p.Name, procedure))
	}
	if err != nil {
		// Do not read the body to keep the connection: close it.
		// Recorded before the answer: a caller that then lists the
		// trail finds it.
		d.auditRefusal(procedure, p, why, err)
		if r.ProtoMajor == 1 && d.refuseHTTP1(w, r, why, err) {
			return
		}
		if r.ProtoMajor == 1 {
			// The past read deadline stops net/http from draining a
			// small body after the answer (it would wait for a slow
			// client).
			w.Header().Set("Connection", "close")
			http.NewResponseController(w).SetReadDeadline(time.Now())
		}
		d.refuse(w, r, why, err)
		return
	}
	if err := d.limiter.allow(p, time.Now()); err != nil {
		d.refuse(w, r, refusedRateLimited, err)
		return
	}
	ctx := context.WithValue(r.Context(), principalKey{}, p)
	switch {
	case bidi[procedure]:
		// The handler sets a deadline per message sent (Server.sendWith);
		// reads wait for the peer as long as the call lasts.
		rc := http.NewResponseController(w)
		rc.SetReadDeadline(time.Time{})
		rc.SetWriteDeadline(time.Time{})
		ctx = context.WithValue(ctx, controllerKey{}, rc)
	case serverStreams[procedure]:
		// The stream's handler sets a deadline per message (Server.Watch)
		// through the same controller.
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		rc := http.NewResponseController(w)
		r.Body = liftStreamDeadlines(rc, r.Body)
		ctx = context.WithValue(ctx, controllerKey{}, rc)
	default:
		r.Body = http.MaxBytesReader(w, r.Body, limit)
	}
	d.next.ServeHTTP(w, r.WithContext(ctx))
}

// lingerRefused is how long a refused HTTP/1 connection stays open after
// its answer, half-closed, before it is closed: long enough for the
// client to read the answer before the reset that closing a socket with
// unread body data sends (net/http waits as long).
const lingerRefused = 500 * time.Millisecond

// refuseHTTP1 answers an HTTP/1 request with err over its hijacked
// connection and lets go of it at once: the connection's goroutine and
// buffers are freed now, and only a timer closes the socket after
// lingerRefused. It reports false, having done nothing, for gRPC (whose
// trailers need net/http's chunked encoding) or when it cannot hijack.
func (d *door) refuseHTTP1(w http.ResponseWriter, r *http.Request, why refusal, err error) bool {
	if ct := r.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/grpc") && !strings.HasPrefix(ct, "application/grpc-web") {
		return false
	}
	conn, _, herr := http.NewResponseController(w).Hijack()
	if herr != nil {
		return false
	}
	d.refused[why].Add(1)
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	d.errw.Write(rec, r, err)
	resp := &http.Response{StatusCode: rec.status, ProtoMajor: 1, ProtoMinor: 1, Header: rec.header,
		ContentLength: int64(rec.body.Len()), Body: io.NopCloser(&rec.body), Close: true}
	conn.SetWriteDeadline(time.Now().Add(lingerRefused))
	resp.Write(conn)
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	time.AfterFunc(lingerRefused, func() { conn.Close() })
	return true
}

// recorder is the http.ResponseWriter refuseHTTP1 has the ErrorWriter
// write to.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(p []byte) (int, error) { return r.body.Write(p) }
func (r *recorder) WriteHeader(status int)      { r.status = status }

// authenticate returns the principal of the request's bearer token, or
// Unauthenticated, or PermissionDenied when its role is not in roles.
func (d *door) authenticate(procedure string, roles []kernel.Role, h http.Header) (kernel.Principal, refusal, error) {
	tok, ok := strings.CutPrefix(h.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return kernel.Principal{}, refusedUnauthenticated, connect.NewError(connect.CodeUnauthenticated, errors.New("missing bearer token (Authorization: Bearer <token>)"))
	}
	p, ok := d.tokens.Lookup(tok)
	if !ok {
		return kernel.Principal{}, refusedUnauthenticated, connect.NewError(connect.CodeUnauthenticated, errors.New("unknown token"))
	}
	for _, r := range roles {
		if r == p.Role {
			return p, 0, nil
		}
	}
	return p, refusedPermissionDenied, connect.NewError(connect.CodePermissionDenied, errors.New(p.Role.String()+" "+p.Name+" may not call "+procedure))
}

// collectors returns the door's metrics, and those of conns if not nil.
func (d *door) collectors(conns *ConnLimiter) []prometheus.Collector {
	var cs []prometheus.Collector
	for i, name := range refusalNames {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "dcos_api_requests_refused_total", Help: "Syscall requests the front door refused before reading their body, by reason.",
			ConstLabels: prometheus.Labels{"reason": name},
		}, func() float64 { return float64(d.refused[i].Load()) }))
	}
	if conns == nil {
		return cs
	}
	cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "dcos_api_connections", Help: "Connections open on the API port.",
	}, func() float64 { return float64(conns.Open()) }))
	for _, c := range []struct {
		name string
		n    *atomic.Int64
	}{{"total", &conns.refusedTotal}, {"per_client", &conns.refusedPerClient}} {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "dcos_api_connections_refused_total", Help: "Connections closed at accept by a cap, by cap (total, per_client).",
			ConstLabels: prometheus.Labels{"cap": c.name},
		}, func() float64 { return float64(c.n.Load()) }))
	}
	return cs
}

// liftStreamDeadlines frees a server stream (Watch) from the server's
// timeouts, which are sized for unary calls: the write deadline at once,
// the read deadline once the request has been read to its end (so a
// client that sends its request slowly is still cut at the read timeout).
// Without this an HTTP/1 stream's context is cancelled at the read
// timeout and an HTTP/2 stream is reset at the write timeout.
func liftStreamDeadlines(rc *http.ResponseController, body io.ReadCloser) io.ReadCloser {
	rc.SetWriteDeadline(time.Time{})
	return &eofHook{ReadCloser: body, atEOF: func() { rc.SetReadDeadline(time.Time{}) }}
}

// eofHook calls atEOF once, when the body returns io.EOF.
type eofHook struct {
	io.ReadCloser
	atEOF func()
	once  sync.Once
}

func (b *eofHook) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.once.Do(b.atEOF)
	}
	return n, err
}

type principalKey struct{}

// controllerKey holds a Watch stream's http.ResponseController (Connect
// does not expose the ResponseWriter), for its per-message deadlines.
type controllerKey struct{}

// principal returns the caller the door authenticated.
func principal(ctx context.Context) kernel.Principal {
	p, _ := ctx.Value(principalKey{}).(kernel.Principal)
	return p
}
