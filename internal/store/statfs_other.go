//go:build !linux

package store

import "errors"

// statfsAvail is not measured off Linux: the floor is not enforced.
func statfsAvail(string) (int64, error) {
	return 0, errors.New("statfs: not supported on this platform")
}
