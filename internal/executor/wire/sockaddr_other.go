//go:build !linux

package wire

import "errors"

// openPath: only Linux names a directory by descriptor in a socket path.
func openPath(dir string) (int, error) {
	return -1, errors.New("a socket path longer than a unix socket address needs Linux")
}
