package contract

import (
	"context"

	pluginsv1 "github.com/dcos-kernel/dcos/plugins/contract/proto/v1"
)

var _ ImageDriver = (*DriverClient)(nil)

// ListImages implements ImageDriver. A plugin that does not serve the
// ImageDriver service returns an error wrapping ErrNotSupported.
func (c *DriverClient) ListImages(ctx context.Context) ([]*Image, error) {
	resp, err := c.images.ListImages(ctx, &pluginsv1.ListImagesRequest{})
	if err != nil {
		return nil, fromStatus(c.done, "list images", err)
	}
	out := make([]*Image, 0, len(resp.GetImages()))
	for _, im := range resp.GetImages() {
		out = append(out, imageFromProto(im))
	}
	return out, nil
}

// RemoveImage implements ImageDriver. A plugin that does not serve the
// ImageDriver service returns an error wrapping ErrNotSupported.
func (c *DriverClient) RemoveImage(ctx context.Context, ref string) error {
	_, err := c.images.RemoveImage(ctx, &pluginsv1.RemoveImageRequest{Ref: ref})
	return fromStatus(c.done, "remove image", err)
}
