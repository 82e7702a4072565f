package plugin

import "github.com/dcos-kernel/dcos/plugins/contract"

// ImageDriver is the optional part of a Driver that keeps container images:
// a driver that implements it too is served as one (the agent lists its
// images to the kernel and relays an operator's removals; see
// contract.ImageDriver and docs/plugins.md, "Image drivers").
type ImageDriver = contract.ImageDriver

// Image is a container image in an ImageDriver's cache.
type Image = contract.Image

// ErrImageNotFound is what RemoveImage returns (wrapped) for a reference
// the driver does not hold; an image a task still uses is ErrConflict.
var ErrImageNotFound = contract.ErrImageNotFound
