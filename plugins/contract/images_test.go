package contract

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// imageDriver is fakeDriver with an image cache: the glue's test of the
// optional ImageDriver.
type imageDriver struct {
	fakeDriver
	mu     sync.Mutex
	images map[string]*Image
}

var _ ImageDriver = (*imageDriver)(nil)

func (d *imageDriver) ListImages(context.Context) ([]*Image, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*Image
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
		return fmt.Errorf("remove image %q: %w", ref, ErrImageNotFound)
	case im.Tasks > 0:
		return fmt.Errorf("remove image %q: %d tasks use it: %w", ref, im.Tasks, ErrConflict)
	}
	delete(d.images, ref)
	return nil
}

func TestImageDriver_RoundTrip(t *testing.T) {
	ctx := context.Background()
	pulled := time.Unix(1000, 0).UTC()
	web := &Image{Ref: "127.0.0.1:5000/web:1", Digest: "sha256:aa", SizeBytes: 1 << 20, Tasks: 2, Pulled: pulled, LastUsed: pulled.Add(time.Minute)}
	old := &Image{Ref: "127.0.0.1:5000/old:1", Digest: "sha256:bb", SizeBytes: 4096, Pulled: pulled}
	impl := &imageDriver{fakeDriver: fakeDriver{tasks: map[string]*TaskConfig{}}, images: map[string]*Image{web.Ref: web, old.Ref: old}}
	d := dispense(t, KindDriver, &DriverPlugin{Impl: impl}).(Driver)

	caps, err := d.Capabilities(ctx)
	if err != nil || !caps.Images {
		t.Fatalf("Capabilities = %+v, %v; want Images set by the server", caps, err)
	}
	im, ok := d.(ImageDriver)
	if !ok {
		t.Fatalf("dispensed %T is not an ImageDriver", d)
	}
	got, err := im.ListImages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byRef := map[string]*Image{}
	for _, g := range got {
		byRef[g.Ref] = g
	}
	if diff := cmp.Diff(map[string]*Image{web.Ref: web, old.Ref: old}, byRef); diff != "" {
		t.Errorf("ListImages (-want +got):\n%s", diff)
	}

	tests := []struct {
		name string
		ref  string
		want error
	}{
		{"in use", web.Ref, ErrConflict},
		{"unknown", "127.0.0.1:5000/nope:1", ErrImageNotFound},
		{"unused", old.Ref, nil},
		{"removed twice", old.Ref, ErrImageNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := im.RemoveImage(ctx, tt.ref)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("RemoveImage(%q) = %v, want %v", tt.ref, err, tt.want)
			}
			if errors.Is(err, ErrImageNotFound) && errors.Is(err, ErrTaskNotFound) {
				t.Errorf("RemoveImage(%q) = %v: matches ErrTaskNotFound too", tt.ref, err)
			}
		})
	}
	if got, _ := im.ListImages(ctx); len(got) != 1 || got[0].Ref != web.Ref {
		t.Errorf("ListImages after removal = %v, want only %s", got, web.Ref)
	}
}

// A driver that is not an ImageDriver: the client's image calls answer
// ErrNotSupported and Capabilities.Images is false, even if the driver
// claims it.
type claimingDriver struct{ fakeDriver }

func (d *claimingDriver) Capabilities(context.Context) (*Capabilities, error) {
	return &Capabilities{Images: true}, nil
}

func TestImageDriver_NotSupported(t *testing.T) {
	ctx := context.Background()
	d := dispense(t, KindDriver, &DriverPlugin{Impl: &claimingDriver{fakeDriver{tasks: map[string]*TaskConfig{}}}}).(Driver)
	if caps, err := d.Capabilities(ctx); err != nil || caps.Images {
		t.Errorf("Capabilities = %+v, %v; want Images false", caps, err)
	}
	im := d.(ImageDriver)
	if _, err := im.ListImages(ctx); !errors.Is(err, ErrNotSupported) {
		t.Errorf("ListImages: err = %v, want ErrNotSupported", err)
	}
	if err := im.RemoveImage(ctx, "x"); !errors.Is(err, ErrNotSupported) {
		t.Errorf("RemoveImage: err = %v, want ErrNotSupported", err)
	}
}
