package agent

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dcos-kernel/dcos/plugins/contract"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

const (
	// imageCallTimeout bounds one ListImages or RemoveImage call to a
	// driver, so that a stuck driver delays a heartbeat by at most this.
	imageCallTimeout = 3 * time.Second
	// imageResend is how often the image list is sent unchanged: the
	// kernel keeps it in memory only, and a kernel that took over from
	// another has none until an agent sends it.
	imageResend = time.Minute
)

// images reports the container images of the agent's image drivers
// (contract.ImageDriver) to the kernel and carries out the removals the
// kernel relays (HeartbeatResponse.remove_images). Its methods are safe
// for concurrent use.
type images struct {
	mu     sync.Mutex
	sent   []*syscallsv1.ImageInfo // last list the kernel acknowledged; nil: send at the next heartbeat
	sentAt time.Time
	// plain are the drivers that answered ErrNotSupported, with their
	// restart count then: they are not asked again until they restart
	// (an upgraded plugin may serve images).
	plain map[string]int32
	// kick wakes the heartbeat loop for an early heartbeat (after a
	// removal, so that the kernel learns the new list at once).
	kick chan struct{}
}

func newImages() *images {
	return &images{plain: map[string]int32{}, kick: make(chan struct{}, 1)}
}

// reset makes the next heartbeat carry the list (after a registration:
// the kernel may be a new one).
func (s *images) reset() {
	s.mu.Lock()
	s.sent = nil
	s.mu.Unlock()
}

// wake asks the heartbeat loop for an early heartbeat.
func (s *images) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// imageDrivers returns, by name, the healthy drivers that may serve
// images.
func (a *Agent) imageDrivers() map[string]contract.ImageDriver {
	out := map[string]contract.ImageDriver{}
	for _, p := range a.plugins.Info() {
		if p.GetKind() != contract.KindDriver || p.GetHealth() != "healthy" {
			continue
		}
		a.images.mu.Lock()
		restarts, plain := a.images.plain[p.GetName()]
		a.images.mu.Unlock()
		if plain && restarts == p.GetRestarts() {
			continue
		}
		drv, err := a.plugins.Driver(p.GetName())
		if err != nil {
			continue
		}
		if im, ok := drv.(contract.ImageDriver); ok {
			out[p.GetName()] = im
		}
	}
	return out
}

// listImages returns every image of every image driver, sorted by driver
// and reference, and false if a driver failed to answer (the list would
// then be short of its images: better not send it).
func (a *Agent) listImages(ctx context.Context) ([]*syscallsv1.ImageInfo, bool) {
	restarts := map[string]int32{}
	for _, p := range a.plugins.Info() {
		restarts[p.GetName()] = p.GetRestarts()
	}
	list := []*syscallsv1.ImageInfo{}
	complete := true
	for name, drv := range a.imageDrivers() {
		cctx, cancel := context.WithTimeout(ctx, imageCallTimeout)
		ims, err := drv.ListImages(cctx)
		cancel()
		switch {
		case errors.Is(err, contract.ErrNotSupported):
			a.images.mu.Lock()
			a.images.plain[name] = restarts[name]
			a.images.mu.Unlock()
			continue
		case err != nil:
			a.log.Warn("list images failed; the kernel keeps the last list", "driver", name, "err", err)
			complete = false
			continue
		}
		for _, im := range ims {
			if im == nil {
				continue
			}
			list = append(list, &syscallsv1.ImageInfo{
				Ref: im.Ref, Digest: im.Digest, SizeBytes: im.SizeBytes, Tasks: int32(min(im.Tasks, 1<<31-1)),
				Driver: name, Pulled: stamp(im.Pulled), LastUsed: stamp(im.LastUsed),
			})
		}
	}
	slices.SortFunc(list, func(x, y *syscallsv1.ImageInfo) int {
		return cmp.Or(cmp.Compare(x.GetDriver(), y.GetDriver()), cmp.Compare(x.GetRef(), y.GetRef()))
	})
	return list, complete
}

func stamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// imagesForHeartbeat returns the image list to send with the next
// heartbeat: the drivers' list when it differs from the one last sent,
// when none was sent since the last registration, or when imageResend has
// passed; nil otherwise. Call imagesSent once the kernel took it.
func (a *Agent) imagesForHeartbeat(ctx context.Context) *syscallsv1.ImageList {
	list, complete := a.listImages(ctx)
	if !complete {
		return nil
	}
	a.images.mu.Lock()
	defer a.images.mu.Unlock()
	if a.images.sent != nil && time.Since(a.images.sentAt) < imageResend && slices.EqualFunc(list, a.images.sent, func(x, y *syscallsv1.ImageInfo) bool { return proto.Equal(x, y) }) {
		return nil
	}
	return &syscallsv1.ImageList{Images: list}
}

// imagesSent records that the kernel took l (nil: nothing was sent).
func (a *Agent) imagesSent(l *syscallsv1.ImageList) {
	if l == nil {
		return
	}
	a.images.mu.Lock()
	a.images.sent, a.images.sentAt = l.GetImages(), time.Now()
	a.images.mu.Unlock()
}

// removeImages deletes each of refs (a reference or a manifest digest, as
// an operator named it to RemoveImage) from every image driver that lists
// it, by the references the driver lists. An image a task uses is kept
// (the driver refuses it with ErrConflict): that is logged, not an error;
// the image stays in the next list, which tells the operator. It then
// asks for an early heartbeat with the new list.
func (a *Agent) removeImages(ctx context.Context, refs []string) {
	defer a.images.wake()
	drivers := a.imageDrivers()
	for _, want := range refs {
		found := false
		for name, drv := range drivers {
			cctx, cancel := context.WithTimeout(ctx, imageCallTimeout)
			ims, err := drv.ListImages(cctx)
			cancel()
			if err != nil {
				if !errors.Is(err, contract.ErrNotSupported) {
					a.log.Warn("remove image: list images failed", "driver", name, "image", want, "err", err)
				}
				continue
			}
			for _, im := range ims {
				if im == nil || (im.Ref != want && im.Digest != want) {
					continue
				}
				found = true
				cctx, cancel := context.WithTimeout(ctx, imageCallTimeout)
				err := drv.RemoveImage(cctx, im.Ref)
				cancel()
				switch {
				case err == nil:
					a.log.Info("image removed", "driver", name, "image", im.Ref, "digest", im.Digest)
				case errors.Is(err, contract.ErrConflict):
					a.log.Info("image in use by a task; kept", "driver", name, "image", im.Ref, "err", err)
				case errors.Is(err, contract.ErrImageNotFound):
					// Gone in between: what was asked.
				default:
					a.log.Warn("remove image failed", "driver", name, "image", im.Ref, "err", err)
				}
			}
		}
		if !found {
			a.log.Info("remove image: no driver has it", "image", want)
		}
	}
}

// sleepOrKick waits d, or less if kick fires (a nil kick never does);
// false if ctx ended first.
func sleepOrKick(ctx context.Context, d time.Duration, kick <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-kick:
	}
	return true
}
