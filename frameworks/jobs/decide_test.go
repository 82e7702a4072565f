package jobs

import (
	"encoding/json"
	"testing"
	"time"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func specRec(t *testing.T, yaml string) *SpecRecord {
	t.Helper()
	j, err := ParseSpec([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return &SpecRecord{Spec: *j, Version: 1, Created: t0, Applied: t0}
}

func granted(id, run string) *pb.Allocation {
	return &pb.Allocation{Id: id, State: pb.AllocationState_ALLOCATION_STATE_GRANTED, AgentId: "ag", Labels: map[string]string{LabelJob: "j", LabelRun: run}}
}

func task(id, alloc, run string, attempt string, st pb.TaskState, exit int32) *pb.Task {
	return &pb.Task{Id: id, AllocationId: alloc, State: st, ExitCode: exit,
		Labels: map[string]string{LabelJob: "j", LabelRun: run, LabelAttempt: attempt}}
}

func TestDecide_GangAllocatesOnce(t *testing.T) {
	v := View{Now: t0, Job: "j", Spec: specRec(t, "name: j\ncommand: x\nresources: {cpus: 1}\nparallelism: 4\ngang: true\ngangMin: 3\n"),
		Runs: []*Run{{ID: "j-1", Job: "j", Seq: 1, Cause: CauseManual, State: RunPending, Created: t0}}}
	d := Decide(v)
	if len(d.Allocate) != 1 || d.Allocate[0].Req.GetCount() != 4 || d.Allocate[0].Req.GetGang().GetMinCount() != 3 {
		t.Fatalf("allocate %+v", d.Allocate)
	}
	if len(d.Put) != 1 || d.Put[0].State != RunRunning || v.Runs[0].State != RunPending {
		t.Fatalf("put %+v (the view's run must not change)", d.Put)
	}
}

func TestDecide_CompletionsAndRetries(t *testing.T) {
	spec := specRec(t, "name: j\ncommand: x\nresources: {cpus: 1}\nparallelism: 2\ncompletions: 3\nbackoffLimit: 1\nbackoff: {initial: 1s}\n")
	run := &Run{ID: "j-1", Job: "j", Seq: 1, State: RunRunning, Started: t0, Created: t0, Allocated: true, Spec: &spec.Spec,
		Tasks: []TaskRecord{{Index: 0, Allocation: "a0", Task: "t0", Attempts: 1}, {Index: 1, Allocation: "a1", Task: "t1", Attempts: 1}}}
	v := View{Now: t0.Add(time.Minute), Job: "j", Spec: spec, Runs: []*Run{run},
		Allocs: []*pb.Allocation{granted("a0", "j-1"), granted("a1", "j-1")},
		Tasks: []*pb.Task{task("t0", "a0", "j-1", "1", pb.TaskState_TASK_STATE_FINISHED, 0),
			task("t1", "a1", "j-1", "1", pb.TaskState_TASK_STATE_FAILED, 3)}}
	d := Decide(v)
	r := d.Put[0]
	// Slot 0 succeeded: it runs the third completion at once; slot 1
	// failed once: it backs off 1s.
	if r.Succeeded != 1 || len(d.Launch) != 1 || d.Launch[0].Slot != 0 || d.Launch[0].Attempt != 2 {
		t.Fatalf("after 1 ok 1 failed: succeeded %d launch %+v", r.Succeeded, d.Launch)
	}
	if r.Tasks[1].Failures != 1 || !r.Tasks[1].RetryAt.Equal(v.Now.Add(time.Second)) || d.RequeueAfter != time.Second {
		t.Fatalf("slot 1 %+v requeue %s", r.Tasks[1], d.RequeueAfter)
	}
	// Slot 1's retry fails too: backoffLimit 1 is used up.
	r.Tasks[1].RetryAt = time.Time{}
	r.Tasks[1].Task, r.Tasks[1].Attempts, r.Tasks[1].TaskEnded = "t1b", 2, false
	v2 := View{Now: v.Now.Add(2 * time.Second), Job: "j", Spec: spec, Runs: []*Run{r}, Allocs: v.Allocs,
		Tasks: append(v.Tasks, task("t1b", "a1", "j-1", "2", pb.TaskState_TASK_STATE_FAILED, 3))}
	d = Decide(v2)
	if f := d.Put[0]; f.State != RunFailed || f.Reason != "task 1 exited 3 after 2 attempts" || len(d.Revoke) != 2 {
		t.Fatalf("want failed, got %s %q revoke %v", f.State, f.Reason, d.Revoke)
	}
}

func TestDecide_AdoptsUnrecorded(t *testing.T) {
	spec := specRec(t, "name: j\ncommand: x\nresources: {cpus: 1}\n")
	run := &Run{ID: "j-1", Job: "j", Seq: 1, State: RunRunning, Started: t0, Created: t0, Spec: &spec.Spec, Tasks: []TaskRecord{{Index: 0}}}
	// A leader allocated and launched, then stopped before recording either.
	v := View{Now: t0, Job: "j", Spec: spec, Runs: []*Run{run}, Allocs: []*pb.Allocation{granted("a9", "j-1")},
		Tasks: []*pb.Task{task("t9", "a9", "j-1", "1", pb.TaskState_TASK_STATE_RUNNING, 0)}}
	d := Decide(v)
	if len(d.Allocate) != 0 || len(d.Launch) != 0 {
		t.Fatalf("made again: %+v %+v", d.Allocate, d.Launch)
	}
	if s := d.Put[0].Tasks[0]; s.Allocation != "a9" || s.Task != "t9" || s.Attempts != 1 {
		t.Fatalf("not adopted: %+v", s)
	}
}

func TestDecide_ActiveDeadlineAndRemoval(t *testing.T) {
	spec := specRec(t, "name: j\ncommand: x\nresources: {cpus: 1}\nactiveDeadline: 30s\n")
	run := &Run{ID: "j-1", Job: "j", Seq: 1, State: RunRunning, Started: t0, Created: t0, Spec: &spec.Spec,
		Tasks: []TaskRecord{{Index: 0, Allocation: "a0", Task: "t0", Attempts: 1}}}
	v := View{Now: t0.Add(31 * time.Second), Job: "j", Spec: spec, Runs: []*Run{run}, Allocs: []*pb.Allocation{granted("a0", "j-1")}}
	d := Decide(v)
	if r := d.Put[0]; r.State != RunFailed || r.Reason != "active deadline 30s exceeded" || len(d.Revoke) != 1 {
		t.Fatalf("deadline: %s %q %v", r.State, r.Reason, d.Revoke)
	}
	v.Spec = nil
	d = Decide(v)
	if len(d.Delete) != 1 || !d.DeleteMeta || len(d.Revoke) != 1 {
		t.Fatalf("removal: %+v", d)
	}
}

func TestDecide_HistoryLimits(t *testing.T) {
	spec := specRec(t, "name: j\ncommand: x\nresources: {cpus: 1}\nsuccessfulRunsHistoryLimit: 1\nfailedRunsHistoryLimit: 1\n")
	var runs []*Run
	for i, st := range []string{RunSucceeded, RunFailed, RunSucceeded, RunFailed, RunSucceeded} {
		runs = append(runs, &Run{ID: RunID("j", int64(i+1)), Job: "j", Seq: int64(i + 1), State: st})
	}
	d := Decide(View{Now: t0, Job: "j", Spec: spec, Runs: runs})
	if got := d.Delete; len(got) != 3 || got[0] != 3 || got[1] != 2 || got[2] != 1 {
		t.Fatalf("delete %v, want [3 2 1]", got)
	}
}

// TestRun_FitsOneStateValue: a run of MaxParallelism slots, each with
// an allocation, a task and a failure, fits one framework-state value.
func TestRun_FitsOneStateValue(t *testing.T) {
	spec := specRec(t, "name: a-job-with-a-long-name-to-be-safe\ncommand: x\nresources: {cpus: 1}\nparallelism: 1000\ngang: true\n")
	r := &Run{ID: "a-job-with-a-long-name-to-be-safe-1234567", Job: spec.Spec.Name, Seq: 1234567, State: RunRunning, Started: t0, Created: t0, Spec: &spec.Spec}
	for i := range MaxParallelism {
		r.Tasks = append(r.Tasks, TaskRecord{Index: i, Allocation: "a-0123456789abcdef", Agent: "ag-0123456789abcdef", Task: "t-0123456789abcdef",
			Attempts: 7, Failures: 6, LastExit: 137, LastReason: "exit code 137", RetryAt: t0})
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 256<<10 {
		t.Fatalf("a %d-slot run is %d bytes, more than 256 KiB", MaxParallelism, len(b))
	}
}
