package contract

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"

	pluginsv1 "github.com/dcos-kernel/dcos/plugins/contract/proto/v1"
)

// fakeStorage is an in-memory StorageDriver for testing the glue, with a
// disk of capacity bytes.
type fakeStorage struct {
	mu        sync.Mutex
	capacity  int64
	sandboxes map[string]*Sandbox
	volumes   map[string]*Volume
	recovered []Sandbox
}

var _ StorageDriver = (*fakeStorage)(nil)

func newFakeStorage(capacity int64) *fakeStorage {
	return &fakeStorage{capacity: capacity, sandboxes: map[string]*Sandbox{}, volumes: map[string]*Volume{}}
}

func (s *fakeStorage) reserve(size int64) error {
	if size > s.capacity {
		return fmt.Errorf("%d bytes, %d free: %w", size, s.capacity, ErrExhausted)
	}
	s.capacity -= size
	return nil
}

func (s *fakeStorage) PrepareSandbox(_ context.Context, id string, size int64) (*Sandbox, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sandboxes[id]; ok {
		return nil, fmt.Errorf("sandbox %q: already prepared: %w", id, ErrConflict)
	}
	if err := s.reserve(size); err != nil {
		return nil, fmt.Errorf("sandbox %q: %w", id, err)
	}
	sb := &Sandbox{ContainerID: id, Path: "/var/lib/dcos/sandboxes/" + id, SizeBytes: size, Enforced: true}
	s.sandboxes[id] = sb
	return sb, nil
}

func (s *fakeStorage) CleanupSandbox(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sb, ok := s.sandboxes[id]; ok {
		s.capacity += sb.SizeBytes
		delete(s.sandboxes, id)
	}
	return nil
}

func (s *fakeStorage) CreateVolume(_ context.Context, req VolumeRequest) (*Volume, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.volumes[req.ID]; ok {
		if v.Role != req.Role || v.SizeBytes != req.SizeBytes {
			return nil, fmt.Errorf("volume %q: exists for role %q, %d bytes: %w", req.ID, v.Role, v.SizeBytes, ErrConflict)
		}
		return v, nil
	}
	if err := s.reserve(req.SizeBytes); err != nil {
		return nil, fmt.Errorf("volume %q: %w", req.ID, err)
	}
	v := &Volume{ID: req.ID, Role: req.Role, Path: "/var/lib/dcos/volumes/" + req.ID, SizeBytes: req.SizeBytes, Enforced: true}
	s.volumes[req.ID] = v
	return v, nil
}

func (s *fakeStorage) mountedLocked(volumeID string) bool {
	for _, sb := range s.sandboxes {
		for _, m := range sb.Mounts {
			if m.VolumeID == volumeID {
				return true
			}
		}
	}
	return false
}

func (s *fakeStorage) DestroyVolume(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.volumes[id]
	if !ok {
		return nil
	}
	if s.mountedLocked(id) {
		return fmt.Errorf("volume %q: mounted: %w", id, ErrConflict)
	}
	s.capacity += v.SizeBytes
	delete(s.volumes, id)
	return nil
}

func (s *fakeStorage) ListVolumes(context.Context) ([]Volume, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var vs []Volume
	for _, v := range s.volumes {
		vs = append(vs, *v)
	}
	return vs, nil
}

func (s *fakeStorage) Mount(_ context.Context, req MountRequest) (*Mount, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sb, ok := s.sandboxes[req.ContainerID]
	if !ok {
		return nil, fmt.Errorf("sandbox %q: %w", req.ContainerID, ErrTaskNotFound)
	}
	src := req.HostPath
	if req.VolumeID != "" {
		v, ok := s.volumes[req.VolumeID]
		if !ok {
			return nil, fmt.Errorf("volume %q: %w", req.VolumeID, ErrTaskNotFound)
		}
		src = v.Path
	}
	for _, m := range sb.Mounts {
		if m.Target == req.Target {
			return nil, fmt.Errorf("mount %q: target taken: %w", req.Target, ErrConflict)
		}
	}
	m := Mount{ContainerID: req.ContainerID, VolumeID: req.VolumeID, Source: src, Target: req.Target, Path: path.Join(sb.Path, req.Target), ReadOnly: req.ReadOnly}
	sb.Mounts = append(sb.Mounts, m)
	return &m, nil
}

func (s *fakeStorage) Unmount(_ context.Context, id, target string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sb, ok := s.sandboxes[id]
	if !ok {
		return nil
	}
	for i, m := range sb.Mounts {
		if m.Target == target {
			sb.Mounts = append(sb.Mounts[:i], sb.Mounts[i+1:]...)
			break
		}
	}
	return nil
}

func (s *fakeStorage) Recover(_ context.Context, sbs []Sandbox) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recovered = sbs
	return nil
}

func TestStorageClient_RoundTrip(t *testing.T) {
	ctx := context.Background()
	impl := newFakeStorage(10 << 30)
	st := dispense(t, KindStorage, &StoragePlugin{Impl: impl}).(StorageDriver)

	sb, err := st.PrepareSandbox(ctx, "c1", 1<<30)
	if err != nil {
		t.Fatalf("PrepareSandbox: %v", err)
	}
	if want := (&Sandbox{ContainerID: "c1", Path: "/var/lib/dcos/sandboxes/c1", SizeBytes: 1 << 30, Enforced: true}); !cmp.Equal(want, sb) {
		t.Errorf("PrepareSandbox = %+v, want %+v", sb, want)
	}
	req := VolumeRequest{ID: "v1", Role: "db", SizeBytes: 2 << 30}
	v, err := st.CreateVolume(ctx, req)
	if err != nil {
		t.Fatalf("CreateVolume: %v", err)
	}
	wantVol := &Volume{ID: "v1", Role: "db", Path: "/var/lib/dcos/volumes/v1", SizeBytes: 2 << 30, Enforced: true}
	if diff := cmp.Diff(wantVol, v); diff != "" {
		t.Errorf("CreateVolume (-want +got):\n%s", diff)
	}
	// CreateVolume is idempotent for the same request.
	if again, err := st.CreateVolume(ctx, req); err != nil || !cmp.Equal(wantVol, again) {
		t.Errorf("CreateVolume again = %+v, %v", again, err)
	}
	if vs, err := st.ListVolumes(ctx); err != nil || !cmp.Equal([]Volume{*wantVol}, vs) {
		t.Errorf("ListVolumes = %+v, %v", vs, err)
	}
	m, err := st.Mount(ctx, MountRequest{ContainerID: "c1", VolumeID: "v1", Target: "data"})
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	wantMount := &Mount{ContainerID: "c1", VolumeID: "v1", Source: "/var/lib/dcos/volumes/v1", Target: "data", Path: "/var/lib/dcos/sandboxes/c1/data"}
	if diff := cmp.Diff(wantMount, m); diff != "" {
		t.Errorf("Mount (-want +got):\n%s", diff)
	}
	hm, err := st.Mount(ctx, MountRequest{ContainerID: "c1", HostPath: "/etc/ssl/certs", Target: "certs", ReadOnly: true})
	if err != nil || hm.Source != "/etc/ssl/certs" || !hm.ReadOnly || hm.VolumeID != "" {
		t.Errorf("Mount(host path) = %+v, %v", hm, err)
	}
	sb.Mounts = []Mount{*wantMount, *hm}
	if err := st.Recover(ctx, []Sandbox{*sb}); err != nil {
		t.Errorf("Recover: %v", err)
	}
	if diff := cmp.Diff([]Sandbox{*sb}, impl.recovered); diff != "" {
		t.Errorf("recovered (-sent +received):\n%s", diff)
	}
	// The teardowns are idempotent.
	for range 2 {
		if err := st.Unmount(ctx, "c1", "data"); err != nil {
			t.Errorf("Unmount: %v", err)
		}
	}
	if err := st.Unmount(ctx, "nope", "data"); err != nil {
		t.Errorf("Unmount(unknown container): %v", err)
	}
	for range 2 {
		if err := st.CleanupSandbox(ctx, "c1"); err != nil {
			t.Errorf("CleanupSandbox: %v", err)
		}
		if err := st.DestroyVolume(ctx, "v1"); err != nil {
			t.Errorf("DestroyVolume: %v", err)
		}
	}
	if vs, err := st.ListVolumes(ctx); err != nil || len(vs) != 0 {
		t.Errorf("ListVolumes after destroy = %+v, %v", vs, err)
	}
}

func TestStorageClient_Errors(t *testing.T) {
	ctx := context.Background()
	st := dispense(t, KindStorage, &StoragePlugin{Impl: newFakeStorage(4 << 30)}).(StorageDriver)
	if _, err := st.PrepareSandbox(ctx, "c1", 1<<30); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateVolume(ctx, VolumeRequest{ID: "v1", Role: "db", SizeBytes: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Mount(ctx, MountRequest{ContainerID: "c1", VolumeID: "v1", Target: "data"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"prepare twice", func() error { _, err := st.PrepareSandbox(ctx, "c1", 0); return err }, ErrConflict},
		{"sandbox too big", func() error { _, err := st.PrepareSandbox(ctx, "c2", 8<<30); return err }, ErrExhausted},
		{"volume too big", func() error {
			_, err := st.CreateVolume(ctx, VolumeRequest{ID: "v2", Role: "db", SizeBytes: 8 << 30})
			return err
		}, ErrExhausted},
		{"volume reused with another size", func() error {
			_, err := st.CreateVolume(ctx, VolumeRequest{ID: "v1", Role: "db", SizeBytes: 2 << 30})
			return err
		}, ErrConflict},
		{"destroy mounted volume", func() error { return st.DestroyVolume(ctx, "v1") }, ErrConflict},
		{"mount target taken", func() error {
			_, err := st.Mount(ctx, MountRequest{ContainerID: "c1", HostPath: "/tmp", Target: "data"})
			return err
		}, ErrConflict},
		{"mount into unknown sandbox", func() error {
			_, err := st.Mount(ctx, MountRequest{ContainerID: "nope", VolumeID: "v1", Target: "data"})
			return err
		}, ErrTaskNotFound},
		{"mount unknown volume", func() error {
			_, err := st.Mount(ctx, MountRequest{ContainerID: "c1", VolumeID: "nope", Target: "other"})
			return err
		}, ErrTaskNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestStorageClient_PluginExited(t *testing.T) {
	ctx := context.Background()
	conn, srv := serveUnix(t, func(s *grpc.Server) {
		pluginsv1.RegisterStorageDriverServer(s, &storageServer{impl: newFakeStorage(1 << 30)})
	})
	st := NewStorageClient(ctx, conn)
	if _, err := st.ListVolumes(ctx); err != nil {
		t.Fatalf("ListVolumes: %v", err)
	}
	srv.Stop()
	if err := st.CleanupSandbox(ctx, "c1"); !errors.Is(err, ErrPluginExited) {
		t.Errorf("CleanupSandbox after the server stopped: err = %v, want ErrPluginExited", err)
	}
}

func TestFromStatus_ResourceExhaustedFromGRPC(t *testing.T) {
	// gRPC's own ResourceExhausted (a message over the size limit) is not
	// a plugin's ErrExhausted.
	conn, _ := serveUnix(t, func(s *grpc.Server) {
		pluginsv1.RegisterStorageDriverServer(s, &storageServer{impl: newFakeStorage(1 << 30)})
	})
	st := NewStorageClient(context.Background(), conn)
	big := make([]byte, 5<<20) // over the server's 4 MiB default
	_, err := st.PrepareSandbox(context.Background(), string(big), 0)
	if err == nil || errors.Is(err, ErrExhausted) {
		t.Errorf("oversized request: err = %v, want an error that is not ErrExhausted", err)
	}
}
