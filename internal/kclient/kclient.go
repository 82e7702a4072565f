// Package kclient builds syscall clients for a kernel: the generated
// Connect client with a bearer token attached to every call.
//
// It is shared by the agent and dcosctl; it adds no retries or caching.
package kclient

import (
	"net/http"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/sdk/transport"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// New returns a client for the kernel at baseURL (e.g.
// "http://127.0.0.1:7070"), or for the cluster of kernels a
// comma-separated list names (transport.Cluster: calls go to the leader
// and fail over), that sends token as a bearer token. It speaks the
// Connect protocol over HTTP/1.1 or h2c; extra options (e.g.
// connect.WithGRPC()) are appended. The client is safe for concurrent use.
// A malformed list fails every call with the parse error.
func New(baseURL, token string, opts ...connect.ClientOption) syscallsv1connect.KernelClient {
	opts = append([]connect.ClientOption{connect.WithInterceptors(Bearer(token))}, opts...)
	cl, err := transport.ParseCluster(baseURL)
	if err != nil {
		return syscallsv1connect.NewKernelClient(HTTPClient(), baseURL, opts...)
	}
	return syscallsv1connect.NewKernelClient(cl.HTTPClient(), cl.URL(), opts...)
}

// HTTPClient is transport.HTTPClient: dcosctl, the agent and the SDK
// share one client configuration.
func HTTPClient() *http.Client { return transport.HTTPClient() }

// Bearer is transport.Bearer: a client interceptor that sets
// "Authorization: Bearer token" on unary and streaming calls.
func Bearer(token string) connect.Interceptor { return transport.Bearer(token) }
