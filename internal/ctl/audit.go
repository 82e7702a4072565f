package ctl

import (
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/timestamppb"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// auditFollowEvery is how often "dcosctl audit -f" asks for new records.
var auditFollowEvery = 500 * time.Millisecond

// auditPage is how many records one AuditList call asks for.
const auditPage = 1000

func auditCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "list the audit trail: mutating and refused syscalls (operators only)",
		Description: `Print one row per audit record, oldest first: when, who (principal), which
call, the ids it named or made, and its result code ("ok" or the error's
code). Every mutating syscall and every refused one is recorded, in the same
store transaction as the change it describes (docs/security.md, "Audit").

--since takes a duration (10m: the last ten minutes) or an RFC 3339 time;
--principal and --call keep only the records of that principal or call.
-f follows the trail, printing new records as they are written. -o json
prints the AuditList response with every record (one JSON record per line
with -f).

--verify reads the whole trail and recomputes its hash chain from its
anchor: it prints "audit trail verified: N records, seq A–B" and the head
hash (keep it elsewhere to detect a truncated trail later), or names the
first record that was altered, removed or inserted, and exits non-zero.

  dcosctl audit --since 1h --principal spark
  dcosctl audit --call Launch -f
  dcosctl audit --verify`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "since", Usage: "only records since `WHEN`: a duration back from now (10m) or an RFC 3339 time"},
			&cli.StringFlag{Name: "principal", Usage: "only the records of principal `NAME`"},
			&cli.StringFlag{Name: "call", Usage: "only the records of syscall `NAME`, e.g. Launch"},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "print new records as they are written", DisableDefaultText: true},
			&cli.BoolFlag{Name: "verify", Usage: "verify the trail's hash chain instead of listing it", DisableDefaultText: true},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			req := &syscallsv1.AuditListRequest{Principal: c.String("principal"), Call: c.String("call"), Limit: auditPage}
			if s := c.String("since"); s != "" {
				t, err := parseSince(s, e.now())
				if err != nil {
					return err
				}
				req.Since = timestamppb.New(t)
			}
			if c.Bool("verify") && (c.Bool("follow") || req.Since != nil || req.Principal != "" || req.Call != "") {
				return usagef("audit: --verify reads the whole trail: it takes no --since, --principal, --call or -f")
			}
			f, k, err := formatAndDial(c, e)
			if err != nil {
				return err
			}
			if c.Bool("verify") {
				return auditVerify(c, e, k)
			}
			return auditList(c, e, k, f, req)
		},
	}
}

// parseSince reads --since: a duration before now, or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, usagef("--since: %s is negative", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, usagef("--since: %q is neither a duration (10m) nor an RFC 3339 time (2026-01-02T15:04:05Z)", s)
	}
	return t, nil
}

// auditList prints the records req selects, page after page, then with
// -f polls for new ones until the command is interrupted.
func auditList(c *cli.Context, e *env, k syscallsv1connect.KernelClient, f format, req *syscallsv1.AuditListRequest) error {
	follow := c.Bool("follow")
	var all *syscallsv1.AuditListResponse
	if f == formatJSON && !follow {
		all = &syscallsv1.AuditListResponse{}
	}
	var t *table
	if f == formatTable {
		t = newTable(e.stdout, "TIME", "PRINCIPAL", "CALL", "TARGETS", "CODE")
	}
	for {
		res, err := k.AuditList(c.Context, connect.NewRequest(req))
		if err != nil {
			if follow && c.Context.Err() != nil {
				return nil
			}
			return callError("AuditList", err)
		}
		for _, r := range res.Msg.GetRecords() {
			switch {
			case all != nil:
				all.Records = append(all.Records, r)
			case f == formatJSON:
				if err := writeJSONLine(e.stdout, r); err != nil {
					return err
				}
			default:
				t.row(r.GetTime().AsTime().Local().Format(time.RFC3339), dash(r.GetPrincipal()), r.GetCall(), dash(strings.Join(r.GetTargets(), ",")), r.GetCode())
			}
		}
		req.AfterSeq = res.Msg.GetLastSeq()
		if all != nil {
			all.LastSeq, all.Anchor = res.Msg.GetLastSeq(), res.Msg.GetAnchor()
		}
		if res.Msg.GetMore() {
			continue
		}
		if t != nil {
			if err := t.flush(); err != nil {
				return err
			}
		}
		if !follow {
			if all != nil {
				return writeJSON(e.stdout, all)
			}
			return nil
		}
		select {
		case <-c.Context.Done():
			return nil
		case <-time.After(auditFollowEvery):
		}
		if t != nil {
			t = newTable(e.stdout) // no header again: rows only
		}
	}
}

// auditVerify reads the whole trail and checks its chain.
func auditVerify(c *cli.Context, e *env, k syscallsv1connect.KernelClient) error {
	var (
		recs   []*syscallsv1.AuditRecord
		anchor *syscallsv1.AuditAnchor
		after  uint64
	)
	for {
		res, err := k.AuditList(c.Context, connect.NewRequest(&syscallsv1.AuditListRequest{AfterSeq: after, Limit: auditPage}))
		if err != nil {
			return callError("AuditList", err)
		}
		if after == 0 {
			anchor = res.Msg.GetAnchor()
		}
		recs = append(recs, res.Msg.GetRecords()...)
		after = res.Msg.GetLastSeq()
		if !res.Msg.GetMore() {
			break
		}
	}
	sum, err := VerifyAuditChain(anchor, recs)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if sum.Records == 0 {
		_, err = fmt.Fprintf(e.stdout, "audit trail verified: 0 records (anchor seq %d)\n", anchor.GetSeq())
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "audit trail verified: %d records, seq %d–%d; head hash %x\n", sum.Records, sum.First, sum.Last, sum.Head)
	return err
}
