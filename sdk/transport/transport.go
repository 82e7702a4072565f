package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"
)

// HTTPClient returns a new HTTP client for a kernel's API: keep-alive
// connections (64 idle per host), the environment's proxy settings, and
// no overall timeout (Watch streams are long-lived; bound calls with
// contexts). It speaks HTTP/1.1, to http:// and to https:// URLs alike:
// a unary call over a kept-alive HTTP/1.1 TLS connection costs what it
// costs in clear text, over HTTP/2 10–20 % more (api
// BenchmarkAllocate_TLSvsPlain); H2CClient is the one for the
// bidirectional streams, which need HTTP/2. A standby kernel's
// refusal is followed to the leader it names, as a Cluster's clients do
// (a Cluster also knows the other kernels when one cannot be dialled).
func HTTPClient() *http.Client {
	return (&Cluster{wait: DefaultFailoverWait}).HTTPClient()
}

// newTransport is a transport of the package's settings. With a
// TLSClientConfig it speaks HTTP/1.1 only (net/http offers HTTP/2 over
// TLS only when ForceAttemptHTTP2 is set, as h2cTransport does).
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
}

// H2CClient returns a new HTTP client for the kernel's bidirectional
// streams (Exec, AgentRelay), which need HTTP/2: the settings of
// HTTPClient, but http:// URLs are spoken in unencrypted HTTP/2 (h2c with
// prior knowledge; the kernel's port speaks it), and https:// ones in
// HTTP/2 or HTTP/1.1, as TLS negotiates. A server that speaks only
// HTTP/1.1 on http:// fails every call. CloseIdleConnections closes the
// idle connections of both.
func H2CClient() *http.Client {
	return (&Cluster{wait: DefaultFailoverWait}).H2CClient()
}

func h2cTransport(cfg *tls.Config) http.RoundTripper {
	plain := newTransport()
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	plain.Protocols = &p
	secure := newTransport()
	secure.ForceAttemptHTTP2 = true // HTTP/2 over TLS (bidirectional streams)
	SetTLS(secure, cfg)
	return &bySchemeTransport{plain: plain, tls: secure}
}

// cloneTLS is cfg's copy for one http.Transport, which sets the
// config's NextProtos in place: several transports (and their callers)
// must not share one. The copy keeps cfg's callbacks and session cache.
func cloneTLS(cfg *tls.Config) *tls.Config {
	if cfg == nil {
		return nil
	}
	return cfg.Clone()
}

// TLSConfig returns a client TLS configuration that trusts the CA
// certificates of caPEM (a cluster's trust bundle, e.g. what dcosctl
// login recorded or DATA_DIR/pki/ca.crt) instead of the system's roots.
// Kernels serve only TLS; their certificates chain to the cluster CA.
func TLSConfig(caPEM []byte) (*tls.Config, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("transport: the CA bundle holds no PEM certificate")
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ClientSessionCache: tls.NewLRUClientSessionCache(64)}, nil
}

// HTTPClientTLS is HTTPClient with the TLS configuration cfg (nil: the
// system's roots).
func HTTPClientTLS(cfg *tls.Config) *http.Client {
	return (&Cluster{wait: DefaultFailoverWait, tls: cfg}).HTTPClient()
}

// H2CClientTLS is H2CClient with the TLS configuration cfg.
func H2CClientTLS(cfg *tls.Config) *http.Client {
	return (&Cluster{wait: DefaultFailoverWait, tls: cfg}).H2CClient()
}

// bySchemeTransport sends http:// requests through plain and the others
// through tls: one http.Transport cannot speak h2c to http:// URLs and
// still offer HTTP/1.1 over TLS.
type bySchemeTransport struct {
	plain, tls *http.Transport
}

func (t *bySchemeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" {
		return t.plain.RoundTrip(req)
	}
	return t.tls.RoundTrip(req)
}

func (t *bySchemeTransport) CloseIdleConnections() {
	t.plain.CloseIdleConnections()
	t.tls.CloseIdleConnections()
}

// Bearer returns a client interceptor that sets "Authorization: Bearer
// token" on unary and streaming calls (what every syscall carries). An
// empty token sets nothing.
func Bearer(token string) connect.Interceptor { return bearer(token) }

type bearer string

func (b bearer) set(h http.Header) {
	if b != "" {
		h.Set("Authorization", "Bearer "+string(b))
	}
}

func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		b.set(req.Header())
		return next(ctx, req)
	}
}

func (b bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		b.set(conn.RequestHeader())
		return conn
	}
}

func (b bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
