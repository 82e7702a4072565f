// Package transport is how every kernel client reaches the syscall API:
// the HTTP client (keep-alive connections, the environment's proxy
// settings, no overall timeout), the interceptor that sends the bearer
// token, and the TLS trust of the cluster CA, fixed (TLSConfig) or
// following a file that is rewritten after a CA rotation (CAFile). sdk/framework, dcosctl and the agent all use it, so they reach a
// kernel the same way. It is a leaf: it imports nothing of dcos.
package transport
