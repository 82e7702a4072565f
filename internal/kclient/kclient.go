// Package kclient builds syscall clients for a kernel: the generated
// Connect client with a bearer token attached to every call.
//
// It is shared by the agent and dcosctl; it adds no retries or caching.
package kclient

import (
	"context"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// New returns a client for the kernel at baseURL (e.g.
// "http://127.0.0.1:7070") that sends token as a bearer token. It speaks
// the Connect protocol over HTTP/1.1 or h2c; extra options (e.g.
// connect.WithGRPC()) are appended. The client is safe for concurrent use.
func New(baseURL, token string, opts ...connect.ClientOption) syscallsv1connect.KernelClient {
	opts = append([]connect.ClientOption{connect.WithInterceptors(Bearer(token))}, opts...)
	return syscallsv1connect.NewKernelClient(HTTPClient(), baseURL, opts...)
}

// HTTPClient is the HTTP client kernel clients use: keep-alive connections,
// no overall timeout (Watch streams are long-lived; use contexts).
func HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}}
}

// Bearer is a client interceptor that sets "Authorization: Bearer token"
// on unary and streaming calls. An empty token sets nothing.
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
