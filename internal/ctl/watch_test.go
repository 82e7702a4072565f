package ctl

import (
	"context"
	"errors"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestRun_Watch(t *testing.T) {
	events := []*syscallsv1.Event{
		{Revision: 5, Kind: syscallsv1.EventKind_EVENT_KIND_ALLOCATION_PENDING, Allocation: &syscallsv1.Allocation{Id: "a-2", State: syscallsv1.AllocationState_ALLOCATION_STATE_PENDING, PendingReason: "no fit"}},
		{Revision: 6, Kind: syscallsv1.EventKind_EVENT_KIND_TASK_STATE, Task: &syscallsv1.Task{Id: "t-1", State: syscallsv1.TaskState_TASK_STATE_FINISHED}},
		{Revision: 7, Kind: syscallsv1.EventKind_EVENT_KIND_AGENT_LOST, Agent: &syscallsv1.Agent{Id: "ag-1", State: syscallsv1.AgentState_AGENT_STATE_LOST}, Reason: "heartbeat timeout"},
	}
	tests := []struct {
		name  string
		args  []string
		kinds []syscallsv1.EventKind
		after int64
	}{
		{"all", nil, allKindsButUsage(), 0},
		{"after", []string{"--after", "4"}, allKindsButUsage(), 4},
		{"task", []string{"--kind", "task"}, []syscallsv1.EventKind{syscallsv1.EventKind_EVENT_KIND_TASK_STATE, syscallsv1.EventKind_EVENT_KIND_TASK_HEALTH, syscallsv1.EventKind_EVENT_KIND_TASK_EXEC}, 0},
		{"allocation and agent", []string{"--kind", "allocation", "-k", "Agent"}, []syscallsv1.EventKind{
			syscallsv1.EventKind_EVENT_KIND_ALLOCATION_GRANTED, syscallsv1.EventKind_EVENT_KIND_ALLOCATION_REVOKED, syscallsv1.EventKind_EVENT_KIND_ALLOCATION_PENDING,
			syscallsv1.EventKind_EVENT_KIND_AGENT_REGISTERED, syscallsv1.EventKind_EVENT_KIND_AGENT_LOST, syscallsv1.EventKind_EVENT_KIND_AGENT_DRAINING, syscallsv1.EventKind_EVENT_KIND_AGENT_UNDRAINED,
		}, 0},
		{"exact kind", []string{"--kind", "agent_lost"}, []syscallsv1.EventKind{syscallsv1.EventKind_EVENT_KIND_AGENT_LOST}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			k := &fakeKernel{events: events}
			url := k.serve(t)
			r := runCtl(t, context.Background(), "", append([]string{"--kernel", url, "watch"}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			assertProto(t, k.last("Watch"), &syscallsv1.WatchRequest{AfterRevision: tt.after, Kinds: tt.kinds})
			want := [][]string{
				{"5", "allocation_pending", "a-2", "PENDING", "no", "fit"},
				{"6", "task_state", "t-1", "FINISHED", "exit", "0"},
				{"7", "agent_lost", "ag-1", "LOST", "heartbeat", "timeout"},
			}
			if got := rows(r.stdout); !equalRows(got, want) {
				t.Errorf("got\n%s\nwant %q", r.stdout, want)
			}
		})
	}
	t.Run("json lines", func(t *testing.T) {
		isolate(t)
		k := &fakeKernel{events: events}
		url := k.serve(t)
		r := runCtl(t, context.Background(), "", "--kernel", url, "watch", "-o", "json")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != len(events) {
			t.Fatalf("got %d lines, want %d", len(lines), len(events))
		}
		for i, l := range lines {
			got := &syscallsv1.Event{}
			if err := protojson.Unmarshal([]byte(l), got); err != nil {
				t.Fatal(err)
			}
			assertProto(t, got, events[i])
		}
	})
}

func TestRun_PolicyWatch(t *testing.T) {
	events := []*syscallsv1.Event{
		{Revision: 11, Kind: syscallsv1.EventKind_EVENT_KIND_POLICY_SWAPPED, Reason: "policy native-first-fit → spread: loaded by ops",
			Policy: &syscallsv1.PolicyInfo{Name: "spread", Active: true}},
		{Revision: 12, Kind: syscallsv1.EventKind_EVENT_KIND_POLICY_FAILED, Reason: "policy spread failed: deadline; falling back to native-first-fit",
			Policy: &syscallsv1.PolicyInfo{Name: "spread", LastError: "deadline"}},
		{Revision: 13, Kind: syscallsv1.EventKind_EVENT_KIND_POLICY_FAILED, Policy: &syscallsv1.PolicyInfo{Name: "greedy", LastError: "trap:\nunreachable"}},
	}
	policyKinds := []syscallsv1.EventKind{syscallsv1.EventKind_EVENT_KIND_POLICY_SWAPPED, syscallsv1.EventKind_EVENT_KIND_POLICY_FAILED}
	tests := []struct {
		name  string
		args  []string
		kinds []syscallsv1.EventKind
	}{
		{"all but usage", nil, allKindsButUsage()},
		{"usage", []string{"--kind", "usage"}, []syscallsv1.EventKind{syscallsv1.EventKind_EVENT_KIND_TASK_USAGE}},
		{"task, without usage", []string{"--kind", "task"}, []syscallsv1.EventKind{syscallsv1.EventKind_EVENT_KIND_TASK_STATE, syscallsv1.EventKind_EVENT_KIND_TASK_HEALTH, syscallsv1.EventKind_EVENT_KIND_TASK_EXEC}},
		{"policy", []string{"--kind", "policy"}, policyKinds},
		{"exact", []string{"-k", "policy_failed"}, policyKinds[1:]},
		{"policy and agent", []string{"--kind", "Policy", "--kind", "agent"}, append(append([]syscallsv1.EventKind{}, policyKinds...),
			syscallsv1.EventKind_EVENT_KIND_AGENT_REGISTERED, syscallsv1.EventKind_EVENT_KIND_AGENT_LOST,
			syscallsv1.EventKind_EVENT_KIND_AGENT_DRAINING, syscallsv1.EventKind_EVENT_KIND_AGENT_UNDRAINED)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			k := &fakeKernel{events: events}
			url := k.serve(t)
			r := runCtl(t, context.Background(), "", append([]string{"--kernel", url, "watch"}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			assertProto(t, k.last("Watch"), &syscallsv1.WatchRequest{Kinds: tt.kinds})
			want := [][]string{
				{"11", "policy_swapped", "spread", "ACTIVE", "policy", "native-first-fit", "→", "spread:", "loaded", "by", "ops"},
				{"12", "policy_failed", "spread", "-", "policy", "spread", "failed:", "deadline;", "falling", "back", "to", "native-first-fit"},
				{"13", "policy_failed", "greedy", "-", "trap:", "unreachable"},
			}
			if got := rows(r.stdout); !equalRows(got, want) {
				t.Errorf("got\n%s\nwant %q", r.stdout, want)
			}
		})
	}
	t.Run("unknown kind lists policy", func(t *testing.T) {
		isolate(t)
		r := runCtl(t, context.Background(), "", "--kernel", "127.0.0.1:1", "watch", "--kind", "frob")
		if r.code != exitUsageError || !strings.Contains(r.stderr, "policy, policy_failed, policy_swapped") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

// TestRun_WatchFellBehind: a watch the kernel ends for falling behind
// resumes after the last revision printed (saying so on stderr), with
// nothing lost or printed twice; a compacted revision still ends it.
func TestRun_WatchFellBehind(t *testing.T) {
	isolate(t)
	resync := func(msg string, compacted int64) error {
		ce := connect.NewError(connect.CodeFailedPrecondition, errors.New(msg))
		d, err := connect.NewErrorDetail(&syscallsv1.ResyncInfo{CurrentRevision: 9, CompactRevision: compacted})
		if err != nil {
			t.Fatal(err)
		}
		ce.AddDetail(d)
		return ce
	}
	ev := func(rev int64, id string) *syscallsv1.Event {
		return &syscallsv1.Event{Revision: rev, Kind: syscallsv1.EventKind_EVENT_KIND_TASK_STATE, Task: &syscallsv1.Task{Id: id, State: syscallsv1.TaskState_TASK_STATE_RUNNING}}
	}
	k := &fakeKernel{firstWatches: []fakeWatch{
		{[]*syscallsv1.Event{ev(5, "t-1"), ev(6, "t-2")}, resync("watch: fell behind: 1024 events buffered; resume after revision 6", 0)},
		{[]*syscallsv1.Event{ev(7, "t-3")}, resync("compacted: history up to revision 3 is gone", 3)},
	}}
	url := k.serve(t)
	r := runCtl(t, context.Background(), "", "--kernel", url, "watch", "--kind", "task")
	if r.code != exitCallError || !strings.Contains(r.stderr, "compacted") {
		t.Fatalf("exit %d, stderr %q: want the compaction to end the watch", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "watch fell behind; resuming after revision 6") {
		t.Errorf("stderr %q does not say it resumed", r.stderr)
	}
	var got []string
	for _, row := range rows(r.stdout) {
		got = append(got, row[0]+" "+row[2])
	}
	if strings.Join(got, ",") != "5 t-1,6 t-2,7 t-3" {
		t.Errorf("printed %q, want each event once", got)
	}
	var afters []int64
	for _, c := range k.recorded() {
		if c.method == "Watch" {
			afters = append(afters, c.req.(*syscallsv1.WatchRequest).GetAfterRevision())
		}
	}
	if len(afters) != 2 || afters[0] != 0 || afters[1] != 6 {
		t.Errorf("watches after %v, want [0 6]", afters)
	}
}

func TestEventLine_TaskExec(t *testing.T) {
	ev := &syscallsv1.Event{Revision: 9, Kind: syscallsv1.EventKind_EVENT_KIND_TASK_EXEC,
		Task: &syscallsv1.Task{Id: "t-1", State: syscallsv1.TaskState_TASK_STATE_RUNNING},
		Exec: &syscallsv1.ExecRecord{Principal: "ops", Command: "sh", Args: []string{"-c", "echo hi"}, Tty: true}}
	want := `9      task_exec            t-1              EXEC      by ops: sh -c "echo hi" (tty)`
	if got := eventLine(ev); got != want {
		t.Errorf("eventLine = %q, want %q", got, want)
	}
}
