package host

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/dcos-kernel/dcos/plugins/contract"
	"github.com/dcos-kernel/dcos/plugins/host/internal/testplugins/fake"
)

// TestHost_ImageDriver: a driver plugin's proxy is a contract.ImageDriver
// that reaches a plugin serving images through its process, and answers
// ErrNotSupported for one that does not.
func TestHost_ImageDriver(t *testing.T) {
	e := newEnv(t)
	e.install("dcos-driver-oci", true)
	e.install("dcos-driver-plain", true)
	e.setMode("driver", "oci", fake.ModeImages)
	h := e.start(e.config())
	ctx := context.Background()

	oci, err := h.Driver("oci")
	if err != nil {
		t.Fatal(err)
	}
	if caps, err := oci.Capabilities(ctx); err != nil || !caps.Images {
		t.Fatalf("oci Capabilities = %+v, %v; want Images", caps, err)
	}
	im, ok := oci.(contract.ImageDriver)
	if !ok {
		t.Fatalf("driver proxy %T is not a contract.ImageDriver", oci)
	}
	refs := func() []string {
		t.Helper()
		ims, err := im.ListImages(ctx)
		if err != nil {
			t.Fatalf("ListImages: %v", err)
		}
		var out []string
		for _, i := range ims {
			out = append(out, i.Ref)
		}
		slices.Sort(out)
		return out
	}
	if got, want := refs(), []string{fake.ImageBusy, fake.ImageIdle}; !slices.Equal(got, want) {
		t.Errorf("ListImages = %v, want %v", got, want)
	}
	if err := im.RemoveImage(ctx, fake.ImageBusy); !errors.Is(err, contract.ErrConflict) {
		t.Errorf("RemoveImage(busy): err = %v, want ErrConflict", err)
	}
	if err := im.RemoveImage(ctx, fake.ImageIdle); err != nil {
		t.Errorf("RemoveImage(idle): %v", err)
	}
	if err := im.RemoveImage(ctx, fake.ImageIdle); !errors.Is(err, contract.ErrImageNotFound) {
		t.Errorf("RemoveImage(idle) again: err = %v, want ErrImageNotFound", err)
	}
	if got, want := refs(), []string{fake.ImageBusy}; !slices.Equal(got, want) {
		t.Errorf("ListImages after removal = %v, want %v", got, want)
	}

	plain, err := h.Driver("plain")
	if err != nil {
		t.Fatal(err)
	}
	if caps, err := plain.Capabilities(ctx); err != nil || caps.Images {
		t.Errorf("plain Capabilities = %+v, %v; want no Images", caps, err)
	}
	if _, err := plain.(contract.ImageDriver).ListImages(ctx); !errors.Is(err, contract.ErrNotSupported) {
		t.Errorf("plain ListImages: err = %v, want ErrNotSupported", err)
	}
}
