// Package syscalls holds the dcos syscall ABI: the protobuf definitions in
// v1/syscalls.proto and the Go code generated from them (v1 for the
// messages, v1/syscallsv1connect for Connect/gRPC clients and servers).
//
// It is the one package outsiders must import to talk to a kernel, and it
// imports nothing of ours. It holds no logic: validation, authorisation and
// semantics live in the kernel. Regenerate with `go generate ./syscalls/...`;
// the tools are pinned in go.mod.
package syscalls

//go:generate go tool buf generate
