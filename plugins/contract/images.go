package contract

import (
	"context"
	"errors"
	"time"
)

// ErrImageNotFound is returned (wrapped) by ImageDriver.RemoveImage for a
// reference the driver does not hold. It crosses the wire as
// codes.NotFound (with this text, which tells it from ErrTaskNotFound).
var ErrImageNotFound = errors.New("image not found")

// ImageDriver is the optional part of a Driver that keeps a cache of
// container images on the node (e.g. the oci driver): the host finds it by
// type assertion on the Driver (a DriverClient always has the methods; a
// plugin that does not serve them answers ErrNotSupported) and reports the
// images to the kernel, which lists them per agent and relays an operator's
// removals.
//
// Both methods are safe for concurrent use with each other and with the
// Driver's methods.
type ImageDriver interface {
	// ListImages returns every image in the driver's cache, in no
	// particular order. It is cheap enough to be called at every
	// heartbeat and has no side effects.
	ListImages(ctx context.Context) ([]*Image, error)

	// RemoveImage deletes the image ref (an Image.Ref as listed) and the
	// layers no other image uses. An image a task still runs is kept and
	// the error wraps ErrConflict; an unknown ref wraps ErrImageNotFound.
	RemoveImage(ctx context.Context, ref string) error
}

// Image is a container image in a driver's cache.
type Image struct {
	// Ref is the reference it was pulled by, e.g.
	// "127.0.0.1:5000/nginx:1.22".
	Ref string
	// Digest is the manifest's digest, "sha256:...".
	Digest string
	// SizeBytes is the unpacked size of its layers on the node (layers
	// shared with other images counted in each).
	SizeBytes int64
	// Tasks is how many of the driver's tasks run it now.
	Tasks int
	// Pulled is when it was pulled; LastUsed when a task last started
	// from it (zero: never).
	Pulled, LastUsed time.Time
}
