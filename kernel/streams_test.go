package kernel_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// streamEnv is a kernel with two registered agents (their tokens agA and
// agB) and a RUNNING task of fwA on agent 1.
type streamEnv struct {
	k        *kernel.Kernel
	a1, a2   string
	agA, agB kernel.Principal
	task     string
}

func newStreamEnv(t *testing.T) *streamEnv {
	t.Helper()
	k, _ := newEnv(t).start(t)
	ctx := context.Background()
	e := &streamEnv{k: k, agA: kernel.Principal{Name: "agents-a", Role: kernel.RoleAgent}, agB: kernel.Principal{Name: "agents-b", Role: kernel.RoleAgent}}
	reg := func(p kernel.Principal) string {
		r, err := k.RegisterAgent(ctx, p, &pb.RegisterAgentRequest{Hostname: p.Name, Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 30}})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetAgentId()
	}
	e.a1, e.a2 = reg(e.agA), reg(e.agB)
	res, err := k.Allocate(ctx, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20},
		Constraints: []*pb.Constraint{{Label: kernel.AgentLabel, Op: pb.Constraint_OP_EQUALS, Values: []string{e.a1}}}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var l *pb.LaunchResponse
	for {
		l, err = k.Launch(ctx, fwA, &pb.LaunchRequest{AllocationId: res.GetAllocations()[0].GetId(), Command: "x"})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // the allocation is granted by the next cycle
	}
	if err != nil {
		t.Fatal(err)
	}
	e.task = l.GetTask().GetId()
	e.setState(t, pb.TaskState_TASK_STATE_RUNNING)
	return e
}

func (e *streamEnv) setState(t *testing.T, s pb.TaskState) {
	t.Helper()
	if _, err := e.k.ReportTaskStatus(context.Background(), e.agA, &pb.ReportTaskStatusRequest{TaskId: e.task, AgentId: e.a1, State: s}); err != nil {
		t.Fatal(err)
	}
}

// agentSide holds p's AgentStreams call open and hands over the requests.
func (e *streamEnv) agentSide(t *testing.T, p kernel.Principal) <-chan *pb.StreamOpen {
	t.Helper()
	ch := make(chan *pb.StreamOpen, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.k.AgentStreams(ctx, p, &pb.AgentStreamsRequest{}, func(o *pb.StreamOpen) error { ch <- o; return nil })
	}()
	t.Cleanup(func() { cancel(); <-done })
	// The call is open once a stream can be asked for: wait for that.
	deadline := time.Now().Add(5 * time.Second)
	for !e.k.StreamAgentConnected(e.boundOf(p)) {
		if time.Now().After(deadline) {
			t.Fatal("AgentStreams did not open")
		}
		time.Sleep(time.Millisecond)
	}
	return ch
}

func (e *streamEnv) boundOf(p kernel.Principal) string {
	if p == e.agA {
		return e.a1
	}
	return e.a2
}

// relay is the agent's AgentRelay call: ups are sent in order, then it
// waits for the kernel to end it; downs are what the kernel sent.
type relay struct {
	ups   chan *pb.RelayUp // closed: the agent's side ends (io.EOF)
	downs chan *pb.RelayDown
	ended chan error
}

func (e *streamEnv) answer(p kernel.Principal, id string) *relay {
	r := &relay{ups: make(chan *pb.RelayUp, 16), downs: make(chan *pb.RelayDown, 16), ended: make(chan error, 1)}
	// As a real call's: Recv fails once the handler has returned.
	returned := make(chan struct{})
	go func() {
		err := e.k.AgentRelay(context.Background(), p, &pb.RelayUp{StreamId: id},
			func() (*pb.RelayUp, error) {
				select {
				case u, ok := <-r.ups:
					if !ok {
						return nil, io.EOF
					}
					return u, nil
				case <-returned:
					return nil, context.Canceled
				}
			},
			func(d *pb.RelayDown) error { r.downs <- d; return nil })
		close(returned)
		r.ended <- err
	}()
	return r
}

func recvOpen(t *testing.T, ch <-chan *pb.StreamOpen) *pb.StreamOpen {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(10 * time.Second):
		t.Fatal("no StreamOpen reached the agent")
		return nil
	}
}

func TestKernel_LogsRelay(t *testing.T) {
	t.Parallel()
	e := newStreamEnv(t)
	opens := e.agentSide(t, e.agA)
	ctx := context.Background()
	got := make(chan *pb.LogsChunk, 16)
	errc := make(chan error, 1)
	tail := int64(5)
	go func() {
		errc <- e.k.Logs(ctx, fwA, &pb.LogsRequest{TaskId: e.task, Tail: &tail, Follow: true}, func(c *pb.LogsChunk) error { got <- c; return nil })
	}()
	o := recvOpen(t, opens)
	if o.GetLogs().GetTaskId() != e.task || o.GetLogs().GetTail() != 5 || !o.GetLogs().GetFollow() || o.GetStreamId() == "" {
		t.Fatalf("StreamOpen = %v, want the request with a stream id", o)
	}
	// Another agent cannot answer it.
	if err := e.k.AgentRelay(ctx, e.agB, &pb.RelayUp{StreamId: o.GetStreamId()}, nil, nil); kernel.CodeOf(err) != kernel.NotFound {
		t.Fatalf("agent-2 answering agent-1's stream: %v, want NotFound", err)
	}
	r := e.answer(e.agA, o.GetStreamId())
	r.ups <- &pb.RelayUp{Logs: &pb.LogsChunk{Stream: pb.LogStream_LOG_STREAM_STDOUT, Data: []byte("one\n"), Cursor: "1:4"}}
	r.ups <- &pb.RelayUp{Logs: &pb.LogsChunk{Stream: pb.LogStream_LOG_STREAM_STDOUT, Data: []byte("two\n"), Cursor: "1:8"}}
	for _, want := range []string{"one\n", "two\n"} {
		select {
		case c := <-got:
			if string(c.GetData()) != want {
				t.Fatalf("chunk %q, want %q", c.GetData(), want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("chunk %q did not arrive", want)
		}
	}
	close(r.ups)
	if err := <-errc; err != nil {
		t.Fatalf("Logs: %v, want nil at the agent's end of stream", err)
	}
	if err := <-r.ended; err != nil {
		t.Fatalf("AgentRelay: %v", err)
	}
	// The same stream id cannot be answered twice.
	if err := e.k.AgentRelay(ctx, e.agA, &pb.RelayUp{StreamId: o.GetStreamId()}, nil, nil); kernel.CodeOf(err) != kernel.NotFound {
		t.Fatalf("answering twice: %v, want NotFound", err)
	}
}

func TestKernel_LogsRefusals(t *testing.T) {
	t.Parallel()
	e := newStreamEnv(t)
	ctx := context.Background()
	never := func(*pb.LogsChunk) error { t.Error("a chunk was sent"); return nil }
	// Agent 1 not connected yet.
	err := e.k.Logs(ctx, fwA, &pb.LogsRequest{TaskId: e.task}, never)
	wantCode(t, err, kernel.Unavailable, "not connected")
	opens := e.agentSide(t, e.agA)
	neg := int64(-1)
	for _, c := range []struct {
		p    kernel.Principal
		req  *pb.LogsRequest
		code kernel.Code
		msg  string
	}{
		{fwB, &pb.LogsRequest{TaskId: e.task}, kernel.PermissionDenied, "belongs to another principal"},
		{e.agA, &pb.LogsRequest{TaskId: e.task}, kernel.PermissionDenied, "belongs to another principal"},
		{fwA, &pb.LogsRequest{TaskId: "t-999"}, kernel.NotFound, "no task"},
		{fwA, &pb.LogsRequest{}, kernel.InvalidArgument, "task_id: is required"},
		{fwA, &pb.LogsRequest{TaskId: e.task, Tail: &neg}, kernel.InvalidArgument, "tail"},
		{fwA, &pb.LogsRequest{TaskId: e.task, Streams: []pb.LogStream{pb.LogStream_LOG_STREAM_STDERR, pb.LogStream_LOG_STREAM_STDERR}}, kernel.InvalidArgument, "named twice"},
		{fwA, &pb.LogsRequest{TaskId: e.task, Streams: []pb.LogStream{7}}, kernel.InvalidArgument, "streams"},
		{fwA, &pb.LogsRequest{TaskId: e.task, LimitBytes: -1}, kernel.InvalidArgument, "limit_bytes"},
	} {
		err := e.k.Logs(ctx, c.p, c.req, never)
		wantCode(t, err, c.code, c.msg)
	}
	select {
	case o := <-opens:
		t.Fatalf("a refused call reached the agent: %v", o)
	default:
	}
	// The agent's error goes to the client with its code.
	errc := make(chan error, 1)
	go func() { errc <- e.k.Logs(ctx, ops, &pb.LogsRequest{TaskId: e.task}, never) }()
	o := recvOpen(t, opens)
	r := e.answer(e.agA, o.GetStreamId())
	r.ups <- &pb.RelayUp{Error: &pb.RelayError{Code: 5, Message: "task " + e.task + " is not on agent " + e.a1}}
	wantCode(t, <-errc, kernel.NotFound, "is not on agent")
}

// TestKernel_LogsClientGone: a client that goes away ends the agent's
// relay, even when the agent has nothing to send.
func TestKernel_LogsClientGone(t *testing.T) {
	t.Parallel()
	e := newStreamEnv(t)
	opens := e.agentSide(t, e.agA)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- e.k.Logs(ctx, fwA, &pb.LogsRequest{TaskId: e.task, Follow: true}, func(*pb.LogsChunk) error { return nil })
	}()
	o := recvOpen(t, opens)
	r := e.answer(e.agA, o.GetStreamId())
	time.Sleep(50 * time.Millisecond) // let the relay pair up
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Logs after the client left: %v, want nil", err)
	}
	select {
	case <-r.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent's relay was not ended when the client left")
	}
}

func TestKernel_ExecRelayAndEvent(t *testing.T) {
	t.Parallel()
	e := newStreamEnv(t)
	opens := e.agentSide(t, e.agA)
	ctx := context.Background()
	rev := e.k.Revision()
	ins := make(chan *pb.ExecInput, 4)
	ins <- &pb.ExecInput{Stdin: []byte("hello")}
	ins <- &pb.ExecInput{Resize: &pb.TermSize{Rows: 40, Cols: 100}}
	outs := make(chan *pb.ExecOutput, 16)
	errc := make(chan error, 1)
	go func() {
		errc <- e.k.Exec(ctx, fwA, &pb.ExecStart{TaskId: e.task, Command: "sh", Args: []string{"-i"}, Tty: true, Stdin: true, Size: &pb.TermSize{Rows: 24, Cols: 80}},
			func() (*pb.ExecInput, error) {
				in, ok := <-ins
				if !ok {
					return nil, io.EOF
				}
				return in, nil
			},
			func(o *pb.ExecOutput) error { outs <- o; return nil })
	}()
	o := recvOpen(t, opens)
	if o.GetExec().GetCommand() != "sh" || o.GetExec().GetSize().GetCols() != 80 {
		t.Fatalf("StreamOpen = %v", o)
	}
	r := e.answer(e.agA, o.GetStreamId())
	for _, check := range []func(*pb.RelayDown) bool{
		func(d *pb.RelayDown) bool { return string(d.GetExec().GetStdin()) == "hello" },
		func(d *pb.RelayDown) bool { return d.GetExec().GetResize().GetRows() == 40 },
	} {
		select {
		case d := <-r.downs:
			if !check(d) {
				t.Fatalf("unexpected input relayed: %v", d)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("input not relayed")
		}
	}
	close(ins) // the client closes its side; outputs go on
	r.ups <- &pb.RelayUp{Exec: &pb.ExecOutput{Stdout: []byte("$ ")}}
	r.ups <- &pb.RelayUp{Exec: &pb.ExecOutput{Exit: &pb.ExecExit{Code: 3}}}
	if err := <-errc; err != nil {
		t.Fatalf("Exec: %v", err)
	}
	if o1, o2 := <-outs, <-outs; string(o1.GetStdout()) != "$ " || o2.GetExit().GetCode() != 3 {
		t.Fatalf("outputs %v, %v", o1, o2)
	}
	evs := collect(t, e.k, fwA, &pb.WatchRequest{AfterRevision: rev, Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_TASK_EXEC}}, 1)
	x := evs[0].GetExec()
	if x.GetPrincipal() != "fw-a" || x.GetCommand() != "sh" || len(x.GetArgs()) != 1 || !x.GetTty() || evs[0].GetTask().GetId() != e.task {
		t.Fatalf("TASK_EXEC event = %v", evs[0])
	}
	// fw-b does not see fw-a's exec.
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	e.k.Watch(wctx, fwB, &pb.WatchRequest{AfterRevision: rev, Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_TASK_EXEC}}, func(ev *pb.Event) error {
		t.Errorf("fw-b saw %v", ev)
		return nil
	})
}

func TestKernel_ExecRefusals(t *testing.T) {
	t.Parallel()
	e := newStreamEnv(t)
	opens := e.agentSide(t, e.agA)
	ctx := context.Background()
	rev := e.k.Revision()
	noIn := func() (*pb.ExecInput, error) { return nil, io.EOF }
	never := func(*pb.ExecOutput) error { t.Error("an output was sent"); return nil }
	for _, c := range []struct {
		p     kernel.Principal
		start *pb.ExecStart
		code  kernel.Code
		msg   string
	}{
		{fwB, &pb.ExecStart{TaskId: e.task, Command: "sh"}, kernel.PermissionDenied, "belongs to another principal"},
		{fwA, nil, kernel.InvalidArgument, "start: is required"},
		{fwA, &pb.ExecStart{TaskId: e.task}, kernel.InvalidArgument, "start.command"},
		{fwA, &pb.ExecStart{TaskId: e.task, Command: "sh", Env: map[string]string{"A=B": "x"}}, kernel.InvalidArgument, "start.env"},
		{fwA, &pb.ExecStart{TaskId: e.task, Command: "sh", Size: &pb.TermSize{Rows: 1 << 20}}, kernel.InvalidArgument, "start.size"},
		{fwA, &pb.ExecStart{TaskId: e.task, Command: "sh", Size: &pb.TermSize{Rows: 2}}, kernel.InvalidArgument, "only for tty"},
	} {
		wantCode(t, e.k.Exec(ctx, c.p, c.start, noIn, never), c.code, c.msg)
	}
	e.setState(t, pb.TaskState_TASK_STATE_FINISHED)
	wantCode(t, e.k.Exec(ctx, fwA, &pb.ExecStart{TaskId: e.task, Command: "sh"}, noIn, never), kernel.FailedPrecondition, "not RUNNING")
	select {
	case o := <-opens:
		t.Fatalf("a refused exec reached the agent: %v", o)
	default:
	}
	if e.k.Revision() != rev+1 { // the FINISHED report only: no TASK_EXEC
		t.Fatalf("revision %d, want %d: a refused exec was recorded", e.k.Revision(), rev+1)
	}
	// An ended task's logs are still asked for.
	errc := make(chan error, 1)
	go func() {
		errc <- e.k.Logs(ctx, fwA, &pb.LogsRequest{TaskId: e.task}, func(*pb.LogsChunk) error { return nil })
	}()
	o := recvOpen(t, opens)
	r := e.answer(e.agA, o.GetStreamId())
	close(r.ups)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestKernel_AgentStreamsReplaced: a newer AgentStreams call of the same
// agent takes over; requests go to it.
func TestKernel_AgentStreamsReplaced(t *testing.T) {
	t.Parallel()
	e := newStreamEnv(t)
	ctx := context.Background()
	first := make(chan error, 1)
	go func() {
		first <- e.k.AgentStreams(ctx, e.agA, &pb.AgentStreamsRequest{}, func(*pb.StreamOpen) error { return nil })
	}()
	for !e.k.StreamAgentConnected(e.a1) {
		time.Sleep(time.Millisecond)
	}
	opens := e.agentSide(t, e.agA)
	select {
	case err := <-first:
		wantCode(t, err, kernel.Aborted, "replaced")
	case <-time.After(10 * time.Second):
		t.Fatal("the older call was not ended")
	}
	go e.k.Logs(ctx, fwA, &pb.LogsRequest{TaskId: e.task}, func(*pb.LogsChunk) error { return nil })
	o := recvOpen(t, opens)
	r := e.answer(e.agA, o.GetStreamId())
	close(r.ups)
	// An agent token may only serve its own agent.
	err := e.k.AgentStreams(ctx, e.agB, &pb.AgentStreamsRequest{AgentId: e.a1}, nil)
	wantCode(t, err, kernel.PermissionDenied, "not the agent this token is bound to")
	err = e.k.AgentStreams(ctx, kernel.Principal{Name: "agents-c", Role: kernel.RoleAgent}, &pb.AgentStreamsRequest{}, nil)
	wantCode(t, err, kernel.FailedPrecondition, "register first")
}
