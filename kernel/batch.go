package kernel

// Batched syscalls: LaunchBatch and ReportTaskStatusBatch carry many
// Launch or ReportTaskStatus requests in one call and one kernel op, so
// that the per-call costs (HTTP, Connect, the loop, the commit, the
// events' fan-out) are shared by the batch (docs/benchmarks.md, issue
// 18). Each item goes through the single call's own checks (checkLaunch
// and launchOne, ValidateReport and reportOne); items succeed or fail on
// their own.

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// MaxBatchItems bounds the items of one LaunchBatch or
// ReportTaskStatusBatch call.
const MaxBatchItems = 1000

// checkLaunch is Launch's check of a request before the loop: the
// request's own validity, and a key to seal its secret_env with.
func (k *Kernel) checkLaunch(req *pb.LaunchRequest) error {
	if err := ValidateLaunch(req); err != nil {
		return err
	}
	if len(req.GetSecretEnv()) > 0 && k.cfg.Sealer == nil {
		return errNoKEK("secret_env")
	}
	return nil
}

// launchOne is Launch's step in the loop: the fence, then Table.Launch.
// It answers a copy of the task without its secrets. Refusals change
// nothing.
func launchOne(t *Table, p Principal, req *pb.LaunchRequest, now time.Time, c *Changes) (*pb.Task, error) {
	if err := t.checkFence(p.Name, req.GetFence()); err != nil {
		return nil, err
	}
	task, err := t.Launch(p, req, now, c)
	if err != nil {
		return nil, err
	}
	out := proto.Clone(task).(*pb.Task)
	stripSecrets(out)
	return out, nil
}

// reportOne is ReportTaskStatus's step in the loop (Table.Report).
func reportOne(t *Table, p Principal, req *pb.ReportTaskStatusRequest, now time.Time, c *Changes) error {
	return t.Report(p, req, now, c)
}

// LaunchBatch launches req's items as Launch would, each checked and
// authorized on its own, in one kernel op: the tasks launched are
// committed together, at the response's revision. The response has one
// result per item, in order. An empty or oversized batch is
// InvalidArgument naming launches; an error of the call as a whole
// (Unavailable) is returned as the error, and then no result is given.
func (k *Kernel) LaunchBatch(ctx context.Context, p Principal, req *pb.LaunchBatchRequest) (*pb.LaunchBatchResponse, error) {
	items := req.GetLaunches()
	if n := len(items); n == 0 || n > MaxBatchItems {
		return nil, fieldError("launches", "want 1 to %d launches, got %d", MaxBatchItems, n)
	}
	errs := make([]error, len(items))
	tasks := make([]*pb.Task, len(items))
	for i, r := range items {
		errs[i] = k.checkLaunch(r)
	}
	// Even a batch of only invalid items goes through the loop, so that
	// its record names what was refused (noteItems).
	audit := auditFrom(ctx)
	rev, err := k.do(ctx, func(t *Table, c *Changes, now time.Time) error {
		for i, r := range items {
			if errs[i] == nil {
				tasks[i], errs[i] = launchOne(t, p, r, now, c)
			}
		}
		for i, err := range errs {
			errs[i] = itemError("launches", i, err)
		}
		audit.noteItems(errs) // a refused item is in the trail
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	resp := &pb.LaunchBatchResponse{Results: make([]*pb.LaunchResult, len(items)), Revision: rev}
	for i := range items {
		resp.Results[i] = &pb.LaunchResult{Task: tasks[i], Code: CodeName(errs[i]), Message: errText(errs[i])}
	}
	return resp, nil
}

// ReportTaskStatusBatch applies req's reports in order, each checked and
// authorized as ReportTaskStatus (an agent reports only for itself), in
// one kernel op and one commit. A task's successive states in one batch
// emit the events the separate calls would. Results and errors as
// LaunchBatch's.
func (k *Kernel) ReportTaskStatusBatch(ctx context.Context, p Principal, req *pb.ReportTaskStatusBatchRequest) (*pb.ReportTaskStatusBatchResponse, error) {
	items := req.GetReports()
	if n := len(items); n == 0 || n > MaxBatchItems {
		return nil, fieldError("reports", "want 1 to %d reports, got %d", MaxBatchItems, n)
	}
	errs := make([]error, len(items))
	todo := 0
	for i, r := range items {
		if errs[i] = ValidateReport(r); errs[i] == nil {
			todo++
		}
	}
	var rev int64
	if todo > 0 {
		var err error
		rev, err = k.do(ctx, func(t *Table, c *Changes, now time.Time) error {
			for i, r := range items {
				if errs[i] == nil {
					errs[i] = reportOne(t, p, r, now, c)
				}
			}
			return nil
		}, nil)
		if err != nil {
			return nil, err
		}
	} else {
		rev = k.Revision()
	}
	resp := &pb.ReportTaskStatusBatchResponse{Results: make([]*pb.ReportResult, len(items)), Revision: rev}
	for i := range items {
		err := itemError("reports", i, errs[i])
		resp.Results[i] = &pb.ReportResult{Code: CodeName(err), Message: errText(err)}
	}
	return resp, nil
}

// fieldPrefix matches a message that starts by naming its field
// ("command: ...", "resources.cpus: ...").
var fieldPrefix = regexp.MustCompile(`^[a-z_][a-z0-9_.\[\]]*: `)

// itemError names item i of the list field in err's message, keeping its
// code: "command: required" becomes "launches[3].command: required".
// nil stays nil.
func itemError(list string, i int, err error) error {
	if err == nil {
		return nil
	}
	code, msg := CodeOf(err), err.Error()
	if fieldPrefix.MatchString(msg) && !strings.HasPrefix(msg, "deposed: ") {
		return &Error{Code: code, Msg: fmt.Sprintf("%s[%d].%s", list, i, msg)}
	}
	return &Error{Code: code, Msg: fmt.Sprintf("%s[%d]: %s", list, i, msg)}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
