package kernel

import (
	"context"
	"fmt"
	"slices"
	"unicode"

	"google.golang.org/protobuf/proto"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Bounds on images (issue 14): what an agent may report and what may wait
// for it.
const (
	MaxImages        = 4096 // images an agent reports
	MaxImageRef      = 512  // bytes of an image reference or digest
	MaxImageRemovals = 256  // removals queued for one agent
)

// validateImageRef checks an image reference or digest named by field:
// non-empty, at most MaxImageRef bytes, valid UTF-8 without NUL, spaces
// or other control characters.
func validateImageRef(field, ref string) error {
	if ref == "" {
		return fieldError(field, "required")
	}
	if len(ref) > MaxImageRef {
		return fieldError(field, "at most %d bytes, got %d", MaxImageRef, len(ref))
	}
	for i, r := range ref {
		if r == unicode.ReplacementChar || r == 0 || unicode.IsSpace(r) || unicode.IsControl(r) {
			return fieldError(field, "must have no whitespace, NUL or control character, got %q at byte %d", r, i)
		}
	}
	return nil
}

// validateImages checks the image list an agent reports.
func validateImages(l *pb.ImageList) error {
	ims := l.GetImages()
	if len(ims) > MaxImages {
		return fieldError("images", "at most %d, got %d", MaxImages, len(ims))
	}
	for i, im := range ims {
		f := fmt.Sprintf("images.images[%d]", i)
		if err := validateImageRef(f+".ref", im.GetRef()); err != nil {
			return err
		}
		if d := im.GetDigest(); d != "" {
			if err := validateImageRef(f+".digest", d); err != nil {
				return err
			}
		}
		if len(im.GetDriver()) > MaxStringLen {
			return fieldError(f+".driver", "longer than %d", MaxStringLen)
		}
		if im.GetSizeBytes() < 0 || im.GetTasks() < 0 {
			return fieldError(f, "size_bytes and tasks must not be negative, got %d and %d", im.GetSizeBytes(), im.GetTasks())
		}
	}
	return nil
}

// imageMatches reports whether im is the image ref names: by reference or
// by manifest digest.
func imageMatches(im *pb.ImageInfo, ref string) bool {
	return im.GetRef() == ref || (im.GetDigest() != "" && im.GetDigest() == ref)
}

// RemoveImage queues the removal of req.Ref (a reference or a manifest
// digest) for the agents that report it: req.AgentId's only, or every
// agent's when it is empty. The agents get it in their next
// HeartbeatResponse (TakeImageRemovals), once. Only operators may; an
// unknown agent is NotFound; an agent that does not report the image gets
// nothing. It answers the agents the removal was queued for, sorted. A
// removal already queued for an agent is not queued twice; an agent with
// MaxImageRemovals queued is ResourceExhausted.
func (t *Table) RemoveImage(p Principal, req *pb.RemoveImageRequest) (*pb.RemoveImageResponse, error) {
	if p.Role != RoleOperator {
		return nil, errorf(PermissionDenied, "remove image: operators only, not %s %q", p.Role, p.Name)
	}
	ref := req.GetRef()
	if err := validateImageRef("ref", ref); err != nil {
		return nil, err
	}
	only := req.GetAgentId()
	if only != "" {
		if err := validateName("agent_id", only, false); err != nil {
			return nil, err
		}
		if t.agents[only] == nil {
			return nil, errorf(NotFound, "agent_id: no agent %q", clip(only))
		}
	}
	var ids []string
	t.memMu.Lock()
	defer t.memMu.Unlock()
	for id, ims := range t.images {
		if only != "" && id != only {
			continue
		}
		if slices.ContainsFunc(ims, func(im *pb.ImageInfo) bool { return imageMatches(im, ref) }) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		if q := t.removals[id]; !slices.Contains(q, ref) && len(q) >= MaxImageRemovals {
			return nil, errorf(ResourceExhausted, "agent_id: agent %q already has %d image removals waiting for its next heartbeat", id, len(q))
		}
	}
	for _, id := range ids {
		if !slices.Contains(t.removals[id], ref) {
			t.removals[id] = append(t.removals[id], ref)
		}
	}
	return &pb.RemoveImageResponse{AgentIds: ids}, nil
}

// TakeImageRemovals returns the image removals queued for agent id, in
// the order they were asked, and forgets them: each is delivered once.
func (t *Table) TakeImageRemovals(id string) []string {
	t.memMu.Lock()
	defer t.memMu.Unlock()
	q := t.removals[id]
	delete(t.removals, id)
	return q
}

// setImages replaces agent id's image list (memory only, like its
// plugins). The caller holds memMu.
func (t *Table) setImages(id string, l *pb.ImageList) {
	ims := make([]*pb.ImageInfo, 0, len(l.GetImages()))
	for _, im := range l.GetImages() {
		ims = append(ims, proto.Clone(im).(*pb.ImageInfo))
	}
	t.images[id] = ims
}

// RemoveImage asks the agents that report an image to delete it (see
// Table.RemoveImage); it does not touch the store: the removals wait in
// memory for the agents' next heartbeats.
func (k *Kernel) RemoveImage(_ context.Context, p Principal, req *pb.RemoveImageRequest) (*pb.RemoveImageResponse, error) {
	var resp *pb.RemoveImageResponse
	var err error
	k.view.read(func(t *Table) { resp, err = t.RemoveImage(p, req) })
	return resp, err
}
