package kernel

import (
	"cmp"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestView_MatchesTable drives a table through every kind of change a
// batch can make, applies each committed batch to a replica as the kernel
// does (cloneChanges, applyCommitted), and checks after each batch that
// every read answers the same on both: the replica is what reads see.
func TestView_MatchesTable(t *testing.T) {
	tb := NewTable()
	agentTok := Principal{Name: "node-1", Role: RoleAgent}
	view := replicate(tb)
	rev := int64(1)
	now := t0
	batch := func(name string, fn func(c *Changes)) {
		t.Helper()
		c := newChanges()
		fn(c)
		if c.cycle {
			tb.Cycle(FirstFit{}, uint64(rev), now, c)
		}
		rev++
		tb.Committed(c, rev)
		view.applyCommitted(cloneChanges(c), rev)
		now = now.Add(time.Second)
		sameReads(t, name, tb, view, now, agentTok)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var tasks []string
	var allocs []string
	batch("register", func(c *Changes) {
		for range 3 {
			r := agentReq(4, 1024, map[string]string{"zone": "a"})
			r.Resources.DiskBytes = 1024 * mi
			_, err := tb.Register(ops, r, now, c)
			must(err)
		}
		_, err := tb.Register(agentTok, agentReq(2, 512, nil), now, c)
		must(err)
	})
	batch("allocate", func(c *Changes) {
		for _, a := range tb.Allocate(fwA, allocReq(1, 64, 3), now, c) {
			allocs = append(allocs, a.GetId())
		}
		tb.Allocate(fwB, allocReq(100, 64, 1), now, c) // stays pending
		tb.Allocate(fwA, claimReq("db", &pb.VolumeClaim{Name: "data", SizeBytes: 64 * mi}), now, c)
	})
	batch("launch", func(c *Changes) {
		for _, id := range allocs {
			k, err := tb.Launch(fwA, &pb.LaunchRequest{AllocationId: id, Command: "x"}, now, c)
			must(err)
			tasks = append(tasks, k.GetId())
		}
	})
	batch("report", func(c *Changes) {
		for _, id := range tasks {
			k := tb.tasks[id]
			must(tb.Report(ops, &pb.ReportTaskStatusRequest{TaskId: id, AgentId: k.GetAgentId(), State: pb.TaskState_TASK_STATE_RUNNING, Pid: 7}, now, c))
		}
	})
	// Memory only, through the view as Kernel.Heartbeat does: the
	// replica shares the maps with the table.
	for _, id := range tasks[:2] {
		k := tb.tasks[id]
		_, err := view.viewHeartbeat(ops, &pb.HeartbeatRequest{AgentId: k.GetAgentId(), Plugins: []*pb.PluginInfo{{Name: "p"}},
			Images: &pb.ImageList{Images: []*pb.ImageInfo{{Ref: "img:1"}}}, Usage: []*pb.TaskUsage{{TaskId: id, CpuNs: 5, MemBytes: 9}}}, now)
		must(err)
	}
	sameReads(t, "heartbeat", tb, view, now, agentTok)
	batch("task ends, allocation revoked", func(c *Changes) {
		k := tb.tasks[tasks[0]]
		must(tb.Report(ops, &pb.ReportTaskStatusRequest{TaskId: k.GetId(), AgentId: k.GetAgentId(), State: pb.TaskState_TASK_STATE_FINISHED}, now, c))
		must(tb.Revoke(fwA, allocs[1], "", now, c))
		tb.UsageEvents(now, c)
	})
	batch("coordination and settings", func(c *Changes) {
		_, _, err := tb.Campaign(fwA.Name, "lead", "me", "addr", time.Minute, now, c)
		must(err)
		must(tb.StatePut(fwA.Name, &pb.StatePutRequest{Key: "k1", Value: []byte("v1")}, now, c))
		must(tb.StatePut(fwA.Name, &pb.StatePutRequest{Key: "k2", Value: []byte("v2")}, now, c))
		w := 3.0
		tb.SetRole("db", &w, &Resources{MilliCPU: 8000}, c)
		tb.setActive("other", NativeFirstFit, c)
	})
	batch("renewal, delete, drain", func(c *Changes) {
		_, _, err := tb.Campaign(fwA.Name, "lead", "me", "addr", time.Minute, now, c)
		must(err)
		must(tb.StateDelete(fwA.Name, &pb.StateDeleteRequest{Key: "k1"}, now, c))
		_, err = tb.Drain(tb.tasks[tasks[2]].GetAgentId(), 0, false, now, c)
		must(err)
	})
	batch("agent lost", func(c *Changes) {
		tb.Expire(now.Add(time.Hour), time.Minute, c)
	})
	if got := len(view.completed); got == 0 {
		t.Errorf("no completed tasks in the view")
	}
}

// sameReads fails t unless every read method answers the same on tb and
// view.
func sameReads(t *testing.T, step string, tb, view *Table, now time.Time, agentTok Principal) {
	t.Helper()
	if tb.Revision() != view.Revision() {
		t.Errorf("%s: revision %d, view %d", step, tb.Revision(), view.Revision())
	}
	byID := func(a, b proto.Message) int { return cmp.Compare(idOf(a), idOf(b)) }
	same := func(what string, x, y []proto.Message) {
		t.Helper()
		slices.SortFunc(x, byID)
		slices.SortFunc(y, byID)
		if !slices.EqualFunc(x, y, proto.Equal) {
			t.Errorf("%s: %s differ:\ntable %v\nview  %v", step, what, x, y)
		}
	}
	same("agents", msgs(tb.Agents()), msgs(view.Agents()))
	same("agents (shared)", msgs(tb.Agents()), msgs(view.agentsShared()))
	for _, p := range []Principal{ops, fwA, fwB, agentTok} {
		same("allocations of "+p.Name, msgs(tb.Allocations(p, "")), msgs(view.Allocations(p, "")))
		same("tasks of "+p.Name, msgs(tb.Tasks(p, "", "")), msgs(view.Tasks(p, "", "")))
		same("volumes of "+p.Name, msgs(tb.Volumes(p, "")), msgs(view.Volumes(p, "")))
		if tb.boundAgent(p) != view.boundAgent(p) {
			t.Errorf("%s: %s bound to %q, view %q", step, p.Name, tb.boundAgent(p), view.boundAgent(p))
		}
	}
	same("roles", msgs(tb.Roles()), msgs(view.Roles()))
	same("state", msgs(tb.StateList(fwA.Name, "", false)), msgs(view.StateList(fwA.Name, "", false)))
	if x, y := tb.Leader(fwA.Name, "lead", now), view.Leader(fwA.Name, "lead", now); !proto.Equal(x, y) {
		t.Errorf("%s: leader %v, view %v", step, x, y)
	}
	if tb.policies.Active != view.policies.Active || !slices.Equal(tb.policies.Previous, view.policies.Previous) {
		t.Errorf("%s: policies %+v, view %+v", step, tb.policies, view.policies)
	}
	a, al, ts := tb.Counts()
	va, val, vts := view.Counts()
	if a != va || al != val || ts != vts {
		t.Errorf("%s: counts %d/%d/%d, view %d/%d/%d", step, a, al, ts, va, val, vts)
	}
}

func msgs[M proto.Message](l []M) []proto.Message {
	out := make([]proto.Message, len(l))
	for i, m := range l {
		out[i] = m
	}
	return out
}

// idOf is what sorts a read's answer: the id, name or key.
func idOf(m proto.Message) string {
	switch m := m.(type) {
	case *pb.Agent:
		return m.GetId()
	case *pb.Allocation:
		return m.GetId()
	case *pb.Task:
		return m.GetId()
	case *pb.Volume:
		return m.GetName()
	case *pb.Role:
		return m.GetName()
	case *pb.StateEntry:
		return m.GetKey()
	}
	return ""
}

// TestShallowAgent_EveryField sets every field of an Agent and checks
// that shallowAgent copies it: a field added to the ABI must be added
// there too.
func TestShallowAgent_EveryField(t *testing.T) {
	g := &pb.Agent{}
	m := g.ProtoReflect()
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.IsMap():
			m.Mutable(fd).Map().Set(protoreflect.ValueOfString("k").MapKey(), protoreflect.ValueOfString("v"))
		case fd.IsList():
			l := m.Mutable(fd).List()
			l.Append(l.NewElement())
		case fd.Message() != nil:
			m.Mutable(fd)
		case fd.Kind() == protoreflect.BoolKind:
			m.Set(fd, protoreflect.ValueOfBool(true))
		case fd.Kind() == protoreflect.StringKind:
			m.Set(fd, protoreflect.ValueOfString("x"))
		case fd.Kind() == protoreflect.EnumKind:
			m.Set(fd, protoreflect.ValueOfEnum(1))
		default:
			t.Fatalf("field %s: kind %v not covered by this test", fd.Name(), fd.Kind())
		}
		if !m.Has(fd) {
			t.Fatalf("field %s: not set", fd.Name())
		}
	}
	if cp := shallowAgent(g); !proto.Equal(cp, g) {
		t.Fatalf("shallowAgent misses fields:\ngot  %v\nwant %v", cp, g)
	}
}
