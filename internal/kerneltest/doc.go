// Package kerneltest starts a real kernel on an embedded etcd behind the
// real API handler, for tests of the code that talks to it: the API
// itself, the SDK, dcosctl and the frameworks.
//
// It is for tests only: nothing but _test.go files may import it, and it
// calls t.Fatal on any error. It is not a fake: every call goes through
// the door (tokens, roles, rate limits) to a kernel that persists to etcd.
// Tests that need only a store, not the API, use internal/store directly.
package kerneltest
