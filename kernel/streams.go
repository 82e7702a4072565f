package kernel

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Log and exec streams (Logs, Exec) are relayed by the kernel: it decides
// who may open one, asks the task's agent through the agent's open
// AgentStreams call, and pipes the agent's AgentRelay call, which names
// the stream, to the client's call. No client talks to an agent, and an
// agent only needs to reach the kernel (docs/logs.md). Nothing of a stream
// is persisted except the TASK_EXEC event of an exec.

// Stream limits.
const (
	// RelayTimeout bounds the wait for an agent to answer a StreamOpen
	// with its AgentRelay call.
	RelayTimeout = 10 * time.Second
	// MaxStreamsPerAgent bounds the streams open (or being opened) to one
	// agent at once.
	MaxStreamsPerAgent = 256
	// maxExecArgs and maxExecBytes bound an ExecStart's args and the
	// total of its strings.
	maxExecArgs  = 1024
	maxExecBytes = 256 << 10
	// MaxRelayChunk is the most data one LogsChunk or ExecOutput may carry
	// from an agent.
	MaxRelayChunk = 64 << 10
)

// streams is the broker of log and exec streams. Its zero value is not
// usable; see newStreams.
type streams struct {
	mu      sync.Mutex
	agents  map[string]*agentLine // agent id → its AgentStreams call
	pending map[string]*relayWait // stream id → a client waiting for the relay
	open    map[string]int        // agent id → streams open or being opened
}

// agentLine is one AgentStreams call: the kernel sends StreamOpens to it
// (never closed: gone is, when the call ends).
type agentLine struct {
	ch   chan *pb.StreamOpen
	gone chan struct{}
}

// relayWait is a client's stream waiting for its agent's AgentRelay.
type relayWait struct {
	agentID string
	got     chan *relay // buffered 1
	failed  chan error  // buffered 1: the agent's call ended before it answered
}

func newStreams() *streams {
	return &streams{agents: map[string]*agentLine{}, pending: map[string]*relayWait{}, open: map[string]int{}}
}

// relay is an agent's AgentRelay call as the kernel sees it: recv returns
// what the agent sends (io.EOF at its end), send sends to it. The client's
// side calls them from one goroutine each; close ends the call, and no
// send runs after it has returned (the agent's call must not be written
// to once its handler returns).
type relay struct {
	recv     func() (*pb.RelayUp, error)
	send     func(*pb.RelayDown) error
	stopSend func()
	done     chan struct{}
	once     sync.Once
}

func newRelay(recv func() (*pb.RelayUp, error), send func(*pb.RelayDown) error) *relay {
	r := &relay{recv: recv, done: make(chan struct{})}
	r.send, r.stopSend = guardedSend(send)
	return r
}

func (r *relay) close() {
	r.once.Do(func() {
		r.stopSend()
		close(r.done)
	})
}

// guardedSend wraps send so that, once the returned stop has been called,
// it is not running and never runs again: a handler's stream must not be
// written to after the handler returns, and a goroutine may still hold it.
func guardedSend[T any](send func(T) error) (guarded func(T) error, stop func()) {
	var mu sync.Mutex
	stopped := false
	return func(m T) error {
			mu.Lock()
			defer mu.Unlock()
			if stopped {
				return io.ErrClosedPipe
			}
			return send(m)
		}, func() {
			mu.Lock()
			stopped = true
			mu.Unlock()
		}
}

func newStreamID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ask sends open to agentID and waits for its relay. The caller must call
// release(agentID) when the stream is over, and close the relay.
func (s *streams) ask(ctx context.Context, agentID string, open *pb.StreamOpen) (*relay, error) {
	open.StreamId = newStreamID()
	w := &relayWait{agentID: agentID, got: make(chan *relay, 1), failed: make(chan error, 1)}
	s.mu.Lock()
	line := s.agents[agentID]
	switch {
	case line == nil:
		s.mu.Unlock()
		return nil, errorf(Unavailable, "agent %s is not connected to the kernel (its AgentStreams call is not open); try again when it is", agentID)
	case s.open[agentID] >= MaxStreamsPerAgent:
		s.mu.Unlock()
		return nil, errorf(ResourceExhausted, "agent %s has %d log and exec streams open, the most it may", agentID, MaxStreamsPerAgent)
	}
	// Queued under mu: end, which drains the queue under mu, fails it if
	// the agent's call ends before taking it.
	select {
	case line.ch <- open:
	default:
		s.mu.Unlock()
		return nil, errorf(ResourceExhausted, "agent %s: too many stream requests waiting", agentID)
	}
	s.open[agentID]++
	s.pending[open.StreamId] = w
	s.mu.Unlock()
	fail := func(err error) (*relay, error) {
		s.mu.Lock()
		delete(s.pending, open.StreamId)
		s.mu.Unlock()
		select { // the relay may have arrived meanwhile
		case r := <-w.got:
			r.close()
		default:
		}
		s.release(agentID)
		return nil, err
	}
	t := time.NewTimer(RelayTimeout)
	defer t.Stop()
	select {
	case r := <-w.got:
		return r, nil
	case err := <-w.failed:
		return fail(err)
	case <-t.C:
		return fail(errorf(Unavailable, "agent %s did not answer the stream request within %v", agentID, RelayTimeout))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
}

func (s *streams) release(agentID string) {
	s.mu.Lock()
	if s.open[agentID]--; s.open[agentID] <= 0 {
		delete(s.open, agentID)
	}
	s.mu.Unlock()
}

// StreamAgentConnected reports whether agent id holds an AgentStreams
// call open: whether its tasks' logs and exec can be reached.
func (k *Kernel) StreamAgentConnected(id string) bool {
	k.streams.mu.Lock()
	defer k.streams.mu.Unlock()
	return k.streams.agents[id] != nil
}

// streamTask returns (a copy of) task id if p may open a stream of it:
// its owner and operators. A framework asking for another's task gets
// PermissionDenied, as issue 15 asks (so it learns that the id exists,
// where Revoke and the lists answer NotFound; task ids are sequential,
// so that tells little).
func (k *Kernel) streamTask(p Principal, field, id string) (*pb.Task, error) {
	if id == "" {
		return nil, fieldError(field, "is required")
	}
	if len(id) > MaxStringLen {
		return nil, fieldError(field, "longer than %d", MaxStringLen)
	}
	var tk *pb.Task
	k.view.read(func(t *Table) {
		if tk = t.tasks[id]; tk == nil {
			for _, c := range t.completed {
				if c.GetId() == id {
					tk = c
				}
			}
		}
	}) // the view's objects are never changed: tk may be read after

	if tk == nil {
		return nil, errorf(NotFound, "%s: no task %q (ended tasks are kept while their allocation lives, and the last %d others)", field, clip(id), MaxCompleted)
	}
	if p.Role != RoleOperator && !(p.Role == RoleFramework && p.Name == tk.GetOwner()) {
		return nil, errorf(PermissionDenied, "%s: task %q belongs to another principal", field, clip(id))
	}
	if tk.GetAgentId() == "" {
		return nil, errorf(FailedPrecondition, "%s: task %q has no agent yet", field, clip(id))
	}
	return proto.Clone(tk).(*pb.Task), nil
}

// validateLogs checks a LogsRequest's fields.
func validateLogs(req *pb.LogsRequest) error {
	seen := map[pb.LogStream]bool{}
	for i, st := range req.GetStreams() {
		if st != pb.LogStream_LOG_STREAM_STDOUT && st != pb.LogStream_LOG_STREAM_STDERR {
			return fieldError("streams", "[%d]: %v is not a stream (STDOUT or STDERR)", i, st)
		}
		if seen[st] {
			return fieldError("streams", "[%d]: %v is named twice", i, st)
		}
		seen[st] = true
	}
	if req.Tail != nil && req.GetTail() < 0 {
		return fieldError("tail", "must be >= 0, got %d (leave it unset for the whole log)", req.GetTail())
	}
	if d := req.GetSince(); d != nil && (d.CheckValid() != nil || d.AsDuration() < 0) {
		return fieldError("since", "must be a valid duration >= 0")
	}
	if req.GetLimitBytes() < 0 {
		return fieldError("limit_bytes", "must be >= 0, got %d", req.GetLimitBytes())
	}
	for f, c := range map[string]string{"stdout_cursor": req.GetStdoutCursor(), "stderr_cursor": req.GetStderrCursor()} {
		if len(c) > 64 {
			return fieldError(f, "longer than 64")
		}
	}
	return nil
}

// Logs streams the output of task req.TaskId from its agent to send, for
// its owner and operators. It returns when the agent ends the stream (nil),
// ctx ends (nil), or with the agent's error.
func (k *Kernel) Logs(ctx context.Context, p Principal, req *pb.LogsRequest, send func(*pb.LogsChunk) error) error {
	if err := validateLogs(req); err != nil {
		return err
	}
	tk, err := k.streamTask(p, "task_id", req.GetTaskId())
	if err != nil {
		return err
	}
	r, err := k.streams.ask(ctx, tk.GetAgentId(), &pb.StreamOpen{Logs: proto.Clone(req).(*pb.LogsRequest)})
	if err != nil {
		return streamCtxErr(ctx, err)
	}
	defer k.streams.release(tk.GetAgentId())
	defer r.close()
	// The client going away ends the agent's call, which ends Recv.
	defer context.AfterFunc(ctx, r.close)()
	for {
		up, err := r.recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return streamCtxErr(ctx, relayBroken(tk.GetAgentId(), err))
		}
		switch {
		case up.GetError() != nil:
			return relayError(up.GetError())
		case up.GetLogs() != nil:
			if len(up.GetLogs().GetData()) > MaxRelayChunk {
				return errorf(Internal, "agent %s sent a chunk of %d bytes (at most %d)", tk.GetAgentId(), len(up.GetLogs().GetData()), MaxRelayChunk)
			}
			if err := send(up.GetLogs()); err != nil {
				return nil // the client went away
			}
		default:
			return errorf(Internal, "agent %s sent a relay message without logs or error", tk.GetAgentId())
		}
	}
}

// validateExecStart checks the first input of an Exec.
func validateExecStart(st *pb.ExecStart) error {
	if st == nil {
		return fieldError("start", "is required in the first input")
	}
	if st.GetCommand() == "" {
		return fieldError("start.command", "is required")
	}
	if len(st.GetArgs()) > maxExecArgs {
		return fieldError("start.args", "more than %d", maxExecArgs)
	}
	n := len(st.GetCommand())
	for _, a := range st.GetArgs() {
		n += len(a)
	}
	for key, v := range st.GetEnv() {
		if key == "" || len(key) > MaxStringLen {
			return fieldError("start.env", "key %q: must be 1 to %d characters", clip(key), MaxStringLen)
		}
		for _, c := range key {
			if c == '=' || c == 0 {
				return fieldError("start.env", "key %q: must not hold '=' or NUL", clip(key))
			}
		}
		n += len(key) + len(v)
	}
	if n > maxExecBytes {
		return fieldError("start", "command, args and env hold %d bytes, at most %d", n, maxExecBytes)
	}
	if err := validateSize("start.size", st.GetSize()); err != nil {
		return err
	}
	if st.GetSize() != nil && !st.GetTty() {
		return fieldError("start.size", "is only for tty")
	}
	return nil
}

func validateSize(field string, s *pb.TermSize) error {
	if s == nil {
		return nil
	}
	if s.GetRows() > 0xffff || s.GetCols() > 0xffff {
		return fieldError(field, "rows and cols must be at most 65535, got %dx%d", s.GetRows(), s.GetCols())
	}
	return nil
}

// Exec runs start's command inside its task through the task's agent, for
// the task's owner and operators, after recording a TASK_EXEC event.
// recv returns the client's inputs (io.EOF when the client closed its
// side), send sends outputs. It returns once the command's exit was sent
// (nil), when ctx ends (nil; the agent kills the command), or with an
// error.
func (k *Kernel) Exec(ctx context.Context, p Principal, start *pb.ExecStart, recv func() (*pb.ExecInput, error), send func(*pb.ExecOutput) error) error {
	if err := validateExecStart(start); err != nil {
		return err
	}
	tk, err := k.streamTask(p, "start.task_id", start.GetTaskId())
	if err != nil {
		return err
	}
	if tk.GetState() != pb.TaskState_TASK_STATE_RUNNING {
		return errorf(FailedPrecondition, "start.task_id: task %s is %s, not RUNNING", tk.GetId(), stateName(tk.GetState()))
	}
	if _, err := k.do(ctx, func(t *Table, c *Changes, now time.Time) error {
		cur := t.tasks[tk.GetId()]
		if cur == nil || cur.GetState() != pb.TaskState_TASK_STATE_RUNNING {
			return errorf(FailedPrecondition, "start.task_id: task %s is no longer running", tk.GetId())
		}
		e := event(pb.EventKind_EVENT_KIND_TASK_EXEC, now, "exec by "+p.Name)
		e.Task = &pb.Task{Id: cur.GetId(), AllocationId: cur.GetAllocationId(), AgentId: cur.GetAgentId(), Owner: cur.GetOwner(), State: cur.GetState()}
		e.Exec = &pb.ExecRecord{Principal: p.Name, Command: start.GetCommand(), Args: start.GetArgs(), Tty: start.GetTty()}
		c.Events = append(c.Events, e)
		return nil
	}, nil); err != nil {
		return err
	}
	agent := tk.GetAgentId()
	r, err := k.streams.ask(ctx, agent, &pb.StreamOpen{Exec: proto.Clone(start).(*pb.ExecStart)})
	if err != nil {
		return streamCtxErr(ctx, err)
	}
	defer k.streams.release(agent)
	defer r.close()
	send, stopSending := guardedSend(send)
	defer stopSending()

	// Client → agent, until the client closes its side or fails.
	inErr := make(chan error, 1)
	go func() {
		for {
			in, err := recv()
			if errors.Is(err, io.EOF) {
				inErr <- nil
				return
			}
			if err != nil {
				inErr <- err
				return
			}
			if in.GetStart() != nil {
				inErr <- fieldError("start", "only the first input may carry start")
				return
			}
			if err := validateSize("resize", in.GetResize()); err != nil {
				inErr <- err
				return
			}
			if err := r.send(&pb.RelayDown{Exec: in}); err != nil {
				inErr <- nil // the agent side ended; its Recv says why
				return
			}
		}
	}()
	// Agent → client.
	out := make(chan error, 1)
	go func() {
		for {
			up, err := r.recv()
			if errors.Is(err, io.EOF) {
				out <- errorf(Unavailable, "agent %s ended the exec stream without an exit status", agent)
				return
			}
			if err != nil {
				out <- relayBroken(agent, err)
				return
			}
			switch {
			case up.GetError() != nil:
				out <- relayError(up.GetError())
				return
			case up.GetExec() != nil:
				o := up.GetExec()
				if len(o.GetStdout())+len(o.GetStderr()) > MaxRelayChunk {
					out <- errorf(Internal, "agent %s sent an output of %d bytes (at most %d)", agent, len(o.GetStdout())+len(o.GetStderr()), MaxRelayChunk)
					return
				}
				if err := send(o); err != nil {
					out <- nil // the client went away
					return
				}
				if o.GetExit() != nil {
					out <- nil
					return
				}
			default:
				out <- errorf(Internal, "agent %s sent a relay message without output or error", agent)
				return
			}
		}
	}()
	for {
		select {
		case err := <-out:
			return streamCtxErr(ctx, err)
		case err := <-inErr:
			if err != nil {
				return streamCtxErr(ctx, err)
			}
			inErr = nil // the client sent all it will; outputs go on
		case <-ctx.Done():
			return nil
		}
	}
}

// AgentStreams delivers StreamOpens for the agent p is bound to until ctx
// ends. A newer call of the same agent replaces an older one (which
// returns Aborted).
func (k *Kernel) AgentStreams(ctx context.Context, p Principal, req *pb.AgentStreamsRequest, send func(*pb.StreamOpen) error) error {
	var mine string
	k.view.read(func(t *Table) { mine = t.boundAgent(p) })
	if mine == "" {
		return errorf(FailedPrecondition, "agent_id: register first (this token is bound to no agent)")
	}
	if req.GetAgentId() != "" && req.GetAgentId() != mine {
		return errorf(PermissionDenied, "agent_id: %q is not the agent this token is bound to (%s)", clip(req.GetAgentId()), mine)
	}
	line := &agentLine{ch: make(chan *pb.StreamOpen, 64), gone: make(chan struct{})}
	s := k.streams
	s.mu.Lock()
	old := s.agents[mine]
	s.agents[mine] = line
	s.mu.Unlock()
	if old != nil {
		s.end(old, errorf(Unavailable, "agent %s opened a new AgentStreams call before answering", mine))
	}
	defer func() {
		s.mu.Lock()
		if s.agents[mine] == line {
			delete(s.agents, mine)
		}
		s.mu.Unlock()
		s.end(line, errorf(Unavailable, "agent %s disconnected before answering the stream request", mine))
	}()
	for {
		select {
		case o := <-line.ch:
			if err := send(o); err != nil {
				return err
			}
		case <-line.gone:
			return errorf(Aborted, "a newer AgentStreams call of agent %s replaced this one", mine)
		case <-ctx.Done():
			return nil
		case <-k.done:
			return errorf(Unavailable, "kernel is stopping")
		}
	}
}

// end marks line gone and fails the requests still queued on it (they
// would otherwise wait for RelayTimeout). Requests sent to it later find
// it gone from s.agents, or are failed here by a later end; end is
// idempotent.
func (s *streams) end(line *agentLine, err error) {
	s.mu.Lock()
	select {
	case <-line.gone:
	default:
		close(line.gone)
	}
	for {
		select {
		case o := <-line.ch:
			if w := s.pending[o.GetStreamId()]; w != nil {
				select {
				case w.failed <- err:
				default:
				}
			}
			continue
		default:
		}
		break
	}
	s.mu.Unlock()
}

// AgentRelay serves an agent's answer to a StreamOpen: first names the
// stream (its first message, already read), recv and send are the rest of
// the call. It returns when the client's side is done with it.
func (k *Kernel) AgentRelay(ctx context.Context, p Principal, first *pb.RelayUp, recv func() (*pb.RelayUp, error), send func(*pb.RelayDown) error) error {
	id := first.GetStreamId()
	if id == "" {
		return fieldError("stream_id", "is required in the first message")
	}
	var mine string
	k.view.read(func(t *Table) { mine = t.boundAgent(p) })
	s := k.streams
	s.mu.Lock()
	w := s.pending[id]
	if w != nil && w.agentID == mine {
		delete(s.pending, id)
	}
	s.mu.Unlock()
	if w == nil || w.agentID != mine {
		// Unknown, already answered, timed out, or another agent's.
		return errorf(NotFound, "stream_id: no stream %q waits for this agent", clip(id))
	}
	pendingFirst := first
	if first.GetLogs() == nil && first.GetExec() == nil && first.GetError() == nil {
		pendingFirst = nil
	}
	r := newRelay(func() (*pb.RelayUp, error) {
		if m := pendingFirst; m != nil {
			pendingFirst = nil
			return m, nil
		}
		return recv()
	}, send)
	w.got <- r
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return nil
	}
}

// relayError is the agent's RelayError as a kernel error. Its code is a
// gRPC/Connect code number.
func relayError(e *pb.RelayError) error {
	codes := map[int32]Code{3: InvalidArgument, 5: NotFound, 7: PermissionDenied, 9: FailedPrecondition,
		14: Unavailable, 8: ResourceExhausted, 10: Aborted, 12: Unimplemented, 13: Internal}
	c, ok := codes[e.GetCode()]
	if !ok {
		c = Internal
	}
	msg := e.GetMessage()
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	return &Error{Code: c, Msg: msg}
}

func relayBroken(agent string, err error) error {
	return errorf(Unavailable, "the stream from agent %s broke: %v", agent, err)
}

// streamCtxErr is nil when the stream ended because its client went away
// (ctx ended, or an error that says so), else err.
func streamCtxErr(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil
	case ctx.Err() != nil && CodeOf(err) == Unavailable:
		return nil
	}
	return err
}

func stateName(s pb.TaskState) string {
	n := s.String()
	const prefix = "TASK_STATE_"
	if len(n) > len(prefix) {
		return n[len(prefix):]
	}
	return n
}
