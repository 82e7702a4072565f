package ctl

import (
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

func tokenCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "token",
		Usage: "create, list and revoke the cluster's tokens (operators only)",
		Description: `Tokens are kept in the cluster's store as SHA-256 digests: a token's secret is
shown once, when it is created. Every kernel accepts a new token, and refuses
a revoked one, within a second. Tokens of a kernel's tokens file (--tokens)
are listed too (CREATED-BY tokens-file) and are revoked by editing the file.`,
		Subcommands: []*cli.Command{tokenCreateCommand(e), tokenLsCommand(e), tokenRevokeCommand(e)},
	}
}

func tokenCreateCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "create",
		Usage: "create a token and print its secret (shown once)",
		Description: `Create a token for principal --name with --role: operator (may do
anything), framework (allocates and sees what it owns), agent (runs one
agent) or agent-join (may only trade itself for an agent's own token: give
it to "dcosd agent --token"). Tokens with the same name act as the same
principal. --ttl makes it expire. The secret is printed on stdout, alone, so
that it can be captured; -o json prints the TokenCreate response.

  dcosctl token create --role framework --name spark
  dcosctl token create --role agent-join --name rack-7 --ttl 24h`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "role", Usage: "`ROLE`: operator, framework, agent or agent-join (required)"},
			&cli.StringFlag{Name: "name", Usage: "principal `NAME` the token acts as (required)"},
			&cli.DurationFlag{Name: "ttl", Usage: "expire after `DURATION`, e.g. 24h (0: never)"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			switch {
			case c.String("role") == "":
				return usagef("token create: --role is required (operator, framework, agent or agent-join)")
			case c.String("name") == "":
				return usagef("token create: --name is required")
			case c.Duration("ttl") < 0:
				return usagef("token create: --ttl %s is negative", c.Duration("ttl"))
			}
			f, k, err := formatAndDial(c, e)
			if err != nil {
				return err
			}
			req := &syscallsv1.TokenCreateRequest{Role: c.String("role"), Name: c.String("name")}
			if d := c.Duration("ttl"); d > 0 {
				req.Ttl = durationpb.New(d)
			}
			res, err := k.TokenCreate(c.Context, connect.NewRequest(req))
			if err != nil {
				return callError("TokenCreate", err)
			}
			if f == formatJSON {
				return writeJSON(e.stdout, res.Msg)
			}
			info := res.Msg.GetInfo()
			fmt.Fprintf(e.stderr, "dcosctl: token %s (%s %s) created; its secret below is shown this once\n", info.GetId(), info.GetRole(), info.GetName())
			_, err = fmt.Fprintln(e.stdout, res.Msg.GetToken())
			return err
		},
	}
}

func tokenLsCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "ls",
		Usage: "list the tokens (never their secrets)",
		Description: `Print one row per token: id (the first 12 hex digits of its SHA-256
digest, what "token revoke" takes), name, role, age, when it expires (-:
never) and who created it. -o json prints the TokenList response.`,
		Action: func(c *cli.Context) error {
			f, k, err := listCall(c, e)
			if err != nil {
				return err
			}
			res, err := k.TokenList(c.Context, connect.NewRequest(&syscallsv1.TokenListRequest{}))
			if err != nil {
				return callError("TokenList", err)
			}
			if f == formatJSON {
				return writeJSON(e.stdout, res.Msg)
			}
			now := e.now()
			t := newTable(e.stdout, "ID", "NAME", "ROLE", "CREATED", "EXPIRES", "CREATED-BY")
			for _, i := range res.Msg.GetTokens() {
				t.row(i.GetId(), i.GetName(), i.GetRole(), dash(formatAge(now, i.GetCreated())), formatExpiry(now, i.GetExpires()), dash(i.GetCreatedBy()))
			}
			return t.flush()
		},
	}
}

// formatExpiry prints when ts comes: "in 5h", "expired", or "-" (never).
func formatExpiry(now time.Time, ts *timestamppb.Timestamp) string {
	switch {
	case ts == nil:
		return "-"
	case !now.Before(ts.AsTime()):
		return "expired"
	}
	return "in " + formatAge(ts.AsTime(), timestamppb.New(now))
}

func tokenRevokeCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "revoke",
		Usage:     "revoke a token by id, or every token of a name",
		ArgsUsage: "ID | --name NAME",
		Description: `Delete token ID (as "token ls" shows it) or, with --name, every token of
principal NAME from the cluster's store: every kernel refuses them within a
second. Calls already under way finish. A token of a tokens file is revoked
by removing it from the file. Prints the revoked tokens; -o json prints the
TokenRevoke response.

  dcosctl token revoke 3f2a9c0b81de
  dcosctl token revoke --name spark`,
		Flags: []cli.Flag{&cli.StringFlag{Name: "name", Usage: "revoke every token of principal `NAME`"}},
		Action: func(c *cli.Context) error {
			req := &syscallsv1.TokenRevokeRequest{Name: c.String("name")}
			switch {
			case c.NArg() > 1:
				return usagef("token revoke: want one ID or --name NAME, got %d arguments", c.NArg())
			case c.NArg() == 1 && req.Name != "":
				return usagef("token revoke: want an ID or --name NAME, not both")
			case c.NArg() == 0 && req.Name == "":
				return usagef("token revoke: want an ID or --name NAME")
			}
			req.Id = c.Args().First()
			f, k, err := formatAndDial(c, e)
			if err != nil {
				return err
			}
			res, err := k.TokenRevoke(c.Context, connect.NewRequest(req))
			if err != nil {
				return callError("TokenRevoke", err)
			}
			if f == formatJSON {
				return writeJSON(e.stdout, res.Msg)
			}
			t := newTable(e.stdout, "REVOKED", "NAME", "ROLE")
			for _, i := range res.Msg.GetRevoked() {
				t.row(i.GetId(), i.GetName(), i.GetRole())
			}
			return t.flush()
		},
	}
}
