package jobs

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// View is everything one decision about one job looks at: a snapshot,
// so that Decide is a pure function of it.
type View struct {
	Now time.Time
	Job string
	// Spec is the job's current spec (nil: the job was removed).
	Spec *SpecRecord
	Meta Meta
	// Runs are the job's runs in the framework state, by sequence.
	Runs []*Run
	// Allocs and Tasks are the job's live allocations and their tasks
	// (labeled dcos.job=Job).
	Allocs []*pb.Allocation
	Tasks  []*pb.Task
}

// Decision is what to do about one job, in this order: Create the new
// runs (each only if its key does not exist yet), write Put and Meta
// (persist what was observed before acting on it), Revoke, Allocate and
// Launch, then record the allocations and tasks made in their runs;
// finally Delete the runs history no longer keeps.
type Decision struct {
	Create []*Run
	Put    []*Run
	// Meta is the job's new Meta (nil: unchanged).
	Meta     *Meta
	Revoke   []Revoke
	Allocate []AllocateOp
	Launch   []LaunchOp
	// Delete are the sequence numbers of runs to delete; DeleteMeta
	// removes the job's meta too (the job is gone).
	Delete     []int64
	DeleteMeta bool
	// RequeueAfter is when to look again without an event (0: no need).
	RequeueAfter time.Duration
}

// Revoke is an allocation to give back.
type Revoke struct{ ID, Reason string }

// AllocateOp asks for allocations for the Slots of run Run: one
// allocation per slot, in slot order. MPI is the part of an MPI run the
// slots are (MPIHost, or MPILauncher with slot -1; "" for other jobs).
type AllocateOp struct {
	Run   string
	Slots []int
	MPI   string
	Req   *pb.AllocateRequest
}

// LaunchOp starts attempt Attempt of slot Slot of run Run. Req has no
// allocation id when the slot's allocation comes from an AllocateOp of
// the same decision (the controller fills it in once granted). MPI is as
// in AllocateOp; a launcher's Req lacks DCOS_KERNEL and DCOS_TOKEN, which
// the controller adds.
type LaunchOp struct {
	Run     string
	Slot    int
	Attempt int
	MPI     string
	Req     *pb.LaunchRequest
}

// Decide is one pass over one job. It never mutates v's runs: changed runs
// are copies, in Put.
func Decide(v View) Decision {
	var d Decision
	requeue := func(at time.Time) {
		w := at.Sub(v.Now)
		if w <= 0 {
			w = time.Millisecond
		}
		if d.RequeueAfter == 0 || w < d.RequeueAfter {
			d.RequeueAfter = w
		}
	}
	allocsByRun := map[string][]*pb.Allocation{}
	for _, a := range v.Allocs {
		allocsByRun[a.GetLabels()[LabelRun]] = append(allocsByRun[a.GetLabels()[LabelRun]], a)
	}
	tasksByAlloc := map[string][]*pb.Task{}
	for _, t := range v.Tasks {
		tasksByAlloc[t.GetAllocationId()] = append(tasksByAlloc[t.GetAllocationId()], t)
	}
	known := map[string]bool{}
	for _, r := range v.Runs {
		known[r.ID] = true
	}
	for _, a := range v.Allocs {
		if run := a.GetLabels()[LabelRun]; !known[run] || v.Spec == nil {
			d.Revoke = append(d.Revoke, Revoke{a.GetId(), "job run gone"})
		}
	}
	if v.Spec == nil {
		// Removed: its runs go with it (their allocations revoked above).
		for _, r := range v.Runs {
			d.Delete = append(d.Delete, r.Seq)
		}
		d.DeleteMeta = true
		return d
	}
	spec := v.Spec.Spec
	meta := v.Meta
	metaChanged := false
	var maxSeq int64
	lastFire := meta.LastFire
	if v.Spec.Created.After(lastFire) {
		lastFire = v.Spec.Created
	}
	var active []*Run
	for _, r := range v.Runs {
		maxSeq = max(maxSeq, r.Seq)
		if r.Scheduled.After(lastFire) {
			lastFire = r.Scheduled
		}
		if !r.Ended() {
			active = append(active, r)
		}
	}
	maxSeq = max(maxSeq, meta.LastSeq)
	runs := make([]*Run, 0, len(v.Runs)+1)
	changed := map[string]bool{}
	for _, r := range v.Runs {
		runs = append(runs, cloneRun(r))
	}
	var created *Run
	if spec.Schedule != "" && !spec.Suspend {
		c, err := ParseCron(spec.Schedule)
		if err == nil {
			due := c.DueAt(lastFire, v.Now, spec.Location(), time.Duration(spec.StartingDeadline))
			if !due.Next.IsZero() {
				requeue(due.Next)
			}
			switch {
			case !due.Skipped.IsZero():
				meta.LastFire, meta.Missed, metaChanged = due.Skipped.UTC(), meta.Missed+due.Missed, true
			case !due.Fire.IsZero():
				meta.LastFire, meta.Missed, metaChanged = due.Fire.UTC(), meta.Missed+due.Missed, true
				if len(active) > 0 && spec.ConcurrencyPolicy == ConcurrencyForbid {
					meta.Missed++
					break
				}
				seq := maxSeq + 1
				created = &Run{ID: RunID(v.Job, seq), Job: v.Job, Seq: seq, Cause: CauseSchedule,
					Scheduled: due.Fire.UTC(), State: RunPending, Created: v.Now.UTC()}
				meta.LastSeq = seq
				if spec.ConcurrencyPolicy == ConcurrencyReplace {
					for _, r := range runs {
						if !r.Ended() && r.StopReason == "" {
							r.StopReason = "replaced by " + created.ID
							changed[r.ID] = true
						}
					}
				}
				runs = append(runs, created)
			}
		}
	}
	for _, r := range runs {
		if r.Ended() {
			for _, a := range allocsByRun[r.ID] {
				d.Revoke = append(d.Revoke, Revoke{a.GetId(), "job run " + r.State})
			}
			continue
		}
		if decideRun(&d, v, r, &spec, allocsByRun[r.ID], tasksByAlloc, requeue) {
			changed[r.ID] = true
		}
	}
	for _, r := range runs {
		if r == created {
			d.Create = append(d.Create, r)
		} else if changed[r.ID] {
			d.Put = append(d.Put, r)
		}
	}
	if maxSeq > meta.LastSeq {
		meta.LastSeq, metaChanged = maxSeq, true
	}
	if metaChanged {
		d.Meta = &meta
	}
	d.Delete = prune(runs, allocsByRun, *spec.SuccessfulRunsHistoryLimit, *spec.FailedRunsHistoryLimit)
	return d
}

// prune returns the ended runs history drops: beyond the newest keepOK
// succeeded and keepFailed failed ones. The newest run is always kept
// (its number is the next run's), and so is a run whose allocations are
// not all gone.
func prune(runs []*Run, allocs map[string][]*pb.Allocation, keepOK, keepFailed int) []int64 {
	sorted := append([]*Run(nil), runs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Seq > sorted[j].Seq })
	var out []int64
	ok, failed := 0, 0
	for i, r := range sorted {
		if !r.Ended() {
			continue
		}
		keep := i == 0 || len(allocs[r.ID]) > 0
		if r.State == RunSucceeded {
			ok++
			keep = keep || ok <= keepOK
		} else {
			failed++
			keep = keep || failed <= keepFailed
		}
		if !keep {
			out = append(out, r.Seq)
		}
	}
	return out
}

// Slots is how many tasks of a run run at once: min(parallelism,
// completions), or an MPI job's rank hosts.
func (j *Job) Slots() int {
	if j.MPI != nil {
		return j.MPI.Hosts()
	}
	return min(j.Parallelism, j.Completions)
}

func taskEnded(s pb.TaskState) bool {
	switch s {
	case pb.TaskState_TASK_STATE_FINISHED, pb.TaskState_TASK_STATE_FAILED, pb.TaskState_TASK_STATE_KILLED, pb.TaskState_TASK_STATE_LOST:
		return true
	}
	return false
}

// decideRun advances one live run; it reports whether r changed.
func decideRun(d *Decision, v View, r *Run, cur *Job, allocs []*pb.Allocation, tasksByAlloc map[string][]*pb.Task, requeue func(time.Time)) bool {
	changed := false
	if r.Spec == nil {
		s := *cur
		r.Spec, r.SpecVersion = &s, v.Spec.Version
		changed = true
	}
	spec := r.Spec
	n := spec.Slots()
	if len(r.Tasks) != n {
		r.Tasks = make([]TaskRecord, n)
		for i := range r.Tasks {
			r.Tasks[i].Index = i
		}
		changed = true
	}
	end := func(state, reason string) {
		r.State, r.Reason, r.Finished = state, reason, v.Now.UTC()
		for _, a := range allocs {
			d.Revoke = append(d.Revoke, Revoke{a.GetId(), "job run " + state})
		}
	}
	if r.StopReason != "" {
		end(RunFailed, "stopped: "+r.StopReason)
		return true
	}
	if ad := time.Duration(spec.ActiveDeadline); ad > 0 && !r.Started.IsZero() {
		if v.Now.Sub(r.Started) >= ad {
			end(RunFailed, fmt.Sprintf("active deadline %s exceeded", ad))
			return true
		}
		requeue(r.Started.Add(ad))
	}
	if spec.MPI != nil {
		return decideMPI(d, v, r, allocs, tasksByAlloc, requeue, end) || changed
	}
	byID := map[string]*pb.Allocation{}
	for _, a := range allocs {
		byID[a.GetId()] = a
	}
	// Adopt allocations made but not recorded (a leader stopped between
	// its Allocate and the write of their ids).
	used := map[string]bool{}
	for _, t := range r.Tasks {
		used[t.Allocation] = true
	}
	var spare []string
	for _, a := range allocs {
		if !used[a.GetId()] {
			spare = append(spare, a.GetId())
		}
	}
	sort.Strings(spare)
	for i := range r.Tasks {
		if s := &r.Tasks[i]; s.Allocation == "" && !s.Done && len(spare) > 0 {
			s.Allocation, spare = spare[0], spare[1:]
			r.Allocated, changed = true, true
		}
	}
	for _, id := range spare {
		d.Revoke = append(d.Revoke, Revoke{id, "not needed by its run"})
	}
	for i := range r.Tasks {
		s := &r.Tasks[i]
		if s.Done || s.Allocation == "" {
			continue
		}
		a := byID[s.Allocation]
		if a == nil {
			// Its allocation is gone (agent lost, revoked by an
			// operator): a failed attempt; the slot is allocated again.
			reason := "allocation revoked"
			if s.Task != "" && !s.TaskEnded {
				s.TaskEnded = true
			}
			s.Allocation, s.Agent, changed = "", "", true
			if failSlot(s, r, spec, -1, reason, v.Now) {
				end(RunFailed, r.Reason)
				return true
			}
			continue
		}
		if a.GetState() == pb.AllocationState_ALLOCATION_STATE_GRANTED && s.Agent != a.GetAgentId() {
			s.Agent, changed = a.GetAgentId(), true
		}
		// Adopt a task launched but not recorded.
		for _, t := range tasksByAlloc[s.Allocation] {
			if n, _ := strconv.Atoi(t.GetLabels()[LabelAttempt]); n > s.Attempts && t.GetLabels()[LabelRun] == r.ID {
				s.Task, s.Attempts, s.TaskEnded, changed = t.GetId(), n, false, true
			}
		}
		if s.Task == "" || s.TaskEnded {
			continue
		}
		var t *pb.Task
		for _, x := range tasksByAlloc[s.Allocation] {
			if x.GetId() == s.Task {
				t = x
			}
		}
		if t == nil || !taskEnded(t.GetState()) {
			continue
		}
		s.TaskEnded, s.LastExit, s.LastReason, changed = true, t.GetExitCode(), t.GetReason(), true
		if t.GetState() == pb.TaskState_TASK_STATE_FINISHED && t.GetExitCode() == 0 {
			s.Succeeded++
			r.Succeeded++
			s.Failures, s.RetryAt = 0, time.Time{}
			continue
		}
		reason := t.GetReason()
		if reason == "" {
			reason = t.GetState().String()
		}
		if failSlot(s, r, spec, t.GetExitCode(), reason, v.Now) {
			end(RunFailed, r.Reason)
			return true
		}
	}
	if r.Succeeded >= spec.Completions {
		end(RunSucceeded, "")
		return true
	}
	running := 0
	for _, s := range r.Tasks {
		if s.Task != "" && !s.TaskEnded {
			running++
		}
	}
	var need []int
	for i := range r.Tasks {
		s := &r.Tasks[i]
		if s.Done {
			continue
		}
		idle := s.Task == "" || s.TaskEnded
		if !idle {
			continue
		}
		if r.Succeeded+running >= spec.Completions {
			// Enough tasks run or ran: this slot is not needed again.
			s.Done, changed = true, true
			if s.Allocation != "" {
				d.Revoke = append(d.Revoke, Revoke{s.Allocation, "job task slot done"})
			}
			continue
		}
		if s.RetryAt.After(v.Now) {
			requeue(s.RetryAt)
			continue
		}
		if s.Allocation == "" {
			need = append(need, i)
			running++
			continue
		}
		if a := byID[s.Allocation]; a.GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
			continue
		}
		d.Launch = append(d.Launch, LaunchOp{Run: r.ID, Slot: i, Attempt: s.Attempts + 1,
			Req: spec.launchRequest(s.Allocation, r.ID, i, s.Attempts+1)})
		running++
	}
	if len(need) > 0 {
		req := spec.allocateRequest(r.ID, len(need))
		if !r.Allocated && spec.Gang && len(need) == n {
			req.Gang = &pb.Gang{MinCount: int32(min(spec.GangMin, n))}
		}
		d.Allocate = append(d.Allocate, AllocateOp{Run: r.ID, Slots: need, Req: req})
	}
	if r.State == RunPending {
		r.State, r.Started, changed = RunRunning, v.Now.UTC(), true
		if ad := time.Duration(spec.ActiveDeadline); ad > 0 {
			requeue(r.Started.Add(ad))
		}
	}
	return changed
}

// failSlot counts a failed attempt of slot s; it reports whether the run
// fails (the slot's retries are used up), with r.Reason set.
func failSlot(s *TaskRecord, r *Run, spec *Job, exit int32, reason string, now time.Time) bool {
	s.Failures++
	s.LastReason = reason
	if exit >= 0 {
		s.LastExit = exit
	}
	if s.Failures > *spec.BackoffLimit {
		if exit > 0 {
			r.Reason = fmt.Sprintf("task %d exited %d after %d attempts", s.Index, exit, s.Attempts)
		} else {
			r.Reason = fmt.Sprintf("task %d failed (%s) after %d attempts", s.Index, reason, s.Attempts)
		}
		return true
	}
	s.RetryAt = now.Add(spec.BackoffDelay(s.Failures)).UTC()
	return false
}

func (j *Job) allocateRequest(run string, count int) *pb.AllocateRequest {
	return &pb.AllocateRequest{
		Resources: j.resources(), Count: int32(count), Role: j.Role, Priority: j.Priority,
		Constraints: j.constraints(),
		Labels:      map[string]string{LabelJob: j.Name, LabelRun: run},
	}
}

func (j *Job) launchRequest(alloc, run string, slot, attempt int) *pb.LaunchRequest {
	env := map[string]string{}
	for k, v := range j.Env {
		env[k] = v
	}
	env["DCOS_JOB"], env["DCOS_JOB_RUN"], env["DCOS_JOB_TASK"] = j.Name, run, strconv.Itoa(slot)
	env["DCOS_JOB_ATTEMPT"] = strconv.Itoa(attempt)
	r := &pb.LaunchRequest{
		AllocationId: alloc, Command: j.Command, Args: j.Args, Env: env, SecretEnv: j.SecretEnv,
		Driver: j.Driver, DriverConfig: string(j.DriverConfig),
		Labels: map[string]string{LabelJob: j.Name, LabelRun: run, LabelTask: strconv.Itoa(slot), LabelAttempt: strconv.Itoa(attempt)},
	}
	if j.KillGracePeriod > 0 {
		r.KillGracePeriod = durationpb.New(time.Duration(j.KillGracePeriod))
	}
	return r
}

func cloneRun(r *Run) *Run {
	b, _ := json.Marshal(r)
	var c Run
	_ = json.Unmarshal(b, &c)
	return &c
}
