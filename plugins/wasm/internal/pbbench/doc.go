// Package pbbench is a protobuf rendering of the policy ABI's batch, used
// only by benchmarks that compare protobuf with the flat little-endian
// layout of sdk/policy (the ABI's committed choice). It is not part of the
// ABI and nothing but tests imports it.
package pbbench

//go:generate go tool buf generate
