package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dcos-kernel/dcos/internal/executor/proc"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// waitTimeout bounds every wait for something the agent does. It is
// generous: it only decides how long a broken test hangs.
const waitTimeout = 30 * time.Second

// fakeKernel is an in-process kernel for the agent's unit tests: it records
// registrations, heartbeats and reports, answers registrations with the
// tasks a test set, streams the events a test pushes, and returns scripted
// errors. It is not a model of the real kernel's state machine.
type fakeKernel struct {
	syscallsv1connect.UnimplementedKernelHandler

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	stopped chan struct{}
	broken  chan struct{} // closed and replaced by breakWatches

	nextAgent     int
	registrations []*syscallsv1.RegisterAgentRequest
	heartbeats    int
	reportCalls   int
	reports       []*syscallsv1.ReportTaskStatusRequest
	watchCalls    []*syscallsv1.WatchRequest
	expected      []*syscallsv1.Task // returned by RegisterAgent
	revision      int64
	events        []*syscallsv1.Event

	// Scripted errors, one popped per call while any is left.
	registerErrs, heartbeatErrs, reportErrs, watchErrs []error

	procs map[int]uint64 // pid → start time, from RUNNING reports

	// Log and exec streams (streams_test.go): StreamOpens pushed to the
	// agent's AgentStreams calls, and the relays the agent opened, by
	// stream id, for the test that waits for them.
	opens        chan *syscallsv1.StreamOpen
	streamsCalls int
	streamsErrs  []error // scripted, one popped per AgentStreams call
	relays       map[string]chan *fakeRelay
}

// startFakeKernel serves a fake kernel over HTTP/1.1 and h2c and returns
// it with its URL. At cleanup it stops streams, closes the server and kills every
// process group that was reported RUNNING and still runs.
func startFakeKernel(t *testing.T) (*fakeKernel, string) {
	t.Helper()
	k := &fakeKernel{changed: make(chan struct{}), stopped: make(chan struct{}), broken: make(chan struct{}), procs: make(map[int]uint64),
		opens: make(chan *syscallsv1.StreamOpen, 16), relays: make(map[string]chan *fakeRelay)}
	// Start at revision 1: a registration answering 0 would make the agent
	// watch "from now on" and miss events pushed before its first Watch.
	k.revision = 1
	mux := http.NewServeMux()
	mux.Handle(syscallsv1connect.NewKernelHandler(k))
	// HTTP/1.1 and h2c, as the kernel's port: AgentRelay is bidirectional.
	srv := httptest.NewUnstartedServer(mux)
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &protocols
	srv.Start()
	t.Cleanup(func() {
		close(k.stopped)
		srv.Close()
		k.killProcs()
	})
	return k, srv.URL
}

// killProcs kills the process groups of reported tasks that still run and
// reaps those that are children of the test process.
func (k *fakeKernel) killProcs() {
	k.mu.Lock()
	procs := make(map[int]uint64, len(k.procs))
	for p, s := range k.procs {
		procs[p] = s
	}
	k.mu.Unlock()
	for pid, start := range procs {
		if s, err := proc.StartTime(pid); err == nil && s == start {
			proc.SignalGroup(pid, syscall.SIGKILL)
			var ws syscall.WaitStatus
			syscall.Wait4(pid, &ws, 0, nil) // ECHILD unless ours
		}
	}
}

// notifyLocked wakes every waiter; k.mu must be held.
func (k *fakeKernel) notifyLocked() {
	close(k.changed)
	k.changed = make(chan struct{})
}

func pop(errs *[]error) error {
	if len(*errs) == 0 {
		return nil
	}
	err := (*errs)[0]
	*errs = (*errs)[1:]
	return err
}

func (k *fakeKernel) RegisterAgent(_ context.Context, req *connect.Request[syscallsv1.RegisterAgentRequest]) (*connect.Response[syscallsv1.RegisterAgentResponse], error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := pop(&k.registerErrs); err != nil {
		return nil, err
	}
	k.registrations = append(k.registrations, proto.CloneOf(req.Msg))
	k.notifyLocked()
	id := req.Msg.GetAgentId()
	if id == "" {
		k.nextAgent++
		id = fmt.Sprintf("ag-%d", k.nextAgent)
	}
	resp := &syscallsv1.RegisterAgentResponse{
		AgentId:           id,
		HeartbeatInterval: durationpb.New(50 * time.Millisecond),
		Revision:          k.revision,
	}
	for _, t := range k.expected {
		resp.Tasks = append(resp.Tasks, proto.CloneOf(t))
	}
	return connect.NewResponse(resp), nil
}

func (k *fakeKernel) Heartbeat(_ context.Context, req *connect.Request[syscallsv1.HeartbeatRequest]) (*connect.Response[syscallsv1.HeartbeatResponse], error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.heartbeats++
	k.notifyLocked()
	if err := pop(&k.heartbeatErrs); err != nil {
		return nil, err
	}
	return connect.NewResponse(&syscallsv1.HeartbeatResponse{}), nil
}

func (k *fakeKernel) ReportTaskStatus(_ context.Context, req *connect.Request[syscallsv1.ReportTaskStatusRequest]) (*connect.Response[syscallsv1.ReportTaskStatusResponse], error) {
	m := req.Msg
	var start uint64
	if m.GetState() == syscallsv1.TaskState_TASK_STATE_RUNNING && m.GetPid() > 0 {
		start, _ = proc.StartTime(int(m.GetPid()))
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.reportCalls++
	k.notifyLocked()
	if err := pop(&k.reportErrs); err != nil {
		return nil, err
	}
	if start != 0 {
		k.procs[int(m.GetPid())] = start
	}
	k.reports = append(k.reports, proto.CloneOf(m))
	return connect.NewResponse(&syscallsv1.ReportTaskStatusResponse{Revision: k.revision}), nil
}

// ReportTaskStatusBatch records a batch's reports as ReportTaskStatus
// records each; a scripted error fails the whole call (one popped per
// call).
func (k *fakeKernel) ReportTaskStatusBatch(_ context.Context, req *connect.Request[syscallsv1.ReportTaskStatusBatchRequest]) (*connect.Response[syscallsv1.ReportTaskStatusBatchResponse], error) {
	starts := make([]uint64, len(req.Msg.GetReports()))
	for i, m := range req.Msg.GetReports() {
		if m.GetState() == syscallsv1.TaskState_TASK_STATE_RUNNING && m.GetPid() > 0 {
			starts[i], _ = proc.StartTime(int(m.GetPid()))
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.reportCalls++
	k.notifyLocked()
	if err := pop(&k.reportErrs); err != nil {
		return nil, err
	}
	resp := &syscallsv1.ReportTaskStatusBatchResponse{Revision: k.revision}
	for i, m := range req.Msg.GetReports() {
		if starts[i] != 0 {
			k.procs[int(m.GetPid())] = starts[i]
		}
		k.reports = append(k.reports, proto.CloneOf(m))
		resp.Results = append(resp.Results, &syscallsv1.ReportResult{Code: "ok"})
	}
	return connect.NewResponse(resp), nil
}

// Watch streams pushed events after the request's revision (0: from the
// current one), filtered by agent id.
func (k *fakeKernel) Watch(ctx context.Context, req *connect.Request[syscallsv1.WatchRequest], stream *connect.ServerStream[syscallsv1.Event]) error {
	k.mu.Lock()
	k.watchCalls = append(k.watchCalls, proto.CloneOf(req.Msg))
	k.notifyLocked()
	if err := pop(&k.watchErrs); err != nil {
		k.mu.Unlock()
		return err
	}
	after := req.Msg.GetAfterRevision()
	if after == 0 {
		after = k.revision
	}
	broken := k.broken
	k.mu.Unlock()
	for {
		k.mu.Lock()
		var send []*syscallsv1.Event
		for _, ev := range k.events {
			if ev.GetRevision() > after && (req.Msg.GetAgentId() == "" || ev.GetTask().GetAgentId() == req.Msg.GetAgentId()) {
				send = append(send, ev)
			}
		}
		after = k.revision
		changed := k.changed
		k.mu.Unlock()
		for _, ev := range send {
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-k.stopped:
			return nil
		case <-broken:
			return connect.NewError(connect.CodeUnavailable, errors.New("stream broken by the test"))
		case <-changed:
		}
	}
}

// pushTask publishes a TASK_STATE event for t at a new revision and
// returns the revision.
func (k *fakeKernel) pushTask(t *syscallsv1.Task) int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.revision++
	k.events = append(k.events, &syscallsv1.Event{
		Revision: k.revision, Kind: syscallsv1.EventKind_EVENT_KIND_TASK_STATE, Task: proto.CloneOf(t),
	})
	k.notifyLocked()
	return k.revision
}

// breakWatches ends every open Watch stream with Unavailable.
func (k *fakeKernel) breakWatches() {
	k.mu.Lock()
	defer k.mu.Unlock()
	close(k.broken)
	k.broken = make(chan struct{})
}

// setExpected sets the tasks RegisterAgent answers with.
func (k *fakeKernel) setExpected(ts ...*syscallsv1.Task) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.expected = ts
}

// script appends scripted errors to one of the error lists.
func (k *fakeKernel) script(list *[]error, errs ...error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	*list = append(*list, errs...)
}

// waitFor blocks until cond (called with k.mu held) holds, failing the
// test after waitTimeout.
func (k *fakeKernel) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		k.mu.Lock()
		ok, changed := cond(), k.changed
		k.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			k.mu.Lock()
			defer k.mu.Unlock()
			t.Fatalf("timed out waiting for %s; reports: %v; registrations: %d", what, k.reports, len(k.registrations))
		}
	}
}

// waitReport waits for a report of state for task id and returns it.
func (k *fakeKernel) waitReport(t *testing.T, id string, state syscallsv1.TaskState) *syscallsv1.ReportTaskStatusRequest {
	t.Helper()
	var got *syscallsv1.ReportTaskStatusRequest
	k.waitFor(t, fmt.Sprintf("%s %s", id, state), func() bool {
		i := slices.IndexFunc(k.reports, func(r *syscallsv1.ReportTaskStatusRequest) bool {
			return r.GetTaskId() == id && r.GetState() == state
		})
		if i >= 0 {
			got = k.reports[i]
		}
		return got != nil
	})
	return got
}

// waitRegistrations waits for n registrations and returns the n-th.
func (k *fakeKernel) waitRegistrations(t *testing.T, n int) *syscallsv1.RegisterAgentRequest {
	t.Helper()
	k.waitFor(t, fmt.Sprintf("%d registrations", n), func() bool { return len(k.registrations) >= n })
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.registrations[n-1]
}

// states returns the states reported for task id, in order.
func (k *fakeKernel) states(id string) []syscallsv1.TaskState {
	k.mu.Lock()
	defer k.mu.Unlock()
	var s []syscallsv1.TaskState
	for _, r := range k.reports {
		if r.GetTaskId() == id {
			s = append(s, r.GetState())
		}
	}
	return s
}

// resyncError is the error of a Watch from a compacted revision.
func resyncError(t *testing.T, current int64) error {
	t.Helper()
	err := connect.NewError(connect.CodeFailedPrecondition, errors.New("revision compacted"))
	d, derr := connect.NewErrorDetail(&syscallsv1.ResyncInfo{CurrentRevision: current, CompactRevision: current})
	if derr != nil {
		t.Fatal(derr)
	}
	err.AddDetail(d)
	return err
}

// fakeRelay is one AgentRelay call the agent opened, as a test sees it.
type fakeRelay struct {
	id    string
	ups   chan *syscallsv1.RelayUp   // what the agent sent after the stream id; closed when it closed its side
	downs chan *syscallsv1.RelayDown // sent to the agent
	end   chan struct{}              // closed by cancel: the call ends as when the client goes away
	once  sync.Once
}

// cancel ends the call from the kernel's side.
func (r *fakeRelay) cancel() { r.once.Do(func() { close(r.end) }) }

// send sends down to the agent.
func (r *fakeRelay) send(t *testing.T, down *syscallsv1.RelayDown) {
	t.Helper()
	select {
	case r.downs <- down:
	case <-time.After(waitTimeout):
		t.Fatal("relay: agent side not reading")
	}
}

// next returns the next message the agent sent, or false once it closed
// its side.
func (r *fakeRelay) next(t *testing.T) (*syscallsv1.RelayUp, bool) {
	t.Helper()
	select {
	case up, ok := <-r.ups:
		return up, ok
	case <-time.After(waitTimeout):
		t.Fatalf("relay %s: nothing from the agent for %v", r.id, waitTimeout)
		return nil, false
	}
}

// rest returns everything the agent sends until it closes its side.
func (r *fakeRelay) rest(t *testing.T) []*syscallsv1.RelayUp {
	t.Helper()
	var all []*syscallsv1.RelayUp
	for {
		up, ok := r.next(t)
		if !ok {
			return all
		}
		all = append(all, up)
	}
}

// relayFor returns the channel the relay of stream id is delivered on.
func (k *fakeKernel) relayFor(id string) chan *fakeRelay {
	k.mu.Lock()
	defer k.mu.Unlock()
	ch := k.relays[id]
	if ch == nil {
		ch = make(chan *fakeRelay, 1)
		k.relays[id] = ch
	}
	return ch
}

// openStream pushes open to the agent and returns the relay it opens for
// it.
func (k *fakeKernel) openStream(t *testing.T, open *syscallsv1.StreamOpen) *fakeRelay {
	t.Helper()
	ch := k.relayFor(open.GetStreamId())
	k.opens <- open
	select {
	case r := <-ch:
		t.Cleanup(r.cancel)
		return r
	case <-time.After(waitTimeout):
		t.Fatalf("agent opened no relay for stream %s", open.GetStreamId())
		return nil
	}
}

// AgentStreams sends the StreamOpens tests push.
func (k *fakeKernel) AgentStreams(ctx context.Context, _ *connect.Request[syscallsv1.AgentStreamsRequest], stream *connect.ServerStream[syscallsv1.StreamOpen]) error {
	k.mu.Lock()
	k.streamsCalls++
	k.notifyLocked()
	err := pop(&k.streamsErrs)
	k.mu.Unlock()
	if err != nil {
		return err
	}
	for {
		select {
		case o := <-k.opens:
			if err := stream.Send(o); err != nil {
				return err
			}
		case <-ctx.Done():
			return nil
		case <-k.stopped:
			return nil
		}
	}
}

// AgentRelay hands the relay to the test that opened its stream; it ends
// the call once the agent closed its side, or when the test cancels it.
func (k *fakeKernel) AgentRelay(ctx context.Context, stream *connect.BidiStream[syscallsv1.RelayUp, syscallsv1.RelayDown]) error {
	first, err := stream.Receive()
	if err != nil {
		return err
	}
	if first.GetStreamId() == "" {
		return connect.NewError(connect.CodeInvalidArgument, errors.New("first RelayUp names no stream_id"))
	}
	r := &fakeRelay{id: first.GetStreamId(), ups: make(chan *syscallsv1.RelayUp, 1024),
		downs: make(chan *syscallsv1.RelayDown), end: make(chan struct{})}
	select {
	case k.relayFor(r.id) <- r:
	default:
		return connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("stream %s already relayed", r.id))
	}
	received := make(chan struct{})
	go func() {
		defer close(received)
		defer close(r.ups)
		for {
			up, err := stream.Receive()
			if err != nil {
				return
			}
			select {
			case r.ups <- up:
			case <-r.end:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case d := <-r.downs:
			if err := stream.Send(d); err != nil {
				return err
			}
		case <-received:
			return nil
		case <-r.end:
			return connect.NewError(connect.CodeCanceled, errors.New("client went away"))
		case <-k.stopped:
			return nil
		}
	}
}
