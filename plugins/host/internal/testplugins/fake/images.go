package fake

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// The images of a driver in ModeImages: ImageBusy is used by a task (its
// removal is refused), ImageIdle is not.
const (
	ImageBusy = "127.0.0.1:5000/busy:1"
	ImageIdle = "127.0.0.1:5000/idle:1"
)

// imageDriver is the fake driver with an in-memory image cache.
type imageDriver struct {
	*driver
	mu     sync.Mutex
	images map[string]*contract.Image
}

var _ contract.ImageDriver = (*imageDriver)(nil)

func newImageDriver(d *driver) *imageDriver {
	pulled := time.Unix(1_700_000_000, 0).UTC()
	return &imageDriver{driver: d, images: map[string]*contract.Image{
		ImageBusy: {Ref: ImageBusy, Digest: "sha256:" + fmt.Sprintf("%064d", 1), SizeBytes: 5 << 20, Tasks: 1, Pulled: pulled, LastUsed: pulled},
		ImageIdle: {Ref: ImageIdle, Digest: "sha256:" + fmt.Sprintf("%064d", 2), SizeBytes: 1 << 20, Pulled: pulled},
	}}
}

func (d *imageDriver) ListImages(context.Context) ([]*contract.Image, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*contract.Image, 0, len(d.images))
	for _, im := range d.images {
		cp := *im
		out = append(out, &cp)
	}
	return out, nil
}

func (d *imageDriver) RemoveImage(_ context.Context, ref string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	im, ok := d.images[ref]
	switch {
	case !ok:
		return fmt.Errorf("remove image %s: %w", ref, contract.ErrImageNotFound)
	case im.Tasks > 0:
		return fmt.Errorf("remove image %s: used by %d tasks: %w", ref, im.Tasks, contract.ErrConflict)
	}
	delete(d.images, ref)
	return nil
}
