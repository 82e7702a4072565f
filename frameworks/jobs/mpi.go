package jobs

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// MPI is the mpi block of a job spec: the job runs Ranks MPI ranks,
// SlotsPerTask of them in each rank host, a task of the job's Resources
// that the framework starts (RankHostCommand) and mpirun starts the
// ranks in (through dcosctl exec, see docs/big-data.md). The rank hosts
// are granted as one gang (all or none); once all run, the launcher — a
// task of Resources below running Command with Args, the user's mpirun
// line — is allocated beside them. The run's outcome is the launcher's
// exit. docs/jobs.md documents the fields.
type MPI struct {
	// Ranks is the number of MPI processes (mpirun -np).
	Ranks int `json:"ranks"`
	// SlotsPerTask is how many ranks one rank host runs (default 1);
	// Ranks must be a multiple of it.
	SlotsPerTask int `json:"slotsPerTask,omitempty"`
	// Command and Args are the launcher's program (run without a shell:
	// use sh -c to expand $DCOS_JOB_HOSTS).
	Command string   `json:"command"`
	Args    []string `json:"args,omitempty"`
	// Resources of the launcher (defaults 0.1 cpus, 128Mi).
	Resources Resources `json:"resources"`
}

// MPI defaults and limits.
const (
	// DefaultLauncherCpus is the launcher's cpus when mpi.resources sets none.
	DefaultLauncherCpus = 0.1
	// MaxRanks bounds mpi.ranks.
	MaxRanks = 1_000_000
)

// RankHostCommand is what a rank host runs: it waits until killed, and
// mpirun starts the job's ranks inside it with dcosctl exec.
var RankHostCommand = []string{"sleep", "infinity"}

// Labels and values of an MPI run's allocations and tasks: dcos.job.mpi
// is "host" or "launcher", and dcos.job.attempt the run's attempt.
const (
	LabelMPI    = "dcos.job.mpi"
	MPIHost     = "host"
	MPILauncher = "launcher"
)

// Environment the launcher gets (besides the job's env and DCOS_JOB,
// DCOS_JOB_RUN, DCOS_JOB_ATTEMPT).
const (
	// EnvHosts is the rank hosts in Open MPI's --host syntax:
	// "TASK:SLOTS,TASK:SLOTS,..." in rank-host order.
	EnvHosts = "DCOS_JOB_HOSTS"
	// EnvHostfileContent is the same as a hostfile: "TASK slots=N" lines.
	EnvHostfileContent = "DCOS_JOB_HOSTFILE_CONTENT"
	// EnvRanks is mpi.ranks; EnvSlotsPerTask mpi.slotsPerTask.
	EnvRanks        = "DCOS_JOB_RANKS"
	EnvSlotsPerTask = "DCOS_JOB_SLOTS_PER_TASK"
	// EnvKernel and EnvToken are a kernel URL and the jobs framework's
	// token (Controller.KernelURL and Token), so that the launcher's
	// dcosctl exec may start daemons in the rank hosts. A spec's env
	// that sets either keeps its own value.
	EnvKernel = "DCOS_KERNEL"
	EnvToken  = "DCOS_TOKEN"
)

// Hosts is the number of rank hosts: Ranks / SlotsPerTask.
func (m *MPI) Hosts() int {
	if m.SlotsPerTask < 1 {
		return m.Ranks
	}
	return m.Ranks / m.SlotsPerTask
}

func (m *MPI) defaults() {
	if m.SlotsPerTask == 0 {
		m.SlotsPerTask = 1
	}
	if m.Resources.Cpus == 0 {
		m.Resources.Cpus = DefaultLauncherCpus
	}
	if m.Resources.Mem == 0 {
		m.Resources.Mem = DefaultMem
	}
}

// validateMPI checks the mpi block of a defaulted spec and what it rules
// out at the top level.
func (j *Job) validateMPI() error {
	m := j.MPI
	if j.Command != "" || len(j.Args) > 0 {
		return errors.New("command: not with mpi: the rank hosts run the framework's command; mpirun's line is mpi.command and mpi.args")
	}
	if j.Parallelism != 1 {
		return fmt.Errorf("parallelism: not with mpi (mpi.ranks / mpi.slotsPerTask rank hosts run), got %d", j.Parallelism)
	}
	if j.Completions != 1 {
		return fmt.Errorf("completions: not with mpi (a run is one launcher's exit), got %d", j.Completions)
	}
	if j.Gang {
		return errors.New("gang: not with mpi (the rank hosts are always one gang)")
	}
	if m.Ranks < 1 || m.Ranks > MaxRanks {
		return fmt.Errorf("mpi.ranks: must be 1 to %d, got %d", MaxRanks, m.Ranks)
	}
	if m.SlotsPerTask < 1 || m.SlotsPerTask > m.Ranks {
		return fmt.Errorf("mpi.slotsPerTask: must be 1 to mpi.ranks (%d), got %d", m.Ranks, m.SlotsPerTask)
	}
	if m.Ranks%m.SlotsPerTask != 0 {
		return fmt.Errorf("mpi.ranks: must be a multiple of mpi.slotsPerTask (%d), got %d", m.SlotsPerTask, m.Ranks)
	}
	if h := m.Hosts(); h > MaxParallelism {
		return fmt.Errorf("mpi.ranks: at most %d rank hosts (mpi.ranks / mpi.slotsPerTask), got %d", MaxParallelism, h)
	}
	if m.Command == "" {
		return errors.New("mpi.command: required (the launcher's program, e.g. mpirun or sh)")
	}
	if m.Resources.Cpus <= 0 || m.Resources.Cpus > 1e6 || math.IsNaN(m.Resources.Cpus) {
		return fmt.Errorf("mpi.resources.cpus: must be > 0, got %g", m.Resources.Cpus)
	}
	if m.Resources.Mem < 1 {
		return fmt.Errorf("mpi.resources.mem: must be > 0, got %d", m.Resources.Mem)
	}
	if m.Resources.Disk < 0 {
		return fmt.Errorf("mpi.resources.disk: must be >= 0, got %d", m.Resources.Disk)
	}
	return nil
}

// MPIRun is the state of an MPI run: its attempt (a retry runs the whole
// run again on a new gang) and its launcher. The rank hosts of the
// current attempt are the run's Tasks.
type MPIRun struct {
	// Attempt of the whole run, from 1; its allocations and tasks carry
	// it in dcos.job.attempt.
	Attempt int `json:"attempt"`
	// Failures counts failed attempts; RetryAt is when the next starts.
	Failures int       `json:"failures,omitempty"`
	RetryAt  time.Time `json:"retryAt,omitzero"`
	// Allocated: the current attempt's gang was asked for.
	Allocated bool `json:"allocated,omitempty"`
	// Launcher is the current attempt's launcher (Index -1).
	Launcher TaskRecord `json:"launcher"`
	// LastReason and LastExit are of the last failed attempt.
	LastReason string `json:"lastReason,omitempty"`
	LastExit   int32  `json:"lastExit,omitempty"`
}

// record is the task record of part (MPIHost or "": slot; MPILauncher:
// the launcher) of r.
func (r *Run) record(part string, slot int) *TaskRecord {
	if part == MPILauncher {
		return &r.MPI.Launcher
	}
	return &r.Tasks[slot]
}

// launchRequest is the request that starts attempt of slot of part of r
// in allocation alloc.
func (r *Run) launchRequest(part string, slot int, alloc string, attempt int) *pb.LaunchRequest {
	switch part {
	case MPIHost:
		return r.mpiHostRequest(slot, alloc)
	case MPILauncher:
		return r.mpiLauncherRequest(alloc)
	}
	return r.Spec.launchRequest(alloc, r.ID, slot, attempt)
}

func (r *Run) mpiLabels(part, task string) map[string]string {
	return map[string]string{LabelJob: r.Spec.Name, LabelRun: r.ID, LabelTask: task,
		LabelAttempt: strconv.Itoa(r.MPI.Attempt), LabelMPI: part}
}

func (r *Run) mpiEnv() map[string]string {
	env := map[string]string{}
	for k, v := range r.Spec.Env {
		env[k] = v
	}
	env["DCOS_JOB"], env["DCOS_JOB_RUN"], env["DCOS_JOB_ATTEMPT"] = r.Spec.Name, r.ID, strconv.Itoa(r.MPI.Attempt)
	env[EnvRanks], env[EnvSlotsPerTask] = strconv.Itoa(r.Spec.MPI.Ranks), strconv.Itoa(r.Spec.MPI.SlotsPerTask)
	return env
}

func (r *Run) mpiHostRequest(slot int, alloc string) *pb.LaunchRequest {
	j := r.Spec
	env := r.mpiEnv()
	env["DCOS_JOB_TASK"] = strconv.Itoa(slot)
	req := &pb.LaunchRequest{
		AllocationId: alloc, Command: RankHostCommand[0], Args: RankHostCommand[1:], Env: env, SecretEnv: j.SecretEnv,
		Driver: j.Driver, DriverConfig: string(j.DriverConfig),
		Labels: r.mpiLabels(MPIHost, strconv.Itoa(slot)),
	}
	if j.KillGracePeriod > 0 {
		req.KillGracePeriod = durationpb.New(time.Duration(j.KillGracePeriod))
	}
	return req
}

func (r *Run) mpiLauncherRequest(alloc string) *pb.LaunchRequest {
	j := r.Spec
	env := r.mpiEnv()
	env["DCOS_JOB_TASK"] = MPILauncher
	var hosts, hostfile strings.Builder
	for i, s := range r.Tasks {
		if i > 0 {
			hosts.WriteByte(',')
		}
		fmt.Fprintf(&hosts, "%s:%d", s.Task, j.MPI.SlotsPerTask)
		fmt.Fprintf(&hostfile, "%s slots=%d\n", s.Task, j.MPI.SlotsPerTask)
	}
	env[EnvHosts], env[EnvHostfileContent] = hosts.String(), hostfile.String()
	req := &pb.LaunchRequest{
		AllocationId: alloc, Command: j.MPI.Command, Args: j.MPI.Args, Env: env, SecretEnv: j.SecretEnv,
		Driver: j.Driver, DriverConfig: string(j.DriverConfig),
		Labels: r.mpiLabels(MPILauncher, MPILauncher),
	}
	if j.KillGracePeriod > 0 {
		req.KillGracePeriod = durationpb.New(time.Duration(j.KillGracePeriod))
	}
	return req
}

func (j *Job) mpiAllocateRequest(run string, attempt int, part string, count int) *pb.AllocateRequest {
	req := j.allocateRequest(run, count)
	req.Labels[LabelMPI], req.Labels[LabelAttempt] = part, strconv.Itoa(attempt)
	if part == MPILauncher {
		m := j.MPI.Resources
		req.Resources = &pb.Resources{Cpus: m.Cpus, MemBytes: int64(m.Mem), DiskBytes: int64(m.Disk)}
	} else {
		req.Gang = &pb.Gang{MinCount: int32(count)}
	}
	return req
}

// decideMPI advances a live MPI run past decideRun's common checks (spec
// copied, rank host records sized, stop and deadline); end ends the run
// revoking its allocations. It reports whether r changed.
//
// An attempt: allocate the rank hosts as one gang; launch a rank host in
// each granted one; once all run, allocate the launcher and launch it
// with the hosts in its env. The launcher's exit 0 is the run's success;
// its failure, or a rank host or allocation lost, fails the attempt: its
// allocations are revoked and, unless backoffLimit is spent, the next
// attempt starts after the backoff on a new gang.
func decideMPI(d *Decision, v View, r *Run, allocs []*pb.Allocation, tasksByAlloc map[string][]*pb.Task, requeue func(time.Time), end func(state, reason string)) bool {
	spec := r.Spec
	n := spec.MPI.Hosts()
	changed := false
	if r.MPI == nil {
		r.MPI, changed = &MPIRun{Attempt: 1, Launcher: TaskRecord{Index: -1}}, true
	}
	m := r.MPI
	if r.State == RunPending {
		r.State, r.Started, changed = RunRunning, v.Now.UTC(), true
		if ad := time.Duration(spec.ActiveDeadline); ad > 0 {
			requeue(r.Started.Add(ad))
		}
	}
	att := strconv.Itoa(m.Attempt)
	byID := map[string]*pb.Allocation{}
	var hosts, launchers []*pb.Allocation
	for _, a := range allocs {
		l := a.GetLabels()
		if l[LabelAttempt] != att {
			d.Revoke = append(d.Revoke, Revoke{a.GetId(), "from an earlier attempt of its run"})
			continue
		}
		byID[a.GetId()] = a
		switch l[LabelMPI] {
		case MPIHost:
			hosts = append(hosts, a)
		case MPILauncher:
			launchers = append(launchers, a)
		default:
			d.Revoke = append(d.Revoke, Revoke{a.GetId(), "not needed by its run"})
		}
	}
	// fail ends the current attempt: the run fails once backoffLimit
	// attempts failed, else the next attempt waits for its backoff.
	fail := func(reason string, exit int32) bool {
		m.Failures++
		m.LastReason = reason
		if exit >= 0 {
			m.LastExit = exit
		}
		if m.Failures > *spec.BackoffLimit {
			end(RunFailed, fmt.Sprintf("%s after %d attempts", reason, m.Attempt))
			return true
		}
		for _, a := range allocs {
			d.Revoke = append(d.Revoke, Revoke{a.GetId(), "job run attempt failed: " + reason})
		}
		m.Attempt++
		m.Allocated = false
		m.Launcher = TaskRecord{Index: -1}
		r.Tasks = make([]TaskRecord, n)
		for i := range r.Tasks {
			r.Tasks[i].Index = i
		}
		m.RetryAt = v.Now.Add(spec.BackoffDelay(m.Failures)).UTC()
		requeue(m.RetryAt)
		return true
	}
	if !m.RetryAt.IsZero() {
		if m.RetryAt.After(v.Now) {
			requeue(m.RetryAt)
			return changed
		}
		m.RetryAt, changed = time.Time{}, true
	}
	// Adopt allocations made but not recorded (a leader stopped between
	// its Allocate and the write of their ids).
	used := map[string]bool{}
	for _, s := range r.Tasks {
		used[s.Allocation] = true
	}
	sort.Slice(hosts, func(i, j int) bool { return hosts[i].GetId() < hosts[j].GetId() })
	for _, a := range hosts {
		if used[a.GetId()] {
			continue
		}
		adopted := false
		for i := range r.Tasks {
			if r.Tasks[i].Allocation == "" {
				r.Tasks[i].Allocation, adopted = a.GetId(), true
				break
			}
		}
		if !adopted {
			d.Revoke = append(d.Revoke, Revoke{a.GetId(), "not needed by its run"})
		}
		m.Allocated, changed = true, true
	}
	for _, a := range launchers {
		switch m.Launcher.Allocation {
		case a.GetId():
		case "":
			m.Launcher.Allocation, changed = a.GetId(), true
		default:
			d.Revoke = append(d.Revoke, Revoke{a.GetId(), "not needed by its run"})
		}
	}
	// observe updates s from its allocation and task; it returns the
	// ended task, or a failure reason when the allocation is gone.
	observe := func(s *TaskRecord, what string) (*pb.Task, string) {
		if s.Allocation == "" {
			return nil, ""
		}
		a := byID[s.Allocation]
		if a == nil {
			return nil, what + ": allocation revoked"
		}
		if a.GetState() == pb.AllocationState_ALLOCATION_STATE_GRANTED && s.Agent != a.GetAgentId() {
			s.Agent, changed = a.GetAgentId(), true
		}
		var cur *pb.Task
		for _, t := range tasksByAlloc[s.Allocation] {
			if t.GetLabels()[LabelRun] != r.ID {
				continue
			}
			if s.Task == "" {
				s.Task, s.Attempts, changed = t.GetId(), 1, true
			}
			if t.GetId() == s.Task {
				cur = t
			}
		}
		if cur != nil && taskEnded(cur.GetState()) && !s.TaskEnded {
			s.TaskEnded, s.LastExit, s.LastReason, changed = true, cur.GetExitCode(), cur.GetReason(), true
		}
		if s.TaskEnded {
			return cur, ""
		}
		return nil, ""
	}
	running := 0
	for i := range r.Tasks {
		s := &r.Tasks[i]
		what := fmt.Sprintf("rank host %d", i)
		t, lost := observe(s, what)
		if lost != "" {
			return fail(lost, -1) || changed
		}
		if s.TaskEnded {
			// A rank host never ends by itself: mpirun cannot go on.
			reason := s.LastReason
			if t != nil && reason == "" {
				reason = t.GetState().String()
			}
			return fail(fmt.Sprintf("%s ended (%s)", what, reason), -1) || changed
		}
		if s.Task != "" && stateOf(tasksByAlloc[s.Allocation], s.Task) == pb.TaskState_TASK_STATE_RUNNING {
			running++
		}
	}
	if t, lost := observe(&m.Launcher, "launcher"); lost != "" {
		return fail(lost, -1) || changed
	} else if m.Launcher.TaskEnded {
		if t != nil && t.GetState() == pb.TaskState_TASK_STATE_FINISHED && t.GetExitCode() == 0 {
			m.Launcher.Succeeded, r.Succeeded = 1, 1
			end(RunSucceeded, "")
			return true
		}
		if t != nil && t.GetExitCode() > 0 {
			return fail(fmt.Sprintf("launcher exited %d", t.GetExitCode()), t.GetExitCode()) || changed
		}
		reason := m.Launcher.LastReason
		if reason == "" && t != nil {
			reason = t.GetState().String()
		}
		return fail(fmt.Sprintf("launcher failed (%s)", reason), -1) || changed
	}
	// Act: the gang, the rank hosts, then the launcher.
	if !m.Allocated {
		slots := make([]int, n)
		for i := range slots {
			slots[i] = i
		}
		d.Allocate = append(d.Allocate, AllocateOp{Run: r.ID, Slots: slots, MPI: MPIHost,
			Req: spec.mpiAllocateRequest(r.ID, m.Attempt, MPIHost, n)})
		return changed
	}
	for i := range r.Tasks {
		s := &r.Tasks[i]
		if s.Allocation == "" || s.Task != "" || byID[s.Allocation].GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
			continue
		}
		d.Launch = append(d.Launch, LaunchOp{Run: r.ID, Slot: i, Attempt: 1, MPI: MPIHost, Req: r.mpiHostRequest(i, s.Allocation)})
	}
	if running < n {
		return changed
	}
	l := &m.Launcher
	switch {
	case l.Allocation == "":
		d.Allocate = append(d.Allocate, AllocateOp{Run: r.ID, Slots: []int{-1}, MPI: MPILauncher,
			Req: spec.mpiAllocateRequest(r.ID, m.Attempt, MPILauncher, 1)})
	case l.Task == "" && byID[l.Allocation].GetState() == pb.AllocationState_ALLOCATION_STATE_GRANTED:
		d.Launch = append(d.Launch, LaunchOp{Run: r.ID, Slot: -1, Attempt: 1, MPI: MPILauncher, Req: r.mpiLauncherRequest(l.Allocation)})
	}
	return changed
}

func stateOf(tasks []*pb.Task, id string) pb.TaskState {
	for _, t := range tasks {
		if t.GetId() == id {
			return t.GetState()
		}
	}
	return pb.TaskState_TASK_STATE_UNSPECIFIED
}
