//go:build !linux

package storage

import (
	"context"
	"fmt"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// Driver is the built-in storage driver; outside Linux every call returns
// ErrNotSupported.
type Driver struct{}

var _ contract.StorageDriver = (*Driver)(nil)

var errOS = fmt.Errorf("storage: needs Linux: %w", contract.ErrNotSupported)

// New returns an error wrapping ErrNotSupported outside Linux.
func New(Config) (*Driver, error) { return nil, errOS }

func (*Driver) Enforcement() Enforcement { return EnforceNone }
func (*Driver) PrepareSandbox(context.Context, string, int64) (*contract.Sandbox, error) {
	return nil, errOS
}
func (*Driver) CleanupSandbox(context.Context, string) error { return errOS }
func (*Driver) CreateVolume(context.Context, contract.VolumeRequest) (*contract.Volume, error) {
	return nil, errOS
}
func (*Driver) DestroyVolume(context.Context, string) error            { return errOS }
func (*Driver) ListVolumes(context.Context) ([]contract.Volume, error) { return nil, errOS }
func (*Driver) Mount(context.Context, contract.MountRequest) (*contract.Mount, error) {
	return nil, errOS
}
func (*Driver) Unmount(context.Context, string, string) error     { return errOS }
func (*Driver) Recover(context.Context, []contract.Sandbox) error { return errOS }

// Detect returns EnforceNone and an error wrapping ErrNotSupported outside
// Linux.
func Detect(string) (Enforcement, error) { return EnforceNone, errOS }
