// Package api serves the kernel's syscalls over HTTP: Connect, gRPC and
// gRPC-Web on one port (h2c), plain HTTP/JSON for curl, gRPC server
// reflection for grpcurl, /healthz, and /metrics for Prometheus.
//
// Its front door (door.go) authenticates every call (bearer token →
// kernel.Principal), enforces which roles may make which call, applies a
// rate limit per principal and bounds request sizes, all from the headers
// before a body is read; the server has read, write and idle timeouts
// (lifted for Watch streams) and ConnLimiter caps connections in total
// and per client. It maps kernel errors to Connect codes. Semantics and
// validation live in package kernel.
package api
