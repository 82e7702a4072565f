package ctl

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/internal/quantity"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

func policyCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "policy",
		Usage:     "list, load, test and switch allocation policies",
		ArgsUsage: "ls | load | test | use | rollback",
		Description: `An allocation policy is the WebAssembly module (or built-in) that decides
where pending allocations go. "policy ls" lists them; "policy test" dry-runs
a candidate against the live snapshot and changes nothing; "policy load",
"policy use" and "policy rollback" change the active policy (operators only).
Watch the swaps and failures with "dcosctl watch --kind policy".

  dcosctl policy ls
  dcosctl policy test ./spread.wasm
  dcosctl policy load ./spread.wasm
  dcosctl policy rollback`,
		Subcommands: []*cli.Command{
			policyLsCommand(e),
			policyLoadCommand(e),
			policyTestCommand(e),
			policyUseCommand(e),
			policyRollbackCommand(e),
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("unknown policy command %q; see \"dcosctl policy --help\"", c.Args().First())
			}
			return cli.ShowSubcommandHelp(c)
		},
	}
}

func policyLsCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "ls",
		Usage: "list the loaded and built-in policies",
		Description: `Print one row per policy: name, whether it is active (*), whether it is built
in, module size, the first 12 hex digits of its sha256, how long ago it was
loaded, and the last failure that made the kernel fall back from it. -o json
prints the PolicyList response.`,
		Action: func(c *cli.Context) error {
			f, k, err := listCall(c, e)
			if err != nil {
				return err
			}
			res, err := k.PolicyList(c.Context, connect.NewRequest(&syscallsv1.PolicyListRequest{}))
			if err != nil {
				return callError("PolicyList", err)
			}
			if f == formatJSON {
				return writeJSON(e.stdout, res.Msg)
			}
			now := e.now()
			t := newTable(e.stdout, "NAME", "ACTIVE", "BUILTIN", "SIZE", "SHA256", "LOADED", "LAST ERROR")
			for _, p := range res.Msg.GetPolicies() {
				t.row(p.GetName(), yesMark(p.GetActive(), "*"), yesMark(p.GetBuiltin(), "yes"),
					policySize(p), shortSHA(p.GetSha256()), formatAge(now, p.GetLoaded()),
					oneLine(p.GetLastError()))
			}
			return t.flush()
		},
	}
}

func policyLoadCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "load",
		Usage:     "load a WebAssembly policy and make it active (operators only)",
		ArgsUsage: "FILE.wasm",
		Description: `Send FILE.wasm to the kernel, which validates it (ABI marker, exports, a
dry-run cycle on the live snapshot), makes it the active policy and persists
the choice. The policy is named after the file without ".wasm" unless --name
is given; loading under a name already loaded replaces that module. A module
the kernel refuses is not activated, and the kernel's reason is printed.
-o json prints the PolicyLoad response.

  dcosctl policy load ./spread.wasm
  dcosctl policy load build/policy.wasm --name spread-v2`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Usage: "load it under `NAME`", DefaultText: "the file's base name without .wasm"},
		},
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) != 1 {
				return usagef("policy load: want one FILE.wasm, got %d arguments", len(args))
			}
			f, err := outputFormat(c)
			if err != nil {
				return err
			}
			name := c.String("name")
			if !c.IsSet("name") {
				name = strings.TrimSuffix(filepath.Base(args[0]), ".wasm")
			}
			if name == "" {
				return usagef("policy load: no name for %q; pass --name", args[0])
			}
			wasm, err := readModule("policy load", args[0])
			if err != nil {
				return err
			}
			k, err := dial(c, e)
			if err != nil {
				return err
			}
			res, err := k.PolicyLoad(c.Context, connect.NewRequest(&syscallsv1.PolicyLoadRequest{Name: name, Wasm: wasm}))
			if err != nil {
				return callError("PolicyLoad", err)
			}
			if f == formatJSON {
				return writeJSON(e.stdout, res.Msg)
			}
			p := res.Msg.GetPolicy()
			if p.GetName() != "" {
				name = p.GetName()
			}
			_, err = fmt.Fprintf(e.stdout, "loaded %s (sha256 %s, %s) and made it active at revision %d\n",
				name, orDash(shortSHA(p.GetSha256())), orDash(policySize(p)), res.Msg.GetRevision())
			return err
		},
	}
}

func policyTestCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "test",
		Usage:     "dry-run a policy against the live snapshot (operators only)",
		ArgsUsage: "FILE.wasm | --name NAME",
		Description: `Run a candidate policy, FILE.wasm or one already loaded or built in
(--name), on the kernel's live snapshot next to the active policy, and print
how many pending allocations each would place, then a table of the
allocations they place differently ("-" is left pending), the allocations
the candidate would preempt, and the candidate's answers the kernel would
refuse. Nothing changes. -o json prints the PolicyTest response.

  dcosctl policy test ./spread.wasm
  dcosctl policy test --name binpack`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Usage: "test the loaded or built-in policy `NAME` instead of a file"},
		},
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			req := &syscallsv1.PolicyTestRequest{Name: c.String("name")}
			switch {
			case len(args) > 1:
				return usagef("policy test: want one FILE.wasm, got %d arguments", len(args))
			case len(args) == 1 && c.IsSet("name"):
				return usagef("policy test: give FILE.wasm or --name, not both")
			case len(args) == 0 && req.Name == "":
				return usagef("policy test: want FILE.wasm or --name NAME")
			}
			f, err := outputFormat(c)
			if err != nil {
				return err
			}
			if len(args) == 1 {
				if req.Wasm, err = readModule("policy test", args[0]); err != nil {
					return err
				}
			}
			k, err := dial(c, e)
			if err != nil {
				return err
			}
			res, err := k.PolicyTest(c.Context, connect.NewRequest(req))
			if err != nil {
				return callError("PolicyTest", err)
			}
			if f == formatJSON {
				return writeJSON(e.stdout, res.Msg)
			}
			return writePolicyTest(e.stdout, res.Msg)
		},
	}
}

// writePolicyTest prints a PolicyTest result for people.
func writePolicyTest(w io.Writer, r *syscallsv1.PolicyTestResponse) error {
	if _, err := fmt.Fprintf(w, "active %s placed %d of %d pending; candidate placed %d\n",
		orDash(r.GetActivePolicy()), r.GetActivePlaced(), r.GetPending(), r.GetCandidatePlaced()); err != nil {
		return err
	}
	if diffs := r.GetDiffs(); len(diffs) == 0 {
		fmt.Fprintln(w, "no placement differs")
	} else {
		fmt.Fprintln(w)
		t := newTable(w, "ALLOCATION", "ACTIVE AGENT", "CANDIDATE AGENT")
		for _, d := range diffs {
			t.row(d.GetAllocationId(), d.GetActiveAgentId(), d.GetCandidateAgentId())
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if p := r.GetCandidatePreemptions(); len(p) > 0 {
		fmt.Fprintf(w, "\nthe candidate would preempt %d:\n", len(p))
		for _, id := range p {
			fmt.Fprintf(w, "  %s\n", id)
		}
	}
	if rej := r.GetRejected(); len(rej) > 0 {
		fmt.Fprintf(w, "\nthe kernel would refuse %d of the candidate's answers:\n", len(rej))
		for _, s := range rej {
			fmt.Fprintf(w, "  %s\n", oneLine(s))
		}
	}
	return nil
}

func policyUseCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "use",
		Usage:     "make a loaded or built-in policy active (operators only)",
		ArgsUsage: "NAME",
		Description: `Make NAME, a policy already loaded or built in (see "dcosctl policy ls"),
the active policy, and print it with the revision of the change. The policy
active until now is kept for "dcosctl policy rollback". -o json prints the
PolicyUse response.`,
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) != 1 {
				return usagef("policy use: want one NAME, got %d arguments", len(args))
			}
			if args[0] == "" {
				return usagef("policy use: want one NAME, got an empty one")
			}
			f, k, err := formatAndDial(c, e)
			if err != nil {
				return err
			}
			res, err := k.PolicyUse(c.Context, connect.NewRequest(&syscallsv1.PolicyUseRequest{Name: args[0]}))
			if err != nil {
				return callError("PolicyUse", err)
			}
			if f == formatJSON {
				return writeJSON(e.stdout, res.Msg)
			}
			return writeActive(e.stdout, res.Msg.GetPolicy(), args[0], res.Msg.GetRevision())
		},
	}
}

func policyRollbackCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "rollback",
		Usage: "re-activate the previously active policy (operators only)",
		Description: `Make the policy that was active before the last load or use active again, and
print it with the revision of the change. -o json prints the PolicyRollback
response.`,
		Action: func(c *cli.Context) error {
			f, k, err := listCall(c, e)
			if err != nil {
				return err
			}
			res, err := k.PolicyRollback(c.Context, connect.NewRequest(&syscallsv1.PolicyRollbackRequest{}))
			if err != nil {
				return callError("PolicyRollback", err)
			}
			if f == formatJSON {
				return writeJSON(e.stdout, res.Msg)
			}
			return writeActive(e.stdout, res.Msg.GetPolicy(), "", res.Msg.GetRevision())
		},
	}
}

// writeActive prints the policy a use or rollback made active; name is the
// one asked for, used when the kernel's answer has none.
func writeActive(w io.Writer, p *syscallsv1.PolicyInfo, name string, rev int64) error {
	if p.GetName() != "" {
		name = p.GetName()
	}
	_, err := fmt.Fprintf(w, "active policy is now %s (sha256 %s, %s) at revision %d\n",
		orDash(name), orDash(shortSHA(p.GetSha256())), orDash(policySize(p)), rev)
	return err
}

// readModule reads a policy module for op; a file that cannot be read or is
// empty is a usage error, so nothing is sent.
func readModule(op, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("%s: %v", op, err)
	}
	if len(b) == 0 {
		return nil, usagef("%s: %s is empty", op, path)
	}
	return b, nil
}

// shortSHA is the first 12 hex digits of a digest, as git abbreviates.
func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// policySize is the module size, or "" for a policy with no module
// (native first-fit).
func policySize(p *syscallsv1.PolicyInfo) string {
	if p.GetSizeBytes() == 0 {
		return ""
	}
	return quantity.FormatBytes(p.GetSizeBytes())
}

func yesMark(b bool, mark string) string {
	if b {
		return mark
	}
	return ""
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
