package e2e

import (
	"context"
	"sync"
	"testing"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestSimAgents_Gang is the CI-sized path of BenchmarkGang1000 and
// BenchmarkShortTasks, checked for correctness, not time: against a
// `dcosd kernel`, 10 simulated agents joined with an agent-join token
// take a 100-task gang granted at one revision, all RUNNING, then all
// KILLED and the cluster empty after a revoke; then a burst of 200 `true`
// tasks, 32 in flight, each ends FINISHED exactly once with exit code 0.
func TestSimAgents_Gang(t *testing.T) {
	s := startSimBench(t, 10)

	allocs, tasks, _, _ := s.runGang(t, 100, false) // one LaunchBatch
	revs := map[int64]bool{}
	for _, a := range listAllocations(t, s.fw).GetAllocations() {
		if a.GetGangMin() != 100 {
			t.Errorf("allocation %s: gang_min %d, want 100 (a record of its gang)", a.GetId(), a.GetGangMin())
		}
	}
	for _, id := range tasks {
		if st := s.f.statesOf(id); !containsState(st, pb.TaskState_TASK_STATE_RUNNING) {
			t.Errorf("task %s: states %v, want RUNNING", id, st)
		}
	}
	// Every instance was granted by the same commit: the GRANTED events
	// of the gang share one revision.
	w := s.e.watch(s.e.op(), 1)
	for _, a := range allocs {
		ev := w.waitFor(t, "GRANTED of "+a.GetId(), allocEvent(a.GetId(), pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED))
		revs[ev.GetRevision()] = true
	}
	if len(revs) != 1 {
		t.Errorf("gang granted at revisions %v, want one", revs)
	}
	s.revokeAll(t, tasks)
	for _, id := range tasks {
		if n := ends(s.f.statesOf(id)); n != 1 {
			t.Errorf("task %s: %d ends (%v), want 1", id, n, s.f.statesOf(id))
		}
	}

	const burst = 200
	var mu sync.Mutex
	var short []string
	var wg sync.WaitGroup
	sem := make(chan struct{}, launchParallelism)
	for range burst {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ar, err := s.fw.Allocate(context.Background(), connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: 16 * mi}}))
			if err != nil || ar.Msg.GetAllocations()[0].GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
				t.Errorf("Allocate = %v, %v; want one GRANTED", ar, err)
				return
			}
			a := ar.Msg.GetAllocations()[0]
			res, err := s.fw.Launch(context.Background(), connect.NewRequest(&pb.LaunchRequest{AllocationId: a.GetId(), Command: "true"}))
			if err != nil {
				t.Errorf("Launch: %v", err)
				return
			}
			id := res.Msg.GetTask().GetId()
			s.f.wait(t, id, pb.TaskState_TASK_STATE_FINISHED)
			if _, err := s.fw.Revoke(context.Background(), connect.NewRequest(&pb.RevokeRequest{Id: a.GetId()})); err != nil {
				t.Errorf("Revoke: %v", err)
			}
			mu.Lock()
			short = append(short, id)
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	eventually(t, "no allocation left", func() (bool, string) {
		return len(listAllocations(t, s.fw).GetAllocations()) == 0, ""
	})
	byID := map[string]*pb.Task{}
	for _, k := range listTasks(t, s.fw).GetTasks() {
		byID[k.GetId()] = k
	}
	for _, id := range short {
		st := s.f.statesOf(id)
		if n := ends(st); n != 1 || st[len(st)-1] != pb.TaskState_TASK_STATE_FINISHED {
			t.Errorf("task %s: states %v, want one end, FINISHED", id, st)
		}
		if k := byID[id]; k != nil && (k.GetState() != pb.TaskState_TASK_STATE_FINISHED || k.GetExitCode() != 0) {
			t.Errorf("task %s listed %v exit %d, want FINISHED exit 0", id, k.GetState(), k.GetExitCode())
		}
	}
	eventually(t, "the simulated agents to count every task's end", func() (bool, string) {
		st := s.sim.Stats()
		return st.Finished == burst && st.Killed == 100 && st.Launched == 100+burst,
			sprint("stats ", st, ", want 300 launched, 200 finished, 100 killed")
	})
}

func containsState(st []pb.TaskState, s pb.TaskState) bool {
	for _, x := range st {
		if x == s {
			return true
		}
	}
	return false
}

// ends counts the terminal states in st.
func ends(st []pb.TaskState) int {
	n := 0
	for _, s := range st {
		if s >= pb.TaskState_TASK_STATE_FINISHED {
			n++
		}
	}
	return n
}
