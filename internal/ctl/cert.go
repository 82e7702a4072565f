package ctl

import (
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

func certCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "cert",
		Usage: "list the cluster's certificates and when they expire (operators only)",
		Description: `The cluster CA issues short-lived certificates to kernels and agents
(--cert-validity, renewed two thirds into their life) and signs with one CA
at a time; "dcosctl ca rotate" replaces it (docs/security.md).`,
		Subcommands: []*cli.Command{certLsCommand(e)},
	}
}

func certLsCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "ls",
		Usage: "list the CAs and the latest certificate of each kernel and principal",
		Description: `Print one row per certificate: kind (ca, kernel, agent, framework,
operator), name, status (a CA: active, retiring until the overlap ends, or
trusted; others: valid or expired), when it expires, its issuer's
fingerprint and its own (both shortened to 12 hex digits). -o json prints
the CertList response, with whole fingerprints and times.`,
		Action: func(c *cli.Context) error {
			f, k, err := listCall(c, e)
			if err != nil {
				return err
			}
			res, err := k.CertList(c.Context, connect.NewRequest(&syscallsv1.CertListRequest{}))
			if err != nil {
				return callError("CertList", err)
			}
			if f == formatJSON {
				return writeJSON(e.stdout, res.Msg)
			}
			now := e.now()
			t := newTable(e.stdout, "KIND", "NAME", "STATUS", "EXPIRES", "ISSUER", "FINGERPRINT")
			for _, ci := range res.Msg.GetCerts() {
				status := ci.GetStatus()
				if ci.GetRetireAt() != nil {
					status += " (" + formatExpiry(now, ci.GetRetireAt()) + ")"
				}
				t.row(ci.GetKind(), ci.GetName(), status, formatExpiry(now, ci.GetNotAfter()), short(ci.GetIssuer()), short(ci.GetFingerprint()))
			}
			return t.flush()
		},
	}
}

// short is a fingerprint's first 12 hex digits ("-" when empty).
func short(fp string) string {
	if len(fp) > 12 {
		return fp[:12]
	}
	return dash(fp)
}

func caCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:        "ca",
		Usage:       "rotate the cluster CA (operators only)",
		Subcommands: []*cli.Command{caRotateCommand(e)},
	}
}

func caRotateCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "rotate",
		Usage: "replace the cluster CA, trusting the old one for an overlap",
		Description: `Make a new cluster CA the one that signs, at once. Kernels serve
certificates of the new CA; agents notice within seconds and renew theirs.
Until the overlap ends the trust bundle holds both CAs and every chain the
kernels serve carries the new CA cross-signed by the old, so clients that
trust only the old CA keep working; then the old CA is retired. Clients
that pinned the old CA must fetch the new bundle before then: dcosctl
does it for its client config at once after this command and, on any
command, at most every 10 minutes (the bundle comes over a connection
the pinned CA verified; a config not used during the overlap needs
"dcosctl login" again, with the new fingerprint "dcosctl cert ls"
shows); frameworks whose trust comes from $DCOS_CA_FILE follow the file
their agent rewrites; other clients read ClusterInfo's ca_bundle. Prints
the new CA and when the old one retires; -o json prints the CARotate
response.

  dcosctl ca rotate --overlap 24h`,
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "overlap", Value: time.Hour, Usage: "how long the old CA stays trusted (at least 10s)"},
			&cli.DurationFlag{Name: "validity", Usage: "the new CA's lifetime (default 10 years)"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			f, err := outputFormat(c)
			if err != nil {
				return err
			}
			t, err := resolveTarget(c, e)
			if err != nil {
				return err
			}
			k := t.kernel()
			req := &syscallsv1.CARotateRequest{Overlap: durationpb.New(c.Duration("overlap"))}
			if d := c.Duration("validity"); d > 0 {
				req.Validity = durationpb.New(d)
			}
			res, err := k.CARotate(c.Context, connect.NewRequest(req))
			if err != nil {
				return callError("CARotate", err)
			}
			// The client config's CA follows at once (cafollow.go).
			t.followCA(c.Context, e, true)
			if f == formatJSON {
				return writeJSON(e.stdout, res.Msg)
			}
			_, err = fmt.Fprintf(e.stdout, "cluster CA rotated: sha256:%s signs now; sha256:%s stays trusted until %s\n",
				res.Msg.GetCa().GetFingerprint(), res.Msg.GetPrevious().GetFingerprint(), res.Msg.GetRetireAt().AsTime().Local().Format(time.RFC3339))
			return err
		},
	}
}
