package fake

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// storageDriver is an in-memory storage driver: it remembers sandboxes and
// volumes, placed (on paper) under its state directory, and creates no
// directory and mounts nothing. Sizes are not enforced. Its state dies with
// the process.
type storageDriver struct {
	stateDir string

	mu        sync.Mutex
	sandboxes map[string]*contract.Sandbox
	volumes   map[string]contract.Volume
}

var _ contract.StorageDriver = (*storageDriver)(nil)

func newStorageDriver(stateDir string) *storageDriver {
	return &storageDriver{stateDir: stateDir, sandboxes: map[string]*contract.Sandbox{}, volumes: map[string]contract.Volume{}}
}

func (s *storageDriver) PrepareSandbox(_ context.Context, id string, size int64) (*contract.Sandbox, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sandboxes[id]; ok {
		return nil, fmt.Errorf("prepare sandbox %s: already prepared: %w", id, contract.ErrConflict)
	}
	sb := &contract.Sandbox{ContainerID: id, Path: filepath.Join(s.stateDir, "sandboxes", id), SizeBytes: size}
	s.sandboxes[id] = sb
	out := *sb
	return &out, nil
}

func (s *storageDriver) CleanupSandbox(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sandboxes, id)
	return nil
}

func (s *storageDriver) CreateVolume(_ context.Context, req contract.VolumeRequest) (*contract.Volume, error) {
	if req.SizeBytes <= 0 {
		return nil, fmt.Errorf("create volume %s: size %d: want a positive size", req.ID, req.SizeBytes)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.volumes[req.ID]; ok {
		if v.Role != req.Role || v.SizeBytes != req.SizeBytes {
			return nil, fmt.Errorf("create volume %s: exists with role %q and size %d: %w", req.ID, v.Role, v.SizeBytes, contract.ErrConflict)
		}
		return &v, nil
	}
	v := contract.Volume{ID: req.ID, Role: req.Role, Path: filepath.Join(s.stateDir, "volumes", req.ID), SizeBytes: req.SizeBytes}
	s.volumes[req.ID] = v
	return &v, nil
}

func (s *storageDriver) DestroyVolume(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sb := range s.sandboxes {
		for _, m := range sb.Mounts {
			if m.VolumeID == id {
				return fmt.Errorf("destroy volume %s: mounted in %s: %w", id, sb.ContainerID, contract.ErrConflict)
			}
		}
	}
	delete(s.volumes, id)
	return nil
}

func (s *storageDriver) ListVolumes(context.Context) ([]contract.Volume, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]contract.Volume, 0, len(s.volumes))
	for _, v := range s.volumes {
		out = append(out, v)
	}
	return out, nil
}

func (s *storageDriver) Mount(_ context.Context, req contract.MountRequest) (*contract.Mount, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sb, ok := s.sandboxes[req.ContainerID]
	if !ok {
		return nil, fmt.Errorf("mount: sandbox %q: %w", req.ContainerID, contract.ErrTaskNotFound)
	}
	src := req.HostPath
	if req.VolumeID != "" {
		v, ok := s.volumes[req.VolumeID]
		if !ok {
			return nil, fmt.Errorf("mount: volume %q: %w", req.VolumeID, contract.ErrTaskNotFound)
		}
		src = v.Path
	}
	for _, m := range sb.Mounts {
		if m.Target == req.Target {
			return nil, fmt.Errorf("mount: %s in %s: %w", req.Target, req.ContainerID, contract.ErrConflict)
		}
	}
	m := contract.Mount{
		ContainerID: req.ContainerID, VolumeID: req.VolumeID, Source: src,
		Target: req.Target, Path: filepath.Join(sb.Path, req.Target), ReadOnly: req.ReadOnly,
	}
	sb.Mounts = append(sb.Mounts, m)
	return &m, nil
}

func (s *storageDriver) Unmount(_ context.Context, id, target string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sb, ok := s.sandboxes[id]; ok {
		for i, m := range sb.Mounts {
			if m.Target == target {
				sb.Mounts = append(sb.Mounts[:i], sb.Mounts[i+1:]...)
				break
			}
		}
	}
	return nil
}

func (s *storageDriver) Recover(_ context.Context, sandboxes []contract.Sandbox) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sb := range sandboxes {
		if _, ok := s.sandboxes[sb.ContainerID]; !ok {
			s.sandboxes[sb.ContainerID] = &sb
		}
	}
	return nil
}
