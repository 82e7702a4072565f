// Package kclient builds syscall clients for a kernel: the generated
// Connect client with a bearer token attached to every call.
//
// It is shared by the agent and dcosctl; it adds no retries or caching.
package kclient

import (
	"crypto/tls"
	"net/http"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/sdk/transport"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// New returns a client for the kernel at baseURL (e.g.
// "https://127.0.0.1:7070"), or for the cluster of kernels a
// comma-separated list names (transport.Cluster: calls go to the leader
// and fail over), that sends token as a bearer token. It speaks the
// Connect protocol over HTTP/2 or HTTP/1.1 (TLS; verified against the
// system's roots: see NewTLS); extra options (e.g.
// connect.WithGRPC()) are appended. The client is safe for concurrent use.
// A malformed list fails every call with the parse error.
func New(baseURL, token string, opts ...connect.ClientOption) syscallsv1connect.KernelClient {
	return NewTLS(baseURL, token, nil, opts...)
}

// NewTLS is New with the TLS configuration tlsConf for https:// kernels
// (kernels serve only TLS): transport.TLSConfig of the cluster's CA
// bundle, or a pki.Reloader's ClientConfig for a client with a
// certificate; nil: the system's roots.
func NewTLS(baseURL, token string, tlsConf *tls.Config, opts ...connect.ClientOption) syscallsv1connect.KernelClient {
	opts = append([]connect.ClientOption{connect.WithInterceptors(Bearer(token))}, opts...)
	cl, err := transport.ParseCluster(baseURL)
	if err != nil {
		return syscallsv1connect.NewKernelClient(transport.HTTPClientTLS(tlsConf), baseURL, opts...)
	}
	return syscallsv1connect.NewKernelClient(cl.WithTLS(tlsConf).HTTPClient(), cl.URL(), opts...)
}

// HTTPClient is transport.HTTPClient: dcosctl, the agent and the SDK
// share one client configuration.
func HTTPClient() *http.Client { return transport.HTTPClient() }

// Bearer is transport.Bearer: a client interceptor that sets
// "Authorization: Bearer token" on unary and streaming calls.
func Bearer(token string) connect.Interceptor { return transport.Bearer(token) }
