package ctl

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/dcos-kernel/dcos/internal/quantity"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

func watchCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "watch",
		Usage: "stream events until interrupted",
		Description: `Stream the kernel's events after revision --after (default: from now on) and
print one line per event: revision, kind, id, state and reason; for policy
events the id is the policy's name. -o json prints each Event as JSON on one
line. --kind narrows the stream and may be repeated: task, allocation, agent,
policy or usage (periodic TASK_USAGE events, shown only when asked), or one
exact kind (e.g. allocation_granted, agent_lost,
policy_failed). Interrupting (Ctrl-C) ends the watch with status 0; a
compacted --after fails with FailedPrecondition. A watch the kernel ends
because this command did not read fast enough (it fell behind) resumes by
itself after the last revision printed, saying so on stderr: no event is
lost or printed twice.`,
		Flags: []cli.Flag{
			&cli.Int64Flag{Name: "after", Usage: "stream events after revision `REV`; 0 means from now on"},
			&cli.StringSliceFlag{Name: "kind", Aliases: []string{"k"}, Usage: "only events of `KIND`: task, allocation, agent, policy, or an exact kind; repeatable"},
			&cli.StringFlag{Name: "owner", Usage: "only events of allocations and tasks of `PRINCIPAL` (operators only)"},
			&cli.StringFlag{Name: "agent", Usage: "only events about agent `ID`"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			f, err := outputFormat(c)
			if err != nil {
				return err
			}
			req := &syscallsv1.WatchRequest{
				AfterRevision: c.Int64("after"),
				Owner:         c.String("owner"),
				AgentId:       c.String("agent"),
			}
			if req.AfterRevision < 0 {
				return usagef("--after: want a revision >= 0, got %d", req.AfterRevision)
			}
			for _, k := range c.StringSlice("kind") {
				kinds, err := eventKinds(k)
				if err != nil {
					return err
				}
				req.Kinds = append(req.Kinds, kinds...)
			}
			if len(req.Kinds) == 0 {
				req.Kinds = allKindsButUsage()
			}
			k, err := dial(c, e)
			if err != nil {
				return err
			}
			last := req.AfterRevision // the last revision printed, or where the watch began
			for {
				stream, err := k.Watch(c.Context, connect.NewRequest(req))
				if err != nil {
					return callError("Watch", err)
				}
				for stream.Receive() {
					ev := stream.Msg()
					if f == formatJSON {
						err = writeJSONLine(e.stdout, ev)
					} else {
						_, err = fmt.Fprintln(e.stdout, eventLine(ev))
					}
					if err != nil {
						stream.Close()
						return err
					}
					last = max(last, ev.GetRevision())
				}
				err = stream.Err()
				stream.Close()
				after, behind := fellBehind(err, last)
				if !behind || c.Context.Err() != nil {
					return streamEnd(c.Context, "Watch", err)
				}
				// The kernel ended the stream because this command did not
				// read fast enough; the history is still there.
				fmt.Fprintf(e.stderr, "dcosctl: watch fell behind; resuming after revision %d\n", after)
				req.AfterRevision, last = after, after
			}
		},
	}
}

// fellBehindRE finds the revision a fell-behind watch may resume after in
// the kernel's message ("...; resume after revision R").
var fellBehindRE = regexp.MustCompile(`resume after revision (\d+)`)

// fellBehind reports whether err ended a watch because the client fell
// behind (FailedPrecondition with a ResyncInfo whose compact revision is
// 0; a compaction has one), and the revision to resume after: the later
// of last, the last revision printed, and the one the kernel names.
func fellBehind(err error, last int64) (int64, bool) {
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeFailedPrecondition {
		return 0, false
	}
	for _, d := range ce.Details() {
		v, derr := d.Value()
		if ri, ok := v.(*syscallsv1.ResyncInfo); derr == nil && ok && ri.GetCompactRevision() == 0 {
			if m := fellBehindRE.FindStringSubmatch(ce.Message()); m != nil {
				if r, perr := strconv.ParseInt(m[1], 10, 64); perr == nil {
					last = max(last, r)
				}
			}
			return last, true
		}
	}
	return 0, false
}

// allKindsButUsage is every event kind except TASK_USAGE, which a watch
// shows only when asked (--kind usage): it is periodic, not a change.
func allKindsButUsage() []syscallsv1.EventKind {
	values := syscallsv1.EventKind(0).Descriptor().Values()
	var out []syscallsv1.EventKind
	for i := range values.Len() {
		if k := syscallsv1.EventKind(values.Get(i).Number()); k != 0 && k != syscallsv1.EventKind_EVENT_KIND_TASK_USAGE {
			out = append(out, k)
		}
	}
	return out
}

// eventKinds maps a --kind word to event kinds, from the EventKind enum
// descriptor: "task" is every kind named EVENT_KIND_TASK_* but TASK_USAGE
// ("policy" every EVENT_KIND_POLICY_*), "usage" is TASK_USAGE, and an exact
// name such as "agent_lost" is that kind.
func eventKinds(word string) ([]syscallsv1.EventKind, error) {
	values := syscallsv1.EventKind(0).Descriptor().Values()
	if w := strings.ToLower(strings.TrimSpace(word)); w == "usage" || w == "task_usage" {
		return []syscallsv1.EventKind{syscallsv1.EventKind_EVENT_KIND_TASK_USAGE}, nil
	}
	want := "EVENT_KIND_" + strings.ToUpper(strings.TrimSpace(word))
	var out []syscallsv1.EventKind
	known := map[string]bool{}
	for i := range values.Len() {
		v := values.Get(i)
		name := string(v.Name())
		if v.Number() == 0 {
			continue
		}
		short := strings.ToLower(strings.TrimPrefix(name, "EVENT_KIND_"))
		known[short] = true
		known[strings.SplitN(short, "_", 2)[0]] = true
		if name == want || strings.HasPrefix(name, want+"_") && v.Number() != protoreflect.EnumNumber(syscallsv1.EventKind_EVENT_KIND_TASK_USAGE) {
			out = append(out, syscallsv1.EventKind(v.Number()))
		}
	}
	if len(out) == 0 || want == "EVENT_KIND_" {
		names := make([]string, 0, len(known))
		for n := range known {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, usagef("--kind %q: want one of %s", word, strings.Join(names, ", "))
	}
	return out, nil
}

// eventLine is an event for people: "rev kind id state reason".
func eventLine(ev *syscallsv1.Event) string {
	var id, state, reason string
	switch {
	case ev.GetKind() == syscallsv1.EventKind_EVENT_KIND_TASK_USAGE:
		t := ev.GetTask()
		u := t.GetUsage()
		id, state = t.GetId(), taskState(t.GetState())
		reason = fmt.Sprintf("cpu %.1f%% mem %s rx %s/s tx %s/s", u.GetCpuCores()*100, formatBytesU(u.GetMemBytes()),
			formatRate(u.GetRxBytesPerSec()), formatRate(u.GetTxBytesPerSec()))
	case ev.GetKind() == syscallsv1.EventKind_EVENT_KIND_TASK_EXEC:
		x := ev.GetExec()
		id, state = ev.GetTask().GetId(), "EXEC"
		reason = fmt.Sprintf("by %s: %s", dash(x.GetPrincipal()), formatCommand(x.GetCommand(), x.GetArgs()))
		if x.GetTty() {
			reason += " (tty)"
		}
	case ev.GetTask() != nil:
		t := ev.GetTask()
		id, state, reason = t.GetId(), taskState(t.GetState()), taskReason(t)
	case ev.GetAllocation() != nil:
		a := ev.GetAllocation()
		id, state = a.GetId(), allocState(a.GetState())
		reason = a.GetPendingReason()
		if reason == "" {
			reason = a.GetRevokeReason()
		}
	case ev.GetAgent() != nil:
		a := ev.GetAgent()
		id, state = a.GetId(), agentState(a.GetState())
	case ev.GetVolume() != nil:
		v := ev.GetVolume()
		id, state = v.GetName(), dash(v.GetAgentId())
		reason = fmt.Sprintf("role %s, %s", dash(v.GetRole()), quantity.FormatBytes(v.GetSizeBytes()))
	case ev.GetPolicy() != nil:
		p := ev.GetPolicy()
		id, reason = p.GetName(), oneLine(p.GetLastError())
		if p.GetActive() {
			state = "ACTIVE"
		}
	}
	if ev.GetReason() != "" {
		reason = oneLine(ev.GetReason())
	}
	for _, s := range []*string{&id, &state} {
		if *s == "" {
			*s = "-"
		}
	}
	return strings.TrimRight(fmt.Sprintf("%-6d %-20s %-16s %-9s %s", ev.GetRevision(), eventKind(ev.GetKind()), id, state, reason), " ")
}
