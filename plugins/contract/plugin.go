package contract

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginsv1 "github.com/dcos-kernel/dcos/plugins/contract/proto/v1"
)

// ProtocolVersion is the newest plugin protocol version this package speaks.
// A host offers every version in HostPlugins; a plugin serves the newest
// version both sides speak. Bump it, and keep serving the old version, for
// any incompatible change to a contract.
const ProtocolVersion = 1

// Plugin kinds, the names under which go-plugin dispenses each contract.
const (
	KindDriver   = "driver"
	KindIsolator = "isolator"
	KindNet      = "net"
	KindStorage  = "storage"
)

// Handshake is the go-plugin handshake of dcos plugins. The magic cookie is
// not a secret: it stops a user from running a plugin binary by hand by
// mistake. ProtocolVersion here is only the fallback for hosts that send no
// version list; negotiation uses VersionedPlugins.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "DCOS_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "4c1f0e3a9d7b2c58e6a1f0d9b3c7e2a5",
}

// HostPlugins returns the plugin sets a host passes as
// plugin.ClientConfig.VersionedPlugins: every protocol version it speaks,
// each with every kind. It returns a fresh map on each call.
func HostPlugins() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		1: {
			KindDriver:   &DriverPlugin{},
			KindIsolator: &IsolatorPlugin{},
			KindNet:      &NetPlugin{},
			KindStorage:  &StoragePlugin{},
		},
	}
}

// DriverPlugin is the plugin.GRPCPlugin of a task driver. A plugin sets Impl;
// a host leaves it nil and dispenses a Driver (a *DriverClient, which is
// also an ImageDriver). An Impl that is also an ImageDriver is served as
// one from the same connection.
type DriverPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Driver
}

var _ plugin.GRPCPlugin = (*DriverPlugin)(nil)

// GRPCServer registers Impl on s.
func (p *DriverPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return fmt.Errorf("driver plugin: no implementation")
	}
	pluginsv1.RegisterDriverServer(s, &driverServer{impl: p.Impl})
	if im, ok := p.Impl.(ImageDriver); ok {
		pluginsv1.RegisterImageDriverServer(s, &imageServer{impl: im})
	}
	return nil
}

// GRPCClient returns a Driver that calls the plugin over conn. done is
// cancelled when the plugin process exits.
func (p *DriverPlugin) GRPCClient(done context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return NewDriverClient(done, conn), nil
}

// IsolatorPlugin is the plugin.GRPCPlugin of an isolator. A plugin sets Impl;
// a host leaves it nil and dispenses an Isolator.
type IsolatorPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Isolator
}

var _ plugin.GRPCPlugin = (*IsolatorPlugin)(nil)

// GRPCServer registers Impl on s.
func (p *IsolatorPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return fmt.Errorf("isolator plugin: no implementation")
	}
	pluginsv1.RegisterIsolatorServer(s, &isolatorServer{impl: p.Impl})
	return nil
}

// GRPCClient returns an Isolator that calls the plugin over conn. done is
// cancelled when the plugin process exits.
func (p *IsolatorPlugin) GRPCClient(done context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return NewIsolatorClient(done, conn), nil
}

// NetPlugin is the plugin.GRPCPlugin of a net driver. A plugin sets Impl; a
// host leaves it nil and dispenses a NetDriver.
type NetPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl NetDriver
}

var _ plugin.GRPCPlugin = (*NetPlugin)(nil)

// GRPCServer registers Impl on s.
func (p *NetPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return fmt.Errorf("net plugin: no implementation")
	}
	pluginsv1.RegisterNetDriverServer(s, &netServer{impl: p.Impl})
	return nil
}

// GRPCClient returns a NetDriver that calls the plugin over conn. done is
// cancelled when the plugin process exits.
func (p *NetPlugin) GRPCClient(done context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return NewNetClient(done, conn), nil
}

// StoragePlugin is the plugin.GRPCPlugin of a storage driver. A plugin sets
// Impl; a host leaves it nil and dispenses a StorageDriver.
type StoragePlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl StorageDriver
}

var _ plugin.GRPCPlugin = (*StoragePlugin)(nil)

// GRPCServer registers Impl on s.
func (p *StoragePlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return fmt.Errorf("storage plugin: no implementation")
	}
	pluginsv1.RegisterStorageDriverServer(s, &storageServer{impl: p.Impl})
	return nil
}

// GRPCClient returns a StorageDriver that calls the plugin over conn. done is
// cancelled when the plugin process exits.
func (p *StoragePlugin) GRPCClient(done context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return NewStorageClient(done, conn), nil
}

// ServeConfig returns the go-plugin configuration that serves impl as a
// plugin of kind (KindDriver, KindIsolator, KindNet or KindStorage) at every
// protocol version this package speaks. impl must implement the contract of
// kind. It is ServeConfigMulti with one entry.
func ServeConfig(kind string, impl any) (*plugin.ServeConfig, error) {
	return ServeConfigMulti(map[string]any{kind: impl})
}

// ServeConfigMulti returns the go-plugin configuration that serves, from one
// process, every impls[kind] as the plugin of that kind, at every protocol
// version this package speaks: a host dispenses each kind from the same
// connection. Each impl must implement the contract of its kind; an unknown
// kind, an impl of the wrong type or an empty map is an error.
func ServeConfigMulti(impls map[string]any) (*plugin.ServeConfig, error) {
	if len(impls) == 0 {
		return nil, fmt.Errorf("serve: no plugin")
	}
	set := plugin.PluginSet{}
	for kind, impl := range impls {
		p, err := servedPlugin(kind, impl)
		if err != nil {
			return nil, err
		}
		set[kind] = p
	}
	return &plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{ProtocolVersion: set},
		GRPCServer:       plugin.DefaultGRPCServer,
	}, nil
}

// servedPlugin returns the plugin that serves impl as kind.
func servedPlugin(kind string, impl any) (plugin.Plugin, error) {
	switch kind {
	case KindDriver:
		if d, ok := impl.(Driver); ok {
			return &DriverPlugin{Impl: d}, nil
		}
		return nil, fmt.Errorf("serve %s: %T does not implement contract.Driver", kind, impl)
	case KindIsolator:
		if i, ok := impl.(Isolator); ok {
			return &IsolatorPlugin{Impl: i}, nil
		}
		return nil, fmt.Errorf("serve %s: %T does not implement contract.Isolator", kind, impl)
	case KindNet:
		if n, ok := impl.(NetDriver); ok {
			return &NetPlugin{Impl: n}, nil
		}
		return nil, fmt.Errorf("serve %s: %T does not implement contract.NetDriver", kind, impl)
	case KindStorage:
		if st, ok := impl.(StorageDriver); ok {
			return &StoragePlugin{Impl: st}, nil
		}
		return nil, fmt.Errorf("serve %s: %T does not implement contract.StorageDriver", kind, impl)
	default:
		return nil, fmt.Errorf("serve: unknown plugin kind %q", kind)
	}
}

var incompatibleRE = regexp.MustCompile(`[Pp]lugin version: (\d+), Client versions: \[([\d ]*)\]`)

// ClientError turns an error from plugin.Client.Client into one a user can
// act on: a version mismatch wraps ErrIncompatibleVersion and says which
// versions each side speaks, a checksum mismatch says so. Other errors are
// returned wrapped with path.
func ClientError(path string, err error) error {
	if err == nil {
		return nil
	}
	if m := incompatibleRE.FindStringSubmatch(err.Error()); m != nil {
		host := strings.ReplaceAll(strings.TrimSpace(m[2]), " ", ", ")
		return fmt.Errorf("plugin %s speaks protocol version %s, this host speaks %s: use a plugin built for a version the host speaks, or upgrade the host: %w",
			path, m[1], host, ErrIncompatibleVersion)
	}
	if err == plugin.ErrChecksumsDoNotMatch {
		return fmt.Errorf("plugin %s: refused: its sha256 does not match the registered checksum: %w", path, err)
	}
	return fmt.Errorf("plugin %s: %w", path, err)
}

// Dispense connects c (starting its process if needed) and returns the
// contract of kind: a Driver for KindDriver, an Isolator for KindIsolator, a
// NetDriver for KindNet, a StorageDriver for KindStorage.
// Errors are those of ClientError.
func Dispense(c *plugin.Client, path, kind string) (any, error) {
	rpc, err := c.Client()
	if err != nil {
		return nil, ClientError(path, err)
	}
	raw, err := rpc.Dispense(kind)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: dispense %s: %w", path, kind, err)
	}
	return raw, nil
}
