package contract

import (
	"context"

	pluginsv1 "github.com/dcos-kernel/dcos/plugins/contract/proto/v1"
)

// imageServer serves an ImageDriver over gRPC, mapping the contract's
// sentinels to gRPC codes. DriverPlugin registers it only for a Driver that
// is an ImageDriver; otherwise gRPC answers Unimplemented.
type imageServer struct {
	pluginsv1.UnimplementedImageDriverServer
	impl ImageDriver
}

var _ pluginsv1.ImageDriverServer = (*imageServer)(nil)

func (s *imageServer) ListImages(ctx context.Context, _ *pluginsv1.ListImagesRequest) (*pluginsv1.ListImagesResponse, error) {
	ims, err := s.impl.ListImages(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &pluginsv1.ListImagesResponse{Images: make([]*pluginsv1.Image, 0, len(ims))}
	for _, im := range ims {
		if im != nil {
			resp.Images = append(resp.Images, imageToProto(im))
		}
	}
	return resp, nil
}

func (s *imageServer) RemoveImage(ctx context.Context, req *pluginsv1.RemoveImageRequest) (*pluginsv1.RemoveImageResponse, error) {
	err := s.impl.RemoveImage(ctx, req.GetRef())
	return &pluginsv1.RemoveImageResponse{}, toStatus(err)
}
