package kernel

import pb "github.com/dcos-kernel/dcos/syscalls/v1"

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

	cycle bool // something happened that may let a pending request fit
}

func newChanges() *Changes {
	return &Changes{
		Agents:      map[string]*pb.Agent{},
		Allocations: map[string]*pb.Allocation{},
		Tasks:       map[string]*pb.Task{},
		Volumes:     map[string]*pb.Volume{},

		DestroyedVolumes: map[string]*pb.Volume{},
	}
}

// Empty reports whether there is nothing to commit.
func (c *Changes) Empty() bool {
	return len(c.Agents) == 0 && len(c.Allocations) == 0 && len(c.Tasks) == 0 && len(c.Volumes) == 0 && len(c.DestroyedVolumes) == 0 && len(c.Events) == 0 && c.Policies == nil
}
