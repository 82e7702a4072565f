package framework

import (
	"context"
	"errors"
	"regexp"
	"strconv"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Watch streams the events after req.AfterRevision (0: from now on, which
// Watch pins to the kernel's current revision first) to fn, in order, one
// at a time, from the calling goroutine. It reconnects by itself — after a
// broken stream, a kernel restart, an endpoint that went away (the next
// one is tried), or a stream the kernel ended because fn read too slowly —
// with backoff, until ctx ends: fn sees every event exactly once, with no
// gap and no duplicate, even when the stream broke in the middle of a
// revision's events (several events may share a revision).
//
// Watch returns fn's error as is; *ResyncError when the revision to
// resume after was compacted (list again, then watch after
// ResyncError.Current); ctx's error when ctx ends; and the kernel's error
// for a request it refuses (InvalidArgument, PermissionDenied, ...). req
// is not mutated.
func (c *Client) Watch(ctx context.Context, req *pb.WatchRequest, fn func(*pb.Event) error) error {
	req = proto.Clone(req).(*pb.WatchRequest)
	s := c.shared
	if req.GetAfterRevision() == 0 {
		// Pin "now" to a revision, so that a reconnect before the first
		// event loses nothing.
		r, err := c.ListAgents(ctx, &pb.ListAgentsRequest{})
		if err != nil {
			return err
		}
		req.AfterRevision = r.GetRevision()
	}
	// pos is the last revision fn has seen whole. cur is the revision of
	// the last event fn saw and n how many of cur's events it saw: until an
	// event of a later revision arrives, cur may be incomplete, so a
	// reconnect resumes after cur-1 and skips the n events of cur it
	// already delivered (a revision's events come in the same order every
	// time).
	pos := req.GetAfterRevision()
	var cur int64
	n := 0
	failures := 0
	for {
		after := pos
		skip := 0
		if cur > pos {
			after, skip = cur-1, n
		}
		req.AfterRevision = after
		i := int(s.cur.Load()) % len(s.kernels)
		stream, err := s.kernels[i].Watch(ctx, connect.NewRequest(req))
		if err == nil {
			for stream.Receive() {
				ev := stream.Msg()
				rev := ev.GetRevision()
				if rev <= after {
					continue // never expected; resuming is after `after`
				}
				if rev == cur && skip > 0 {
					skip--
					continue
				}
				skip = 0
				if rev != cur {
					if cur > pos {
						pos = cur // cur is complete: a later revision began
					}
					cur, n = rev, 0
				}
				if err := fn(ev); err != nil {
					stream.Close()
					return err
				}
				n++
				failures = 0
			}
			err = stream.Err()
			stream.Close()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			err = connect.NewError(connect.CodeUnavailable, errors.New("watch: stream ended"))
		}
		if ri := resyncInfo(err); ri != nil {
			if ri.GetCompactRevision() == 0 {
				// The kernel ended the stream because fn fell behind; it
				// names the last revision it sent whole.
				if r, ok := resumeAfter(err); ok && r >= cur && r > pos {
					pos, cur, n = r, 0, 0
				}
				s.log.Warn("framework: watch fell behind; resuming", "after", max(pos, cur-1))
				continue
			}
			var ce *connect.Error
			errors.As(err, &ce)
			return &ResyncError{Current: ri.GetCurrentRevision(), Compacted: ri.GetCompactRevision(), err: ce}
		}
		code := Code(err)
		switch code {
		case connect.CodeUnavailable, connect.CodeUnknown, connect.CodeInternal, connect.CodeCanceled,
			connect.CodeDeadlineExceeded, connect.CodeAborted:
			if code == connect.CodeUnavailable && len(s.kernels) > 1 {
				s.cur.CompareAndSwap(int64(i), int64((i+1)%len(s.kernels)))
			}
		case connect.CodeResourceExhausted:
			if ok, _, _ := retryable(err); !ok {
				return err
			}
		default:
			return err
		}
		failures++
		d := s.retry.delay(failures)
		s.log.Warn("framework: watch broke; resuming", "endpoint", s.endpoints[i], "after", max(pos, cur-1), "in", d, "err", err)
		if !sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

// resyncInfo returns the ResyncInfo detail of a FailedPrecondition error,
// or nil.
func resyncInfo(err error) *pb.ResyncInfo {
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeFailedPrecondition {
		return nil
	}
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if ri, ok := v.(*pb.ResyncInfo); ok {
				return ri
			}
		}
	}
	return nil
}

// fellBehindRE finds the revision a fell-behind watch may resume after
// ("watch: fell behind: N events buffered; resume after revision R").
var fellBehindRE = regexp.MustCompile(`resume after revision (\d+)`)

func resumeAfter(err error) (int64, bool) {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return 0, false
	}
	m := fellBehindRE.FindStringSubmatch(ce.Message())
	if m == nil {
		return 0, false
	}
	r, perr := strconv.ParseInt(m[1], 10, 64)
	return r, perr == nil
}
