//go:build !unix

package daemon

import "errors"

// raiseFDLimit is not supported here: no limit is known.
func raiseFDLimit() (soft, hard uint64, err error) {
	return 0, 0, errors.New("file descriptor limits: not supported on this platform")
}
