package api_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	"github.com/dcos-kernel/dcos/sdk/transport"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// TestServer_StreamsOutliveTimeouts: Logs and Exec relayed through the
// production server (h2c) keep working while idle for longer than the
// server's read and write timeouts, and carry data both ways after.
func TestServer_StreamsOutliveTimeouts(t *testing.T) {
	t.Parallel()
	const idle = 3 * time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := kerneltest.Start(t, kerneltest.Options{Listener: ln,
		// The timeouts run from a stream's start until its handler lifts
		// them: a loaded -race run started a handler more than 200 ms late
		// and the stream was reset (CI), so 1 s, and the idle waits are
		// three times that.
		Timeouts: api.Timeouts{ReadHeader: time.Second, Read: time.Second, Write: time.Second, Idle: 10 * time.Second},
		API:      func(c *api.Config) { c.WatchWriteTimeout = time.Second }})
	client := func(token string) syscallsv1connect.KernelClient {
		return syscallsv1connect.NewKernelClient(transport.H2CClient(), srv.URL, connect.WithInterceptors(transport.Bearer(token)))
	}
	agent, fw := client(kerneltest.AgentToken), client(kerneltest.FrameworkToken)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	reg, err := agent.RegisterAgent(ctx, connect.NewRequest(&pb.RegisterAgentRequest{Hostname: "h", Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 30}}))
	if err != nil {
		t.Fatal(err)
	}
	agentID := reg.Msg.GetAgentId()
	// A Watch over h2c, idle past the per-send write timeout, still
	// delivers (an HTTP/2 stream is reset at its write deadline even
	// with nothing to write: sends must not leave one set).
	watch, err := fw.Watch(ctx, connect.NewRequest(&pb.WatchRequest{Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED}}))
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	time.Sleep(idle)
	al, err := fw.Allocate(ctx, connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}}))
	if err != nil {
		t.Fatal(err)
	}
	if !watch.Receive() {
		t.Fatalf("the idle Watch ended: %v", watch.Err())
	}
	var task string
	for task == "" {
		l, err := fw.Launch(ctx, connect.NewRequest(&pb.LaunchRequest{AllocationId: al.Msg.GetAllocations()[0].GetId(), Command: "sh"}))
		if err == nil {
			task = l.Msg.GetTask().GetId()
		} else if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := agent.ReportTaskStatus(ctx, connect.NewRequest(&pb.ReportTaskStatusRequest{TaskId: task, AgentId: agentID, State: pb.TaskState_TASK_STATE_RUNNING})); err != nil {
		t.Fatal(err)
	}
	opens, err := agent.AgentStreams(ctx, connect.NewRequest(&pb.AgentStreamsRequest{AgentId: agentID}))
	if err != nil {
		t.Fatal(err)
	}
	defer opens.Close()
	nextOpen := func() *pb.StreamOpen {
		t.Helper()
		if !opens.Receive() {
			t.Fatalf("AgentStreams ended: %v", opens.Err())
		}
		return opens.Msg()
	}

	// Exec: idle past the timeouts, then input down, output and exit up.
	ex := fw.Exec(ctx)
	if err := ex.Send(&pb.ExecInput{Start: &pb.ExecStart{TaskId: task, Command: "cat", Stdin: true}}); err != nil {
		t.Fatal(err)
	}
	open := nextOpen()
	if open.GetExec().GetCommand() != "cat" {
		t.Fatalf("StreamOpen = %v", open)
	}
	rel := agent.AgentRelay(ctx)
	if err := rel.Send(&pb.RelayUp{StreamId: open.GetStreamId()}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(idle) // three times the read and write timeouts
	if err := ex.Send(&pb.ExecInput{Stdin: []byte("ping")}); err != nil {
		t.Fatal(err)
	}
	down, err := rel.Receive()
	if err != nil || string(down.GetExec().GetStdin()) != "ping" {
		t.Fatalf("agent received %v, %v; want the stdin", down, err)
	}
	time.Sleep(idle)
	for _, up := range []*pb.RelayUp{{Exec: &pb.ExecOutput{Stdout: []byte("ping")}}, {Exec: &pb.ExecOutput{Exit: &pb.ExecExit{Code: 7}}}} {
		if err := rel.Send(up); err != nil {
			t.Fatal(err)
		}
	}
	rel.CloseRequest()
	o1, err := ex.Receive()
	if err != nil || string(o1.GetStdout()) != "ping" {
		t.Fatalf("client received %v, %v", o1, err)
	}
	o2, err := ex.Receive()
	if err != nil || o2.GetExit().GetCode() != 7 {
		t.Fatalf("client received %v, %v; want exit 7", o2, err)
	}
	if _, err := ex.Receive(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the exit: %v, want the stream's clean end", err)
	}
	ex.CloseRequest()
	ex.CloseResponse()
	rel.CloseResponse()

	// Logs: idle past the timeouts, then a chunk.
	logs, err := fw.Logs(ctx, connect.NewRequest(&pb.LogsRequest{TaskId: task, Follow: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	open = nextOpen()
	rel = agent.AgentRelay(ctx)
	if err := rel.Send(&pb.RelayUp{StreamId: open.GetStreamId()}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(idle)
	if err := rel.Send(&pb.RelayUp{Logs: &pb.LogsChunk{Stream: pb.LogStream_LOG_STREAM_STDOUT, Data: []byte("late\n"), Cursor: "1:5"}}); err != nil {
		t.Fatal(err)
	}
	if !logs.Receive() || string(logs.Msg().GetData()) != "late\n" {
		t.Fatalf("Logs: %v %v", logs.Msg(), logs.Err())
	}
	rel.CloseRequest()
	if logs.Receive() {
		t.Fatalf("Logs went on after the agent's end: %v", logs.Msg())
	}
	if err := logs.Err(); err != nil {
		t.Fatalf("Logs ended with %v, want its clean end", err)
	}
	rel.CloseResponse()

	// A framework cannot exec into another's task: refused before the agent hears of it.
	other := client(kerneltest.FrameworkBToken).Exec(ctx)
	other.Send(&pb.ExecInput{Start: &pb.ExecStart{TaskId: task, Command: "sh"}})
	if _, err := other.Receive(); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("fw-b's exec: %v, want PermissionDenied", err)
	}
	other.CloseResponse()
}
