package kernel

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Changes is what one loop iteration did to the table: the objects to
// write (a nil value deletes) and the events to publish. The store commits
// it in one transaction. Object values are the table's live objects: a
// Store must serialise them before the table lock is released.
type Changes struct {
	Agents      map[string]*pb.Agent
	Allocations map[string]*pb.Allocation
	Tasks       map[string]*pb.Task
	Volumes     map[string]*pb.Volume // by name
	// DestroyedVolumes are tombstones of destroyed volumes, by name.
	DestroyedVolumes map[string]*pb.Volume
	Events           []*pb.Event
	// Seq is the id sequence after this batch.
	Seq uint64
	// Policies, when set, is the new durable policy choice.
	Policies *PolicyState
	// Elections are the elections written, by owner and name (elections
	// are never deleted: their epoch counter outlives every holder).
	Elections map[ElectionKey]*pb.Leadership
	// State are the framework state keys written (a nil value deletes),
	// by owner and key. Their Revision is 0 until the commit: the key's
	// revision is the revision of the transaction that writes it.
	State map[StateKey]*pb.StateEntry
	// Roles are the role settings RoleSet wrote, by name.
	Roles map[string]*pb.Role
	// Audit are the audit records of the batch, numbered and chained
	// (audit.go); AuditPrune, when set, deletes expired ones.
	Audit      []*pb.AuditRecord
	AuditPrune *AuditPrune

	cycle      bool  // something happened that may let a pending request fit
	stateBytes int64 // bytes of state values written (MaxBatchStateBytes)

	auditQueued int // Audit[:auditQueued] came from Kernel.Audit's queue

	// auditTime is the batch's time as its audit records carry it (one

	// message for all, see auditOp).

	auditTime *timestamppb.Timestamp

	// Memory-only changes the read view must see too (view.go): lease
	// renewals (not written, see Table.Campaign), and the tasks forgotten
	// with their allocation, in order, for ListTasks' completed tasks.
	renewed map[ElectionKey]*pb.Leadership
	ended   []*pb.Task
}

func newChanges() *Changes {
	return &Changes{
		Agents:      map[string]*pb.Agent{},
		Allocations: map[string]*pb.Allocation{},
		Tasks:       map[string]*pb.Task{},
		Volumes:     map[string]*pb.Volume{},

		DestroyedVolumes: map[string]*pb.Volume{},
		Elections:        map[ElectionKey]*pb.Leadership{},
		State:            map[StateKey]*pb.StateEntry{},
		Roles:            map[string]*pb.Role{},
	}
}

// Empty reports whether there is nothing to commit.
func (c *Changes) Empty() bool {
	return len(c.Agents) == 0 && len(c.Allocations) == 0 && len(c.Tasks) == 0 && len(c.Volumes) == 0 && len(c.DestroyedVolumes) == 0 && len(c.Events) == 0 && c.Policies == nil &&
		len(c.Elections) == 0 && len(c.State) == 0 && len(c.Roles) == 0 &&
		len(c.Audit) == 0 && c.AuditPrune == nil
}
