package contract

import (
	"math"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pluginsv1 "github.com/dcos-kernel/dcos/plugins/contract/proto/v1"
)

func capabilitiesToProto(c *Capabilities) *pluginsv1.DriverCapabilities {
	if c == nil {
		return nil
	}
	return &pluginsv1.DriverCapabilities{SendSignals: c.SendSignals, FsIsolation: string(c.FSIsolation), RecoverTasks: c.RecoverTasks, JoinCgroups: c.JoinCgroups, JoinNetns: c.JoinNetns, Isolation: c.Isolation, Images: c.Images, Exec: c.Exec}
}

func capabilitiesFromProto(c *pluginsv1.DriverCapabilities) *Capabilities {
	return &Capabilities{SendSignals: c.GetSendSignals(), FSIsolation: FSIsolation(c.GetFsIsolation()), RecoverTasks: c.GetRecoverTasks(), JoinCgroups: c.GetJoinCgroups(), JoinNetns: c.GetJoinNetns(), Isolation: c.GetIsolation(), Images: c.GetImages(), Exec: c.GetExec()}
}

func resourcesToProto(r Resources) *pluginsv1.Resources {
	return &pluginsv1.Resources{Cpus: r.CPUs, MemBytes: r.MemBytes, Pids: r.PIDs, CpuIdle: r.CPUIdle, Cpuset: r.CPUSet}
}

func resourcesFromProto(r *pluginsv1.Resources) Resources {
	return Resources{CPUs: r.GetCpus(), MemBytes: r.GetMemBytes(), PIDs: r.GetPids(), CPUIdle: r.GetCpuIdle(), CPUSet: r.GetCpuset()}
}

func taskConfigToProto(c *TaskConfig) *pluginsv1.TaskConfig {
	if c == nil {
		return nil
	}
	return &pluginsv1.TaskConfig{
		Id: c.ID, Name: c.Name, Command: c.Command, Args: c.Args, Env: c.Env,
		WorkDir: c.WorkDir, User: c.User, Resources: resourcesToProto(c.Resources),
		DriverConfig: c.DriverConfig, Cgroups: c.Cgroups, StdoutPath: c.StdoutPath, StderrPath: c.StderrPath, Netns: c.Netns,
		Isolation:   isolationToProto(c.Isolation),
		LogMaxBytes: c.LogMaxBytes, LogMaxFiles: int32(min(max(c.LogMaxFiles, math.MinInt32), math.MaxInt32)),
	}
}

func taskConfigFromProto(c *pluginsv1.TaskConfig) *TaskConfig {
	if c == nil {
		return nil
	}
	return &TaskConfig{
		ID: c.GetId(), Name: c.GetName(), Command: c.GetCommand(), Args: c.GetArgs(), Env: c.GetEnv(),
		WorkDir: c.GetWorkDir(), User: c.GetUser(), Resources: resourcesFromProto(c.GetResources()),
		DriverConfig: c.GetDriverConfig(), Cgroups: c.GetCgroups(), StdoutPath: c.GetStdoutPath(), StderrPath: c.GetStderrPath(), Netns: c.GetNetns(),
		Isolation:   isolationFromProto(c.GetIsolation()),
		LogMaxBytes: c.GetLogMaxBytes(), LogMaxFiles: int(c.GetLogMaxFiles()),
	}
}

func isolationToProto(i *TaskIsolation) *pluginsv1.TaskIsolation {
	if i == nil {
		return nil
	}
	return &pluginsv1.TaskIsolation{Uid: i.UID, Gid: i.GID, Groups: i.Groups, HiddenPaths: i.HiddenPaths,
		Sandbox: i.Sandbox, SharePid: i.SharePID}
}

func isolationFromProto(i *pluginsv1.TaskIsolation) *TaskIsolation {
	if i == nil {
		return nil
	}
	return &TaskIsolation{UID: i.GetUid(), GID: i.GetGid(), Groups: i.GetGroups(), HiddenPaths: i.GetHiddenPaths(),
		Sandbox: i.GetSandbox(), SharePID: i.GetSharePid()}
}

func handleToProto(h *TaskHandle) *pluginsv1.TaskHandle {
	if h == nil {
		return nil
	}
	return &pluginsv1.TaskHandle{
		Version: uint32(h.Version), Config: taskConfigToProto(h.Config),
		State: pluginsv1.TaskState(h.State), DriverState: h.DriverState, Pid: int32(h.PID),
	}
}

func handleFromProto(h *pluginsv1.TaskHandle) *TaskHandle {
	if h == nil {
		return nil
	}
	return &TaskHandle{
		Version: int(h.GetVersion()), Config: taskConfigFromProto(h.GetConfig()),
		State: TaskState(h.GetState()), DriverState: h.GetDriverState(), PID: int(h.GetPid()),
	}
}

func exitToProto(r *ExitResult) *pluginsv1.ExitResult {
	if r == nil {
		return nil
	}
	return &pluginsv1.ExitResult{ExitCode: int32(r.ExitCode), Signal: int32(r.Signal), OomKilled: r.OOMKilled, Err: r.Err}
}

func exitFromProto(r *pluginsv1.ExitResult) *ExitResult {
	if r == nil {
		return nil
	}
	return &ExitResult{ExitCode: int(r.GetExitCode()), Signal: int(r.GetSignal()), OOMKilled: r.GetOomKilled(), Err: r.GetErr()}
}

func timeToProto(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func timeFromProto(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

func statusToProto(s *TaskStatus) *pluginsv1.TaskStatus {
	if s == nil {
		return nil
	}
	return &pluginsv1.TaskStatus{
		Id: s.ID, Name: s.Name, State: pluginsv1.TaskState(s.State),
		StartedAt: timeToProto(s.StartedAt), CompletedAt: timeToProto(s.CompletedAt),
		ExitResult: exitToProto(s.ExitResult), Attributes: s.Attributes,
	}
}

func statusFromProto(s *pluginsv1.TaskStatus) *TaskStatus {
	return &TaskStatus{
		ID: s.GetId(), Name: s.GetName(), State: TaskState(s.GetState()),
		StartedAt: timeFromProto(s.GetStartedAt()), CompletedAt: timeFromProto(s.GetCompletedAt()),
		ExitResult: exitFromProto(s.GetExitResult()), Attributes: s.GetAttributes(),
	}
}

func usageToProto(u *TaskUsage) *pluginsv1.TaskUsage {
	if u == nil {
		return nil
	}
	return &pluginsv1.TaskUsage{
		Timestamp: timeToProto(u.Timestamp), CpuUserNs: u.CPUUserNanos, CpuSystemNs: u.CPUSystemNanos,
		MemoryRssBytes: u.MemoryRSSBytes, Pids: u.PIDs, MemoryPeakBytes: u.MemoryPeakBytes, OomKills: u.OOMKills,
	}
}

func usageFromProto(u *pluginsv1.TaskUsage) *TaskUsage {
	return &TaskUsage{
		Timestamp: timeFromProto(u.GetTimestamp()), CPUUserNanos: u.GetCpuUserNs(), CPUSystemNanos: u.GetCpuSystemNs(),
		MemoryRSSBytes: u.GetMemoryRssBytes(), PIDs: u.GetPids(), MemoryPeakBytes: u.GetMemoryPeakBytes(), OOMKills: u.GetOomKills(),
	}
}

func imageToProto(im *Image) *pluginsv1.Image {
	if im == nil {
		return nil
	}
	return &pluginsv1.Image{
		Ref: im.Ref, Digest: im.Digest, SizeBytes: im.SizeBytes, Tasks: int32(im.Tasks),
		Pulled: timeToProto(im.Pulled), LastUsed: timeToProto(im.LastUsed),
	}
}

func imageFromProto(im *pluginsv1.Image) *Image {
	return &Image{
		Ref: im.GetRef(), Digest: im.GetDigest(), SizeBytes: im.GetSizeBytes(), Tasks: int(im.GetTasks()),
		Pulled: timeFromProto(im.GetPulled()), LastUsed: timeFromProto(im.GetLastUsed()),
	}
}
