package api

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// audited lists the procedures recorded in the audit trail (docs/security.md,
// "Audit"), each with the request fields that name its targets. The
// mutating calls are all here but KeepAlive and Heartbeat (lease and
// liveness renewals, sent every few seconds, as Kubernetes' audit policy
// skips lease updates), ReportTaskStatus (agents' status reports, not
// user actions) and AgentStreams/AgentRelay (the agents' stream plumbing;
// Exec and Logs are the user's side of it). Reads are not recorded unless
// the door refuses them.
var audited = map[string][]string{
	syscallsv1connect.KernelAllocateProcedure:       {"role"},
	syscallsv1connect.KernelLaunchProcedure:         {"allocation_id"},
	syscallsv1connect.KernelRevokeProcedure:         {"id"},
	syscallsv1connect.KernelRegisterAgentProcedure:  {"agent_id"},
	syscallsv1connect.KernelPolicyLoadProcedure:     {"name"},
	syscallsv1connect.KernelPolicyUseProcedure:      {"name"},
	syscallsv1connect.KernelPolicyRollbackProcedure: nil,
	syscallsv1connect.KernelRoleSetProcedure:        {"name"},
	syscallsv1connect.KernelDestroyVolumeProcedure:  {"name"},
	syscallsv1connect.KernelRemoveImageProcedure:    {"agent_id", "ref"},
	syscallsv1connect.KernelCampaignProcedure:       {"election"},
	syscallsv1connect.KernelResignProcedure:         {"election"},
	syscallsv1connect.KernelStatePutProcedure:       {"key"},
	syscallsv1connect.KernelStateDeleteProcedure:    {"key"},
	syscallsv1connect.KernelAgentDrainProcedure:     {"agent_id"},
	syscallsv1connect.KernelTokenCreateProcedure:    {"name"},
	syscallsv1connect.KernelTokenRevokeProcedure:    {"id", "name"},
	syscallsv1connect.KernelAgentJoinProcedure:      {"hostname"},
	syscallsv1connect.KernelExecProcedure:           {"task_id"}, // of its first message's start
	syscallsv1connect.KernelCertRenewProcedure:      nil,         // a certificate issued to the caller
	syscallsv1connect.KernelCARotateProcedure:       nil,
	syscallsv1connect.KernelLaunchBatchProcedure:    nil, // one record per call; its tasks are the targets
}

// renewals are the audited calls whose successful no-op (a Campaign that
// only renewed its lease, or lost) is not recorded: it writes nothing.
var renewals = map[string]bool{
	syscallsv1connect.KernelCampaignProcedure: true,
}

// callName is a procedure's short name: "/dcos.syscalls.v1.Kernel/Launch"
// is "Launch".
func callName(procedure string) string {
	return procedure[strings.LastIndexByte(procedure, '/')+1:]
}

// requestTargets returns the values of m's string fields named in fields.
func requestTargets(m proto.Message, fields []string) []string {
	if m == nil || len(fields) == 0 {
		return nil
	}
	r := m.ProtoReflect()
	var ts []string
	for _, f := range fields {
		fd := r.Descriptor().Fields().ByName(protoreflect.Name(f))
		if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
			continue
		}
		if v := r.Get(fd).String(); v != "" {
			ts = append(ts, v)
		}
	}
	return ts
}

// responseTargets returns the ids of what a call made that its answer
// names and its events do not: tokens.
func responseTargets(m any) []string {
	switch r := m.(type) {
	case *pb.TokenCreateResponse:
		return []string{r.GetInfo().GetId()}
	case *pb.AgentJoinResponse:
		return []string{r.GetInfo().GetId()}
	case *pb.TokenRevokeResponse:
		var ids []string
		for _, t := range r.GetRevoked() {
			ids = append(ids, t.GetId())
		}
		return ids
	}
	return nil
}

// errCode and errMessage are how the trail records a call's error.
func errCode(err error) string {
	if err == nil {
		return "ok"
	}
	return connect.CodeOf(err).String()
}

func errMessage(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Message()
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// auditor is the interceptor that records the audited calls: it puts a
// kernel.AuditCall in the call's context, so that the kernel's loop
// records the call in the batch that commits it, and queues the record
// itself (kernel.Audit) when the call never reached the loop or its
// batch failed.
type auditor struct {
	k *kernel.Kernel
}

var _ connect.Interceptor = auditor{}

// WrapUnary implements connect.Interceptor.
func (a auditor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		proc := req.Spec().Procedure
		fields, ok := audited[proc]
		if !ok {
			return next(ctx, req)
		}
		m, _ := req.Any().(proto.Message)
		call := kernel.NewAuditCall(principal(ctx), callName(proc), requestTargets(m, fields)...)
		call.SkipNoop = renewals[proc]
		resp, err := next(kernel.WithAudit(ctx, call), req)
		if call.Settle() {
			targets := call.Targets
			if err == nil && resp != nil {
				targets = append(targets, responseTargets(resp.Any())...)
			}
			a.k.Audit(kernel.AuditRecordOf(call.Principal, call.Call, targets, errCode(err), errMessage(err)))
		}
		return resp, err
	}
}

// WrapStreamingClient implements connect.Interceptor.
func (auditor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler implements connect.Interceptor: an Exec session
// is recorded when it ends, with its outcome, at the time it started.
func (a auditor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if conn.Spec().Procedure != syscallsv1connect.KernelExecProcedure {
			return next(ctx, conn)
		}
		start := time.Now()
		ec := &execConn{StreamingHandlerConn: conn}
		err := next(ctx, ec)
		var targets []string
		if t := ec.taskID(); t != "" {
			targets = []string{t}
		}
		rec := kernel.AuditRecordOf(principal(ctx), callName(conn.Spec().Procedure), targets, errCode(err), errMessage(err))
		rec.Time = timestamppb.New(start)
		a.k.Audit(rec)
		return err
	}
}

// execConn notes the task of an Exec's first message.
type execConn struct {
	connect.StreamingHandlerConn
	mu   sync.Mutex
	task string
	seen bool
}

func (c *execConn) Receive(m any) error {
	err := c.StreamingHandlerConn.Receive(m)
	if in, ok := m.(*pb.ExecInput); ok && err == nil {
		c.mu.Lock()
		if !c.seen {
			c.seen, c.task = true, in.GetStart().GetTaskId()
		}
		c.mu.Unlock()
	}
	return err
}

func (c *execConn) taskID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.task
}

// auditRefusal records a call the door refused: unauthenticated or
// permission denied (rate-limited and oversized refusals are only
// counted, in dcos_api_requests_refused_total: recording them would let
// a flood fill the trail).
func (d *door) auditRefusal(procedure string, p kernel.Principal, why refusal, err error) {
	if d.audit == nil || (why != refusedUnauthenticated && why != refusedPermissionDenied) {
		return
	}
	d.audit(kernel.AuditRecordOf(p, callName(procedure), nil, errCode(err), errMessage(err)))
}

// AuditList implements syscallsv1connect.KernelHandler.
func (s *Server) AuditList(ctx context.Context, r *connect.Request[pb.AuditListRequest]) (*connect.Response[pb.AuditListResponse], error) {
	return reply(s.k.AuditList(ctx, principal(ctx), r.Msg))
}
