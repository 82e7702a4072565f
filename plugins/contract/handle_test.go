package contract

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMarshalHandle_RoundTrip(t *testing.T) {
	h := &TaskHandle{
		Version: HandleVersion,
		Config: &TaskConfig{ID: "t1", Name: "web", Command: "sleep", Args: []string{"30"},
			Env: map[string]string{"A": "b"}, Resources: Resources{CPUs: 0.5, MemBytes: 64 << 20},
			Isolation: &TaskIsolation{UID: 1900000000, GID: 1900000000, HiddenPaths: []string{"/data"}, Sandbox: "/data/sandboxes/t1"}},
		State:       TaskStateRunning,
		DriverState: []byte(`{"pid":42}`),
	}
	b, err := MarshalHandle(h)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalHandle(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(h, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestUnmarshalHandle_Invalid(t *testing.T) {
	noID, _ := MarshalHandle(&TaskHandle{Version: 1, Config: &TaskConfig{}})
	noVersion, _ := MarshalHandle(&TaskHandle{Config: &TaskConfig{ID: "t1"}})
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"garbage", []byte{0xff, 0xff, 0xff}},
		{"no task id", noID},
		{"no version", noVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if h, err := UnmarshalHandle(tt.in); err == nil {
				t.Errorf("UnmarshalHandle = %+v, want error", h)
			}
		})
	}
}

// FuzzUnmarshalHandle checks that a checkpoint never panics the decoder and
// that what decodes re-encodes to the same handle.
func FuzzUnmarshalHandle(f *testing.F) {
	seed, _ := MarshalHandle(&TaskHandle{Version: 1, Config: &TaskConfig{ID: "t1", Command: "sleep"}, State: TaskStateRunning, DriverState: []byte("x")})
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := UnmarshalHandle(b)
		if err != nil {
			return
		}
		b2, err := MarshalHandle(h)
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		h2, err := UnmarshalHandle(b2)
		if err != nil {
			t.Fatalf("re-unmarshal: %v", err)
		}
		if diff := cmp.Diff(h, h2); diff != "" {
			t.Errorf("re-decode differs (-first +second):\n%s", diff)
		}
	})
}
