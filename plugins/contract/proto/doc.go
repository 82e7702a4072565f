// Package proto holds the wire contracts of dcos plugins: the protobuf
// services in v1/driver.proto and v1/isolator.proto and the Go code generated
// from them (package v1, imported as pluginsv1).
//
// It holds no logic; the typed Go contracts and the go-plugin glue live in
// the parent package contract. Regenerate with
// `go generate ./plugins/contract/proto/...`; the tools are pinned in go.mod.
package proto

//go:generate go tool buf generate
