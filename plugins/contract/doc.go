// Package contract defines the dcos plugin contracts: the typed Go interfaces
// a task driver (Driver) and an isolator (Isolator) implement, and the
// go-plugin glue that carries them over gRPC between a host (the agent) and a
// plugin process.
//
// A Driver may also be an ImageDriver (images.go), found by type assertion
// as Nomad finds its optional driver parts: a driver that keeps container
// images lists and removes them for the agent.
//
// Files are split as Nomad splits its driver plugins: the contracts
// (driver.go, images.go, isolator.go, errors.go), the go-plugin glue (plugin.go), the
// gRPC clients (*_client.go) and servers (*_server.go), and the wire protocol
// (proto/v1, generated).
//
// It is not the plugin host: discovering plugins, checksum catalogs, restarts
// and log forwarding belong to the agent. Vendors import sdk/plugin, not this
// package.
package contract
