// Command futuredriver is a driver plugin that speaks only a protocol version
// newer than this SDK's, for testing that a host refuses it. It serves no
// calls.
package main

import (
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

func main() {
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: contract.Handshake,
		VersionedPlugins: map[int]goplugin.PluginSet{
			contract.ProtocolVersion + 1: {contract.KindDriver: &contract.DriverPlugin{Impl: stub{}}},
		},
		GRPCServer: goplugin.DefaultGRPCServer,
	})
}

// stub satisfies contract.Driver; the host refuses the plugin before any call.
type stub struct{ contract.Driver }
