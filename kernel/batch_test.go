package kernel_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestKernel_LaunchBatch: a batch's items are checked and authorized as
// Launch each, succeed or fail on their own with errors naming the item,
// and the tasks launched are committed in one transaction.
func TestKernel_LaunchBatch(t *testing.T) {
	t.Parallel()
	k, _ := newEnv(t).start(t)
	ctx := context.Background()
	register(t, k, 4, 1<<30)
	mine, err := k.Allocate(ctx, fwA, &pb.AllocateRequest{Count: 3, Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := k.Allocate(ctx, fwB, alloc(0.5, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	a := mine.GetAllocations()
	launch := func(alloc, cmd string) *pb.LaunchRequest { return &pb.LaunchRequest{AllocationId: alloc, Command: cmd} }
	secret := launch(a[2].GetId(), "x")
	secret.SecretEnv = map[string]string{"K": "v"}
	big := launch(a[2].GetId(), "x")
	big.Resources = &pb.Resources{Cpus: 2, MemBytes: 1 << 20}
	before := k.Revision()
	resp, err := k.LaunchBatch(ctx, fwA, &pb.LaunchBatchRequest{Launches: []*pb.LaunchRequest{
		launch(a[0].GetId(), "first"),
		launch(a[1].GetId(), ""),
		launch(theirs.GetAllocations()[0].GetId(), "x"),
		launch(a[1].GetId(), "second"),
		secret,
		big,
		launch(a[2].GetId(), "third"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ code, prefix string }{
		{"ok", ""},
		{"invalid_argument", "launches[1].command: "},
		{"not_found", "launches[2].allocation_id: "}, // another framework's: as unknown
		{"ok", ""},
		{"failed_precondition", "launches[4].secret_env: "}, // no KEK
		{"failed_precondition", "launches[5].resources: "},
		{"ok", ""},
	}
	if len(resp.GetResults()) != len(want) {
		t.Fatalf("%d results, want %d", len(resp.GetResults()), len(want))
	}
	launched := map[string]string{}
	for i, w := range want {
		r := resp.GetResults()[i]
		if r.GetCode() != w.code || !strings.HasPrefix(r.GetMessage(), w.prefix) || (w.code == "ok") != (r.GetTask() != nil) {
			t.Errorf("results[%d] = %v, want code %s, message %q...", i, r, w.code, w.prefix)
		}
		if r.GetTask() != nil {
			launched[r.GetTask().GetId()] = r.GetTask().GetCommand()
		}
	}
	if resp.GetRevision() <= before {
		t.Fatalf("revision %d, not after %d", resp.GetRevision(), before)
	}
	// One commit: every launch event is at the response's revision.
	evs := collect(t, k, fwA, &pb.WatchRequest{AfterRevision: before, Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_TASK_STATE}}, 3)
	for i, e := range evs {
		if e.GetRevision() != resp.GetRevision() || launched[e.GetTask().GetId()] != e.GetTask().GetCommand() {
			t.Errorf("event %d at revision %d for %v, want revision %d and one of %v", i, e.GetRevision(), e.GetTask(), resp.GetRevision(), launched)
		}
	}
	if n := len(k.ListTasks(ctx, fwA, &pb.ListTasksRequest{}).GetTasks()); n != 3 {
		t.Errorf("%d tasks listed, want the 3 launched", n)
	}

	for _, n := range []int{0, kernel.MaxBatchItems + 1} {
		_, err := k.LaunchBatch(ctx, fwA, &pb.LaunchBatchRequest{Launches: make([]*pb.LaunchRequest, n)})
		if kernel.CodeOf(err) != kernel.InvalidArgument || !strings.HasPrefix(err.Error(), "launches: ") {
			t.Errorf("a batch of %d: %v, want InvalidArgument naming launches", n, err)
		}
	}
	// Every item refused before the loop: no commit, the current revision.
	rev := k.Revision()
	resp, err = k.LaunchBatch(ctx, fwA, &pb.LaunchBatchRequest{Launches: []*pb.LaunchRequest{launch("", "x")}})
	if err != nil || resp.GetRevision() != rev || resp.GetResults()[0].GetCode() != "invalid_argument" {
		t.Errorf("a batch of one bad item: %v, %v; want its error at revision %d", resp, err, rev)
	}
}

// TestKernel_LaunchBatchSecrets: an item's secret_env is sealed as
// Launch seals it, and the results do not carry it.
func TestKernel_LaunchBatchSecrets(t *testing.T) {
	t.Parallel()
	e, kek := sealedEnv(t)
	k, _ := e.startWith(t, kernel.Config{Sealer: kek})
	ctx := context.Background()
	register(t, k, 4, 1<<30)
	a, err := k.Allocate(ctx, fwA, alloc(1, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := k.LaunchBatch(ctx, fwA, &pb.LaunchBatchRequest{Launches: []*pb.LaunchRequest{
		{AllocationId: a.GetAllocations()[0].GetId(), Command: "x", SecretEnv: map[string]string{"PASSWORD": "hunter2"}}}})
	if err != nil {
		t.Fatal(err)
	}
	task := resp.GetResults()[0].GetTask()
	if resp.GetResults()[0].GetCode() != "ok" || strings.Contains(task.String(), "hunter2") {
		t.Fatalf("result %v: want ok, without the secret's value", resp.GetResults()[0])
	}
	ts := k.ListTasks(ctx, fwA, &pb.ListTasksRequest{RevealSecrets: true}).GetTasks()
	if len(ts) != 1 || ts[0].GetRevealedSecretEnv()["PASSWORD"] != "hunter2" {
		t.Errorf("the owner's ListTasks with reveal_secrets: %v, want the secret unsealed", ts)
	}
}

// TestKernel_ReportTaskStatusBatch: reports are applied in order in one
// commit, each authorized as ReportTaskStatus (an agent reports only for
// itself), a task's three states in one batch emit the three events that
// three calls would, and refused items change nothing.
func TestKernel_ReportTaskStatusBatch(t *testing.T) {
	t.Parallel()
	k, _ := newEnv(t).start(t)
	ctx := context.Background()
	agA, agB := kernel.Principal{Name: "agents-a", Role: kernel.RoleAgent}, kernel.Principal{Name: "agents-b", Role: kernel.RoleAgent}
	reg := func(p kernel.Principal) string {
		r, err := k.RegisterAgent(ctx, p, &pb.RegisterAgentRequest{Hostname: p.Name, Resources: &pb.Resources{Cpus: 2, MemBytes: 1 << 30}})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetAgentId()
	}
	a1, a2 := reg(agA), reg(agB)
	on := func(agent string) string {
		r, err := k.Allocate(ctx, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20},
			Constraints: []*pb.Constraint{{Label: kernel.AgentLabel, Op: pb.Constraint_OP_EQUALS, Values: []string{agent}}}})
		if err != nil {
			t.Fatal(err)
		}
		l, err := k.Launch(ctx, fwA, &pb.LaunchRequest{AllocationId: r.GetAllocations()[0].GetId(), Command: "x"})
		if err != nil {
			t.Fatal(err)
		}
		return l.GetTask().GetId()
	}
	t1, t2, t3 := on(a1), on(a1), on(a2)
	const (
		starting = pb.TaskState_TASK_STATE_STARTING
		running  = pb.TaskState_TASK_STATE_RUNNING
		finished = pb.TaskState_TASK_STATE_FINISHED
	)
	rep := func(task, agent string, s pb.TaskState) *pb.ReportTaskStatusRequest {
		return &pb.ReportTaskStatusRequest{TaskId: task, AgentId: agent, State: s, Pid: 7}
	}
	before := k.Revision()
	resp, err := k.ReportTaskStatusBatch(ctx, agA, &pb.ReportTaskStatusBatchRequest{Reports: []*pb.ReportTaskStatusRequest{
		rep(t1, a1, starting),
		rep(t3, a2, running),                         // another agent's task: agent-a's token is not a2's
		rep(t2, a1, pb.TaskState_TASK_STATE_PENDING), // not a state an agent reports
		rep(t1, a1, running),
		rep(t1, a1, finished),
		rep(t2, a1, running),
		rep(t1, a1, running), // after the verdict: stale, ignored
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ code, prefix string }{
		{"ok", ""},
		{"permission_denied", "reports[1]."},
		{"invalid_argument", "reports[2].state: "},
		{"ok", ""}, {"ok", ""}, {"ok", ""}, {"ok", ""},
	}
	for i, w := range want {
		r := resp.GetResults()[i]
		if r.GetCode() != w.code || !strings.HasPrefix(r.GetMessage(), w.prefix) {
			t.Errorf("results[%d] = %v, want code %s, message %q...", i, r, w.code, w.prefix)
		}
	}
	evs := collect(t, k, fwA, &pb.WatchRequest{AfterRevision: before, Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_TASK_STATE}}, 4)
	type got struct {
		task  string
		state pb.TaskState
	}
	wantEvs := []got{{t1, starting}, {t1, running}, {t1, finished}, {t2, running}}
	for i, e := range evs {
		if g := (got{e.GetTask().GetId(), e.GetTask().GetState()}); g != wantEvs[i] || e.GetRevision() != resp.GetRevision() {
			t.Errorf("event %d = %v at revision %d, want %v at %d", i, g, e.GetRevision(), wantEvs[i], resp.GetRevision())
		}
	}
	for _, task := range k.ListTasks(ctx, ops, &pb.ListTasksRequest{}).GetTasks() {
		if task.GetId() == t3 && task.GetState() != pb.TaskState_TASK_STATE_PENDING {
			t.Errorf("%s is %v after a refused report, want PENDING", t3, task.GetState())
		}
	}
	for _, n := range []int{0, kernel.MaxBatchItems + 1} {
		_, err := k.ReportTaskStatusBatch(ctx, agA, &pb.ReportTaskStatusBatchRequest{Reports: make([]*pb.ReportTaskStatusRequest, n)})
		if kernel.CodeOf(err) != kernel.InvalidArgument || !strings.HasPrefix(err.Error(), "reports: ") {
			t.Errorf("a batch of %d: %v, want InvalidArgument naming reports", n, err)
		}
	}
}

// TestKernel_LaunchBatchAudit: a LaunchBatch with refused items is in the
// trail with a refusal's code and how many items were refused, never as
// a plain "ok"; a batch of only invalid items is recorded too; a batch
// whose items all launched is "ok".
func TestKernel_LaunchBatchAudit(t *testing.T) {
	t.Parallel()
	k, _ := newEnv(t).start(t)
	register(t, k, 4, 1<<30)
	mine, err := k.Allocate(context.Background(), fwA, &pb.AllocateRequest{Count: 2, Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := k.Allocate(context.Background(), fwB, alloc(0.5, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	a := mine.GetAllocations()
	launch := func(alloc, cmd string) *pb.LaunchRequest { return &pb.LaunchRequest{AllocationId: alloc, Command: cmd} }
	batch := func(items ...*pb.LaunchRequest) *pb.AuditRecord {
		t.Helper()
		call := kernel.NewAuditCall(fwA, "LaunchBatch")
		if _, err := k.LaunchBatch(kernel.WithAudit(context.Background(), call), fwA, &pb.LaunchBatchRequest{Launches: items}); err != nil {
			t.Fatal(err)
		}
		if call.Settle() {
			t.Fatal("the batch's record was not committed by the loop")
		}
		res, err := k.AuditList(context.Background(), ops, &pb.AuditListRequest{Call: "LaunchBatch"})
		if err != nil {
			t.Fatal(err)
		}
		recs := res.GetRecords()
		return recs[len(recs)-1]
	}
	r := batch(launch(a[0].GetId(), "ok"), launch(theirs.GetAllocations()[0].GetId(), "x"), launch(a[1].GetId(), ""))
	if r.GetCode() != "not_found" || !strings.HasPrefix(r.GetMessage(), "2 of 3 items refused; launches[1].allocation_id: ") {
		t.Errorf("a batch with refused items is recorded as %q %q", r.GetCode(), r.GetMessage())
	}
	r = batch(launch(a[1].GetId(), ""))
	if r.GetCode() != "invalid_argument" || !strings.HasPrefix(r.GetMessage(), "1 of 1 items refused; launches[0].command: ") {
		t.Errorf("a batch of only invalid items is recorded as %q %q", r.GetCode(), r.GetMessage())
	}
	r = batch(launch(a[1].GetId(), "fine"))
	if r.GetCode() != "ok" || r.GetMessage() != "" || len(r.GetTargets()) == 0 {
		t.Errorf("a batch whose items all launched is recorded as %q %q (targets %v)", r.GetCode(), r.GetMessage(), r.GetTargets())
	}
}
