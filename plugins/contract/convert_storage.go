package contract

import pluginsv1 "github.com/dcos-kernel/dcos/plugins/contract/proto/v1"

func mountToProto(m *Mount) *pluginsv1.VolumeMount {
	if m == nil {
		return nil
	}
	return &pluginsv1.VolumeMount{ContainerId: m.ContainerID, VolumeId: m.VolumeID, Source: m.Source, Target: m.Target, Path: m.Path, ReadOnly: m.ReadOnly}
}

func mountFromProto(m *pluginsv1.VolumeMount) Mount {
	return Mount{ContainerID: m.GetContainerId(), VolumeID: m.GetVolumeId(), Source: m.GetSource(), Target: m.GetTarget(), Path: m.GetPath(), ReadOnly: m.GetReadOnly()}
}

func sandboxToProto(s *Sandbox) *pluginsv1.Sandbox {
	if s == nil {
		return nil
	}
	pb := &pluginsv1.Sandbox{ContainerId: s.ContainerID, Path: s.Path, SizeBytes: s.SizeBytes, Enforced: s.Enforced}
	for i := range s.Mounts {
		pb.Mounts = append(pb.Mounts, mountToProto(&s.Mounts[i]))
	}
	return pb
}

func sandboxFromProto(s *pluginsv1.Sandbox) Sandbox {
	out := Sandbox{ContainerID: s.GetContainerId(), Path: s.GetPath(), SizeBytes: s.GetSizeBytes(), Enforced: s.GetEnforced()}
	for _, m := range s.GetMounts() {
		out.Mounts = append(out.Mounts, mountFromProto(m))
	}
	return out
}

func volumeToProto(v *Volume) *pluginsv1.Volume {
	if v == nil {
		return nil
	}
	return &pluginsv1.Volume{Id: v.ID, Role: v.Role, Path: v.Path, SizeBytes: v.SizeBytes, Enforced: v.Enforced}
}

func volumeFromProto(v *pluginsv1.Volume) Volume {
	return Volume{ID: v.GetId(), Role: v.GetRole(), Path: v.GetPath(), SizeBytes: v.GetSizeBytes(), Enforced: v.GetEnforced()}
}
