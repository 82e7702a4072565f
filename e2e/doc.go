// Package e2e holds end-to-end tests of dcos: they build the real dcosd and
// dcosctl binaries once, run them as child processes (dcosd dev, or a
// separate dcosd kernel and dcosd agent) on temporary data dirs and
// loopback ports, and drive them over the wire with the syscall client,
// dcosctl, curl and grpcurl.
//
// It is not for unit tests of any package (those live next to their code)
// and it exports nothing: everything here is in _test.go files. Every test
// leaves the machine as it found it: daemons are stopped (SIGTERM, then
// SIGKILL) and the task processes they started are killed.
//
// Multi-host tests (multihost_test.go) run each agent in a host of
// e2e/multihost, a network namespace of its own on a test bridge, with
// the kernel in the root namespace (docs/testing.md).
//
// Run with:
//
//	go test ./e2e -count=1
//	go test ./e2e -run '^$' -bench AllocateRoundTrip -benchtime 2000x
//
// TestCurlAndGrpcurl needs curl and grpcurl (go install
// github.com/fullstorydev/grpcurl/cmd/grpcurl@latest).
package e2e
