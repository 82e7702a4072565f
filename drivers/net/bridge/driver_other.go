//go:build !linux

package bridge

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// Config configures a Driver (see the Linux build for the fields' meaning).
type Config struct {
	StateDir, Bridge, VXLAN, HostNetns string
	VNI, VXLANPort, MTU                int
	Logger                             *slog.Logger
}

// Driver is the bridge network driver; outside Linux every call returns
// ErrNotSupported.
type Driver struct{}

var _ contract.NetDriver = (*Driver)(nil)

var errOS = fmt.Errorf("bridge: needs Linux: %w", contract.ErrNotSupported)

// New returns an error wrapping ErrNotSupported outside Linux.
func New(Config) (*Driver, error) { return nil, errOS }

func (*Driver) Close() error { return nil }
func (*Driver) Setup(context.Context, contract.NetworkRequest) (*contract.NetworkStatus, error) {
	return nil, errOS
}
func (*Driver) Teardown(context.Context, string) error { return errOS }
func (*Driver) Status(context.Context, string) (*contract.NetworkStatus, error) {
	return nil, errOS
}
func (*Driver) Recover(context.Context, []contract.NetworkStatus) error  { return errOS }
func (*Driver) ConfigureNode(context.Context, contract.NodeConfig) error { return errOS }
func (*Driver) GC(context.Context, []string) ([]string, error)           { return nil, errOS }
func (*Driver) RemoveNode(context.Context) error                         { return errOS }
