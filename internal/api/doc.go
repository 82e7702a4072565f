// Package api serves the kernel's syscalls over HTTP: Connect, gRPC and
// gRPC-Web on one port (h2c), plain HTTP/JSON for curl, gRPC server
// reflection for grpcurl, /healthz, and /metrics for Prometheus.
//
// It authenticates every call (bearer token → kernel.Principal), enforces
// which roles may make which call, bounds request sizes, and maps kernel
// errors to Connect codes. Semantics and validation live in package kernel.
package api
