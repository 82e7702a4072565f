package ctl

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// fakeKernel is an in-process Kernel for the unit tests of dcosctl: it
// records every request and answers from a script. It knows nothing of the
// real kernel's semantics.
type fakeKernel struct {
	syscallsv1connect.UnimplementedKernelHandler

	mu    sync.Mutex
	calls []fakeCall
	// replies answers a unary method by name ("Allocate"); a method with
	// no reply answers an empty response.
	replies map[string]func(req proto.Message) (proto.Message, error)
	// events are streamed to every Watch, then watchErr ends it; with
	// watchHold the stream stays open until the client goes away.
	events    []*syscallsv1.Event
	watchErr  error
	watchHold bool
	// firstWatches, when set, answer the first Watch calls in turn (their
	// events, then their error) before the fields above apply.
	firstWatches []fakeWatch
	// logs answer the Logs calls in turn (their chunks, then their
	// error); a call past them ends at once.
	logs []fakeLogs
	// exec serves every Exec call; nil is echoExec.
	exec func(ctx context.Context, s *connect.BidiStream[syscallsv1.ExecInput, syscallsv1.ExecOutput]) error
}

type fakeLogs struct {
	chunks []*syscallsv1.LogsChunk
	err    error
}

type fakeWatch struct {
	events []*syscallsv1.Event
	err    error
}

var _ syscallsv1connect.KernelHandler = (*fakeKernel)(nil)

type fakeCall struct {
	method string
	req    proto.Message
	header http.Header
}

// serve starts k on a test server and returns its URL. Like the kernel's
// port, it speaks HTTP/1.1 and h2c.
func (k *fakeKernel) serve(t *testing.T) string { return k.serveBench(t) }

// serveBench is serve for tests and benchmarks.
func (k *fakeKernel) serveBench(t testing.TB) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(syscallsv1connect.NewKernelHandler(k))
	srv := httptest.NewUnstartedServer(mux)
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &p
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

func (k *fakeKernel) reply(method string, f func(req proto.Message) (proto.Message, error)) *fakeKernel {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.replies == nil {
		k.replies = map[string]func(proto.Message) (proto.Message, error){}
	}
	k.replies[method] = f
	return k
}

// replyWith scripts a fixed answer.
func (k *fakeKernel) replyWith(method string, res proto.Message, err error) *fakeKernel {
	return k.reply(method, func(proto.Message) (proto.Message, error) { return res, err })
}

func (k *fakeKernel) recorded() []fakeCall {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]fakeCall(nil), k.calls...)
}

// methods lists the recorded calls' method names in order.
func (k *fakeKernel) methods() []string {
	var out []string
	for _, c := range k.recorded() {
		out = append(out, c.method)
	}
	return out
}

// last returns the last recorded request of method, or nil.
func (k *fakeKernel) last(method string) proto.Message {
	calls := k.recorded()
	for i := len(calls) - 1; i >= 0; i-- {
		if calls[i].method == method {
			return calls[i].req
		}
	}
	return nil
}

func (k *fakeKernel) record(method string, req proto.Message, h http.Header) func(proto.Message) (proto.Message, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, fakeCall{method: method, req: proto.Clone(req), header: h.Clone()})
	return k.replies[method]
}

func unary[Req, Res any](k *fakeKernel, method string, req *connect.Request[Req]) (*connect.Response[Res], error) {
	msg := any(req.Msg).(proto.Message)
	f := k.record(method, msg, req.Header())
	if f == nil {
		return connect.NewResponse(new(Res)), nil
	}
	res, err := f(msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(any(res).(*Res)), nil
}

func (k *fakeKernel) Allocate(_ context.Context, r *connect.Request[syscallsv1.AllocateRequest]) (*connect.Response[syscallsv1.AllocateResponse], error) {
	return unary[syscallsv1.AllocateRequest, syscallsv1.AllocateResponse](k, "Allocate", r)
}

func (k *fakeKernel) Launch(_ context.Context, r *connect.Request[syscallsv1.LaunchRequest]) (*connect.Response[syscallsv1.LaunchResponse], error) {
	return unary[syscallsv1.LaunchRequest, syscallsv1.LaunchResponse](k, "Launch", r)
}

func (k *fakeKernel) Revoke(_ context.Context, r *connect.Request[syscallsv1.RevokeRequest]) (*connect.Response[syscallsv1.RevokeResponse], error) {
	return unary[syscallsv1.RevokeRequest, syscallsv1.RevokeResponse](k, "Revoke", r)
}

func (k *fakeKernel) KeepAlive(_ context.Context, r *connect.Request[syscallsv1.KeepAliveRequest]) (*connect.Response[syscallsv1.KeepAliveResponse], error) {
	return unary[syscallsv1.KeepAliveRequest, syscallsv1.KeepAliveResponse](k, "KeepAlive", r)
}

func (k *fakeKernel) ListAgents(_ context.Context, r *connect.Request[syscallsv1.ListAgentsRequest]) (*connect.Response[syscallsv1.ListAgentsResponse], error) {
	return unary[syscallsv1.ListAgentsRequest, syscallsv1.ListAgentsResponse](k, "ListAgents", r)
}

func (k *fakeKernel) ClusterInfo(_ context.Context, r *connect.Request[syscallsv1.ClusterInfoRequest]) (*connect.Response[syscallsv1.ClusterInfoResponse], error) {
	return unary[syscallsv1.ClusterInfoRequest, syscallsv1.ClusterInfoResponse](k, "ClusterInfo", r)
}

func (k *fakeKernel) AgentDrain(_ context.Context, r *connect.Request[syscallsv1.AgentDrainRequest]) (*connect.Response[syscallsv1.AgentDrainResponse], error) {
	return unary[syscallsv1.AgentDrainRequest, syscallsv1.AgentDrainResponse](k, "AgentDrain", r)
}

func (k *fakeKernel) ListAllocations(_ context.Context, r *connect.Request[syscallsv1.ListAllocationsRequest]) (*connect.Response[syscallsv1.ListAllocationsResponse], error) {
	return unary[syscallsv1.ListAllocationsRequest, syscallsv1.ListAllocationsResponse](k, "ListAllocations", r)
}

func (k *fakeKernel) ListTasks(_ context.Context, r *connect.Request[syscallsv1.ListTasksRequest]) (*connect.Response[syscallsv1.ListTasksResponse], error) {
	return unary[syscallsv1.ListTasksRequest, syscallsv1.ListTasksResponse](k, "ListTasks", r)
}

func (k *fakeKernel) Watch(ctx context.Context, r *connect.Request[syscallsv1.WatchRequest], s *connect.ServerStream[syscallsv1.Event]) error {
	k.record("Watch", r.Msg, r.Header())
	k.mu.Lock()
	events, werr, hold := k.events, k.watchErr, k.watchHold
	if len(k.firstWatches) > 0 {
		events, werr, hold = k.firstWatches[0].events, k.firstWatches[0].err, false
		k.firstWatches = k.firstWatches[1:]
	}
	k.mu.Unlock()
	for _, ev := range events {
		if err := s.Send(ev); err != nil {
			return err
		}
	}
	if hold {
		<-ctx.Done()
		return ctx.Err()
	}
	return werr
}

func (k *fakeKernel) PolicyLoad(_ context.Context, r *connect.Request[syscallsv1.PolicyLoadRequest]) (*connect.Response[syscallsv1.PolicyLoadResponse], error) {
	return unary[syscallsv1.PolicyLoadRequest, syscallsv1.PolicyLoadResponse](k, "PolicyLoad", r)
}

func (k *fakeKernel) PolicyTest(_ context.Context, r *connect.Request[syscallsv1.PolicyTestRequest]) (*connect.Response[syscallsv1.PolicyTestResponse], error) {
	return unary[syscallsv1.PolicyTestRequest, syscallsv1.PolicyTestResponse](k, "PolicyTest", r)
}

func (k *fakeKernel) PolicyList(_ context.Context, r *connect.Request[syscallsv1.PolicyListRequest]) (*connect.Response[syscallsv1.PolicyListResponse], error) {
	return unary[syscallsv1.PolicyListRequest, syscallsv1.PolicyListResponse](k, "PolicyList", r)
}

func (k *fakeKernel) PolicyUse(_ context.Context, r *connect.Request[syscallsv1.PolicyUseRequest]) (*connect.Response[syscallsv1.PolicyUseResponse], error) {
	return unary[syscallsv1.PolicyUseRequest, syscallsv1.PolicyUseResponse](k, "PolicyUse", r)
}

func (k *fakeKernel) PolicyRollback(_ context.Context, r *connect.Request[syscallsv1.PolicyRollbackRequest]) (*connect.Response[syscallsv1.PolicyRollbackResponse], error) {
	return unary[syscallsv1.PolicyRollbackRequest, syscallsv1.PolicyRollbackResponse](k, "PolicyRollback", r)
}

func (k *fakeKernel) Logs(_ context.Context, r *connect.Request[syscallsv1.LogsRequest], s *connect.ServerStream[syscallsv1.LogsChunk]) error {
	k.record("Logs", r.Msg, r.Header())
	k.mu.Lock()
	var script fakeLogs
	if len(k.logs) > 0 {
		script, k.logs = k.logs[0], k.logs[1:]
	}
	k.mu.Unlock()
	for _, ch := range script.chunks {
		if err := s.Send(ch); err != nil {
			return err
		}
	}
	return script.err
}

// Exec hands the call to k.exec, or to echoExec.
func (k *fakeKernel) Exec(ctx context.Context, s *connect.BidiStream[syscallsv1.ExecInput, syscallsv1.ExecOutput]) error {
	f := k.exec
	if f == nil {
		f = k.echoExec
	}
	return f(ctx, s)
}

// echoExec is an Exec that records its start, writes each stdin input
// back on stdout, reports each resize on stderr as "resize ROWSxCOLS",
// and exits with status 3 at stdin_eof or at a Ctrl-D byte (what a
// terminal in raw mode sends).
func (k *fakeKernel) echoExec(_ context.Context, s *connect.BidiStream[syscallsv1.ExecInput, syscallsv1.ExecOutput]) error {
	first, err := s.Receive()
	if err != nil {
		return err
	}
	k.record("Exec", first, s.RequestHeader())
	for {
		in, err := s.Receive()
		if err != nil {
			return err
		}
		k.record("ExecInput", in, s.RequestHeader())
		out := &syscallsv1.ExecOutput{}
		switch {
		case in.GetResize() != nil:
			out.Stderr = fmt.Appendf(nil, "resize %dx%d\n", in.GetResize().GetRows(), in.GetResize().GetCols())
		case in.GetStdinEof() || bytes.IndexByte(in.GetStdin(), 4) >= 0:
			return s.Send(&syscallsv1.ExecOutput{Exit: &syscallsv1.ExecExit{Code: 3}})
		default:
			out.Stdout = in.GetStdin()
		}
		if err := s.Send(out); err != nil {
			return err
		}
	}
}

func (k *fakeKernel) RoleSet(_ context.Context, r *connect.Request[syscallsv1.RoleSetRequest]) (*connect.Response[syscallsv1.RoleSetResponse], error) {
	return unary[syscallsv1.RoleSetRequest, syscallsv1.RoleSetResponse](k, "RoleSet", r)
}

func (k *fakeKernel) RoleList(_ context.Context, r *connect.Request[syscallsv1.RoleListRequest]) (*connect.Response[syscallsv1.RoleListResponse], error) {
	return unary[syscallsv1.RoleListRequest, syscallsv1.RoleListResponse](k, "RoleList", r)
}
