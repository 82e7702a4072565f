package jobs

import (
	"strings"
	"testing"
	"time"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

const mpiBase = "name: j\nresources: {cpus: 1}\n"

func TestParseSpec_MPI(t *testing.T) {
	j, err := ParseSpec([]byte(mpiBase + "mpi: {ranks: 8, slotsPerTask: 2, command: mpirun}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m := j.MPI; m.Hosts() != 4 || j.Slots() != 4 || m.Resources.Cpus != DefaultLauncherCpus || m.Resources.Mem != DefaultMem {
		t.Fatalf("mpi defaults: %+v", m)
	}
	tests := []struct{ name, yaml, want string }{
		{"not a multiple", mpiBase + "mpi: {ranks: 7, slotsPerTask: 2, command: mpirun}\n", "spec.mpi.ranks: must be a multiple of mpi.slotsPerTask (2), got 7"},
		{"ranks", mpiBase + "mpi: {ranks: 0, command: mpirun}\n", "spec.mpi.ranks: must be 1 to 1000000, got 0"},
		{"slots", mpiBase + "mpi: {ranks: 2, slotsPerTask: 3, command: mpirun}\n", "spec.mpi.slotsPerTask: must be 1 to mpi.ranks (2), got 3"},
		{"hosts", mpiBase + "mpi: {ranks: 1001, command: mpirun}\n", "spec.mpi.ranks: at most 1000 rank hosts (mpi.ranks / mpi.slotsPerTask), got 1001"},
		{"command", mpiBase + "mpi: {ranks: 2}\n", "spec.mpi.command: required"},
		{"top command", mpiBase + "command: x\nmpi: {ranks: 2, command: mpirun}\n", "spec.command: not with mpi"},
		{"parallelism", mpiBase + "parallelism: 2\nmpi: {ranks: 2, command: mpirun}\n", "spec.parallelism: not with mpi"},
		{"gang", mpiBase + "gang: true\nmpi: {ranks: 2, command: mpirun}\n", "spec.gang: not with mpi"},
		{"launcher cpus", mpiBase + "mpi: {ranks: 2, command: mpirun, resources: {cpus: -1}}\n", "spec.mpi.resources.cpus: must be > 0, got -1"},
		{"unknown", mpiBase + "mpi: {ranks: 2, command: mpirun, np: 2}\n", "spec.mpi.np: unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSpec([]byte(tt.yaml))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func mpiAlloc(id, part, attempt string, st pb.AllocationState) *pb.Allocation {
	return &pb.Allocation{Id: id, State: st, AgentId: "ag-" + id,
		Labels: map[string]string{LabelJob: "j", LabelRun: "j-1", LabelMPI: part, LabelAttempt: attempt}}
}

func mpiTask(id, alloc, part string, st pb.TaskState, exit int32) *pb.Task {
	return &pb.Task{Id: id, AllocationId: alloc, State: st, ExitCode: exit,
		Labels: map[string]string{LabelJob: "j", LabelRun: "j-1", LabelMPI: part, LabelAttempt: "1"}}
}

const grantedState = pb.AllocationState_ALLOCATION_STATE_GRANTED

// TestDecide_MPIRun walks an MPI run: the gang, the rank hosts, the
// launcher once all run (with the hosts in its env), success.
func TestDecide_MPIRun(t *testing.T) {
	spec := specRec(t, mpiBase+"mpi: {ranks: 4, slotsPerTask: 2, command: mpirun, args: [-np, '4'], resources: {cpus: 0.5}}\n")
	run := &Run{ID: "j-1", Job: "j", Seq: 1, Cause: CauseManual, State: RunPending, Created: t0}
	v := View{Now: t0, Job: "j", Spec: spec, Runs: []*Run{run}}
	d := Decide(v)
	if len(d.Allocate) != 1 {
		t.Fatalf("allocate %+v", d.Allocate)
	}
	op := d.Allocate[0]
	if op.MPI != MPIHost || op.Req.GetCount() != 2 || op.Req.GetGang().GetMinCount() != 2 || op.Req.GetLabels()[LabelAttempt] != "1" || op.Req.GetResources().GetCpus() != 1 {
		t.Fatalf("gang request %+v %v", op, op.Req)
	}
	r := d.Put[0]
	if r.State != RunRunning || r.MPI.Attempt != 1 || len(r.Tasks) != 2 {
		t.Fatalf("run %+v", r)
	}

	// Granted: a rank host in each; the launcher waits for both to run.
	r.MPI.Allocated = true
	r.Tasks[0].Allocation, r.Tasks[1].Allocation = "h0", "h1"
	allocs := []*pb.Allocation{mpiAlloc("h0", MPIHost, "1", grantedState), mpiAlloc("h1", MPIHost, "1", grantedState)}
	d = Decide(View{Now: t0, Job: "j", Spec: spec, Runs: []*Run{r}, Allocs: allocs})
	if len(d.Launch) != 2 || len(d.Allocate) != 0 {
		t.Fatalf("launch %+v allocate %+v", d.Launch, d.Allocate)
	}
	if l := d.Launch[1].Req; l.GetCommand() != RankHostCommand[0] || l.GetLabels()[LabelMPI] != MPIHost || l.GetLabels()[LabelTask] != "1" {
		t.Fatalf("rank host request %v", l)
	}
	tasks := []*pb.Task{mpiTask("t0", "h0", MPIHost, pb.TaskState_TASK_STATE_RUNNING, 0), mpiTask("t1", "h1", MPIHost, pb.TaskState_TASK_STATE_STARTING, 0)}
	r.Tasks[0].Task, r.Tasks[1].Task = "t0", "t1"
	if d = Decide(View{Now: t0, Job: "j", Spec: spec, Runs: []*Run{r}, Allocs: allocs, Tasks: tasks}); len(d.Allocate) != 0 || len(d.Launch) != 0 {
		t.Fatalf("one rank host staging: allocate %+v launch %+v", d.Allocate, d.Launch)
	}
	tasks[1].State = pb.TaskState_TASK_STATE_RUNNING
	d = Decide(View{Now: t0, Job: "j", Spec: spec, Runs: []*Run{r}, Allocs: allocs, Tasks: tasks})
	if len(d.Allocate) != 1 || d.Allocate[0].MPI != MPILauncher || d.Allocate[0].Req.GetGang() != nil || d.Allocate[0].Req.GetResources().GetCpus() != 0.5 {
		t.Fatalf("launcher allocate %+v", d.Allocate)
	}

	// The launcher's allocation is granted: launched with the hosts.
	r.MPI.Launcher.Allocation = "l"
	allocs = append(allocs, mpiAlloc("l", MPILauncher, "1", grantedState))
	d = Decide(View{Now: t0, Job: "j", Spec: spec, Runs: []*Run{r}, Allocs: allocs, Tasks: tasks})
	if len(d.Launch) != 1 || d.Launch[0].MPI != MPILauncher {
		t.Fatalf("launcher launch %+v", d.Launch)
	}
	env := d.Launch[0].Req.GetEnv()
	if env[EnvHosts] != "t0:2,t1:2" || env[EnvHostfileContent] != "t0 slots=2\nt1 slots=2\n" || env[EnvRanks] != "4" || d.Launch[0].Req.GetCommand() != "mpirun" {
		t.Fatalf("launcher request %v", d.Launch[0].Req)
	}
	if _, ok := env[EnvToken]; ok {
		t.Fatal("the decision holds the token; the controller adds it")
	}

	// The launcher exits 0: the run succeeded, everything is revoked.
	r.MPI.Launcher.Task = "tl"
	tasks = append(tasks, mpiTask("tl", "l", MPILauncher, pb.TaskState_TASK_STATE_FINISHED, 0))
	d = Decide(View{Now: t0, Job: "j", Spec: spec, Runs: []*Run{r}, Allocs: allocs, Tasks: tasks})
	if f := d.Put[0]; f.State != RunSucceeded || f.Succeeded != 1 || len(d.Revoke) != 3 {
		t.Fatalf("end: %s %q revoke %v", f.State, f.Reason, d.Revoke)
	}
}

// TestDecide_MPIRetriesWholeRun: a rank host that ends fails the attempt:
// every allocation goes, and after the backoff a new gang is asked for;
// allocations of the old attempt are revoked, never adopted.
func TestDecide_MPIRetriesWholeRun(t *testing.T) {
	spec := specRec(t, mpiBase+"backoffLimit: 1\nbackoff: {initial: 1s}\nmpi: {ranks: 2, command: mpirun}\n")
	r := &Run{ID: "j-1", Job: "j", Seq: 1, State: RunRunning, Started: t0, Created: t0, Spec: &spec.Spec,
		Tasks: []TaskRecord{{Index: 0, Allocation: "h0", Task: "t0", Attempts: 1}, {Index: 1, Allocation: "h1", Task: "t1", Attempts: 1}},
		MPI:   &MPIRun{Attempt: 1, Allocated: true, Launcher: TaskRecord{Index: -1, Allocation: "l", Task: "tl", Attempts: 1}}}
	allocs := []*pb.Allocation{mpiAlloc("h0", MPIHost, "1", grantedState), mpiAlloc("h1", MPIHost, "1", grantedState), mpiAlloc("l", MPILauncher, "1", grantedState)}
	tasks := []*pb.Task{mpiTask("t0", "h0", MPIHost, pb.TaskState_TASK_STATE_RUNNING, 0),
		mpiTask("t1", "h1", MPIHost, pb.TaskState_TASK_STATE_KILLED, 137), mpiTask("tl", "l", MPILauncher, pb.TaskState_TASK_STATE_RUNNING, 0)}
	tasks[1].Reason = "oom"
	d := Decide(View{Now: t0, Job: "j", Spec: spec, Runs: []*Run{r}, Allocs: allocs, Tasks: tasks})
	n := d.Put[0]
	if n.State != RunRunning || n.MPI.Attempt != 2 || n.MPI.Failures != 1 || n.MPI.LastReason != "rank host 1 ended (oom)" ||
		n.Tasks[0].Allocation != "" || n.MPI.Launcher.Allocation != "" || len(d.Revoke) != 3 || d.RequeueAfter != time.Second {
		t.Fatalf("after a rank host ended: %+v %+v revoke %v requeue %s", n, n.MPI, d.Revoke, d.RequeueAfter)
	}
	// During the backoff: nothing asked; the old attempt's allocations
	// (still shown) are revoked again, not adopted.
	d = Decide(View{Now: t0.Add(500 * time.Millisecond), Job: "j", Spec: spec, Runs: []*Run{n}, Allocs: allocs, Tasks: tasks})
	if len(d.Allocate) != 0 || len(d.Revoke) != 3 {
		t.Fatalf("backoff: allocate %+v revoke %v", d.Allocate, d.Revoke)
	}
	d = Decide(View{Now: t0.Add(time.Second), Job: "j", Spec: spec, Runs: []*Run{n}})
	if len(d.Allocate) != 1 || d.Allocate[0].Req.GetLabels()[LabelAttempt] != "2" || d.Allocate[0].Req.GetGang().GetMinCount() != 2 {
		t.Fatalf("attempt 2: allocate %+v", d.Allocate)
	}
	// Attempt 2's launcher exits 3: backoffLimit 1 is spent.
	n = d.Put[0]
	n.MPI.Allocated = true
	n.Tasks[0].Allocation, n.Tasks[0].Task, n.Tasks[1].Allocation, n.Tasks[1].Task = "h2", "t2", "h3", "t3"
	n.MPI.Launcher.Allocation, n.MPI.Launcher.Task = "l2", "tl2"
	allocs = []*pb.Allocation{mpiAlloc("h2", MPIHost, "2", grantedState), mpiAlloc("h3", MPIHost, "2", grantedState), mpiAlloc("l2", MPILauncher, "2", grantedState)}
	tasks = []*pb.Task{mpiTask("t2", "h2", MPIHost, pb.TaskState_TASK_STATE_RUNNING, 0), mpiTask("t3", "h3", MPIHost, pb.TaskState_TASK_STATE_RUNNING, 0),
		mpiTask("tl2", "l2", MPILauncher, pb.TaskState_TASK_STATE_FAILED, 3)}
	d = Decide(View{Now: t0.Add(2 * time.Second), Job: "j", Spec: spec, Runs: []*Run{n}, Allocs: allocs, Tasks: tasks})
	if f := d.Put[0]; f.State != RunFailed || f.Reason != "launcher exited 3 after 2 attempts" || len(d.Revoke) != 3 {
		t.Fatalf("end: %s %q revoke %v", f.State, f.Reason, d.Revoke)
	}
}

// TestDecide_MPIAdoptsUnrecorded: a leader that stopped after its
// Allocate and Launch, before recording them: the next one adopts the
// gang and the launcher rather than asking again.
func TestDecide_MPIAdoptsUnrecorded(t *testing.T) {
	spec := specRec(t, mpiBase+"mpi: {ranks: 2, command: mpirun}\n")
	r := &Run{ID: "j-1", Job: "j", Seq: 1, State: RunRunning, Started: t0, Created: t0, Spec: &spec.Spec,
		Tasks: []TaskRecord{{Index: 0}, {Index: 1}}, MPI: &MPIRun{Attempt: 1, Launcher: TaskRecord{Index: -1}}}
	allocs := []*pb.Allocation{mpiAlloc("h1", MPIHost, "1", grantedState), mpiAlloc("h0", MPIHost, "1", grantedState), mpiAlloc("l", MPILauncher, "1", grantedState)}
	tasks := []*pb.Task{mpiTask("t0", "h0", MPIHost, pb.TaskState_TASK_STATE_RUNNING, 0), mpiTask("t1", "h1", MPIHost, pb.TaskState_TASK_STATE_RUNNING, 0),
		mpiTask("tl", "l", MPILauncher, pb.TaskState_TASK_STATE_RUNNING, 0)}
	d := Decide(View{Now: t0, Job: "j", Spec: spec, Runs: []*Run{r}, Allocs: allocs, Tasks: tasks})
	if len(d.Allocate) != 0 || len(d.Launch) != 0 || len(d.Revoke) != 0 {
		t.Fatalf("made again: allocate %+v launch %+v revoke %v", d.Allocate, d.Launch, d.Revoke)
	}
	a := d.Put[0]
	if a.Tasks[0].Allocation != "h0" || a.Tasks[0].Task != "t0" || a.Tasks[1].Task != "t1" || !a.MPI.Allocated || a.MPI.Launcher.Task != "tl" {
		t.Fatalf("not adopted: %+v %+v", a.Tasks, a.MPI)
	}
}
