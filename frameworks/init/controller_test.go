package dinit

import (
	"fmt"
	"testing"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestKeysOf(t *testing.T) {
	svc := map[string]string{LabelService: "web"}
	tests := []struct {
		name string
		ev   *pb.Event
		want string
	}{
		{"allocation", &pb.Event{Kind: pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED, Allocation: &pb.Allocation{Labels: svc}}, "[web]"},
		{"task", &pb.Event{Kind: pb.EventKind_EVENT_KIND_TASK_STATE, Task: &pb.Task{Labels: svc}}, "[web]"},
		{"task health", &pb.Event{Kind: pb.EventKind_EVENT_KIND_TASK_HEALTH, Task: &pb.Task{Labels: svc}}, "[web]"},
		{"spec", &pb.Event{Kind: pb.EventKind_EVENT_KIND_STATE_CHANGED, State: &pb.StateEntry{Key: "specs/db"}}, "[db]"},
		{"spec deleted", &pb.Event{Kind: pb.EventKind_EVENT_KIND_STATE_CHANGED, State: &pb.StateEntry{Key: "specs/db", Deleted: true}}, "[db]"},
		{"own status", &pb.Event{Kind: pb.EventKind_EVENT_KIND_STATE_CHANGED, State: &pb.StateEntry{Key: "status/db"}}, "[]"},
		{"history", &pb.Event{Kind: pb.EventKind_EVENT_KIND_STATE_CHANGED, State: &pb.StateEntry{Key: "history/db/0000000001"}}, "[]"},
		{"unlabeled", &pb.Event{Kind: pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED, Allocation: &pb.Allocation{}}, "[]"},
		{"agent", &pb.Event{Kind: pb.EventKind_EVENT_KIND_AGENT_LOST, Agent: &pb.Agent{Id: "ag1"}}, "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fmt.Sprint(KeysOf(tt.ev)); got != tt.want {
				t.Errorf("KeysOf = %s, want %s", got, tt.want)
			}
		})
	}
}
