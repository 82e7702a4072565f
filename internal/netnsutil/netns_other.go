//go:build !linux

package netnsutil

// InNetns runs fn when path is ""; any namespace path returns
// ErrNotSupported (see the Linux build).
func InNetns(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	return ErrNotSupported
}
