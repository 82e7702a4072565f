package ctl

import (
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

func kernelsCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "kernels",
		Usage: "list the cluster's kernels and which one leads",
		Description: `Print one row per kernel process of the cluster (every kernel lists itself
in the store while it runs): its URL, its role (leader or standby) and since
when (a leader: since it took the lead). Any kernel answers, leading or not.
-o json prints the ClusterInfo response. See docs/operations.md.`,
		Action: func(c *cli.Context) error {
			f, k, err := listCall(c, e)
			if err != nil {
				return err
			}
			res, err := k.ClusterInfo(c.Context, connect.NewRequest(&syscallsv1.ClusterInfoRequest{}))
			if err != nil {
				return callError("ClusterInfo", err)
			}
			if f == formatJSON {
				return writeJSON(e.stdout, res.Msg)
			}
			t := newTable(e.stdout, "URL", "ROLE", "SINCE")
			for _, kn := range res.Msg.GetKernels() {
				role := "standby"
				if kn.GetLeader() {
					role = "leader"
				}
				since := "-"
				if kn.GetSince() != nil {
					since = kn.GetSince().AsTime().UTC().Format(time.RFC3339)
				}
				t.row(kn.GetUrl(), role, since)
			}
			return t.flush()
		},
	}
}
