package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/internal/atomicfile"
	"github.com/dcos-kernel/dcos/internal/pki"
	"github.com/dcos-kernel/dcos/internal/seal"
)

// caCommand is `dcosd ca`: the cluster CA's offline commands, run on an
// admin host before the cluster exists (the etcd members need their
// certificates before any kernel starts).
func caCommand() *cli.Command {
	dirFlags := append([]cli.Flag{
		&cli.StringFlag{Name: "data-dir", Value: defaultDataDir(), Usage: "directory of the KEK (kek) and the CA (pki)"},
	}, kekFlags...)
	return &cli.Command{
		Name:  "ca",
		Usage: "create the cluster CA and issue etcd certificates from it, offline (docs/operations.md)",
		Subcommands: []*cli.Command{
			{
				Name:      "init",
				Usage:     "create the cluster's KEK (DATA_DIR/kek, unless it exists) and its CA (DATA_DIR/pki); refuses to replace a CA",
				ArgsUsage: " ",
				Flags:     dirFlags,
				Action:    caInit,
			},
			{
				Name:      "issue",
				Usage:     "issue a certificate from the cluster CA: OUT/NAME.crt, OUT/NAME.key (0600) and OUT/ca.crt, e.g. for an etcd member (--server --client --peer)",
				ArgsUsage: " ",
				Flags: append(append([]cli.Flag{}, dirFlags...),
					&cli.StringFlag{Name: "name", Required: true, Usage: "the holder's name: the certificate's common name, its identity (dcos://etcd/NAME, or dcos://client/NAME for a client-only certificate) and the files' names"},
					&cli.StringSliceFlag{Name: "dns", Usage: "a DNS name the holder serves at (repeatable; an IP address given here counts as an --ip)"},
					&cli.StringSliceFlag{Name: "ip", Usage: "an IP address the holder serves at (repeatable)"},
					&cli.BoolFlag{Name: "server", Usage: "usable as a server certificate (TLS server auth)"},
					&cli.BoolFlag{Name: "client", Usage: "usable as a client certificate (TLS client auth)"},
					&cli.BoolFlag{Name: "peer", Usage: "an etcd peer certificate: server and client (peers present theirs both ways)"},
					&cli.StringFlag{Name: "out", Required: true, Usage: "directory to write the files to (created 0700)"},
					&cli.DurationFlag{Name: "validity", Value: 365 * 24 * time.Hour, Usage: "lifetime (never past the CA's expiry)"},
				),
				Action: caIssue,
			},
			{
				Name:      "show",
				Usage:     "print the trust bundle's CAs: fingerprint, subject, validity (the first is the active CA)",
				ArgsUsage: " ",
				Flags: append(append([]cli.Flag{}, dirFlags...),
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: "output `FORMAT`: table or json"},
				),
				Action: caShow,
			},
		},
	}
}

// caFingerprint is how dcos prints a CA's fingerprint.
func caFingerprint(c interface{ ID() string }) string { return "sha256:" + c.ID() }

func caInit(c *cli.Context) error {
	dataDir := c.String("data-dir")
	dir := pkiDir(c, dataDir)
	if _, err := os.Stat(filepath.Join(dir, pki.BundleFile)); err == nil {
		return fmt.Errorf("ca init: %s already holds a CA (dcosd ca show lists it); remove it first to start a new cluster", dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ca init: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("ca init: %w", err)
	}
	kek := kekPath(c, dataDir)
	kr, created, err := seal.LoadOrCreate(kek)
	if err != nil {
		return fmt.Errorf("ca init: --kek-file: %w", err)
	}
	ca, _, _, err := pki.LoadOrCreateLocal(dir, kr, time.Now())
	if err != nil {
		return fmt.Errorf("ca init: %w", err)
	}
	w := c.App.Writer
	if created {
		fmt.Fprintf(w, "key-encryption key: %s (created; every kernel host needs a copy, mode 0600)\n", kek)
	} else {
		fmt.Fprintf(w, "key-encryption key: %s (existing)\n", kek)
	}
	fmt.Fprintf(w, "cluster CA: %s (valid until %s)\nCA fingerprint: %s\n", dir, ca.Cert.NotAfter.UTC().Format(time.RFC3339), caFingerprint(ca))
	return nil
}

func caIssue(c *cli.Context) error {
	dataDir := c.String("data-dir")
	name := c.String("name")
	if name == "" || strings.ContainsAny(name, "/\\") || name == "." || name == ".." || name == "ca" {
		return fmt.Errorf("ca issue: --name %q: want a name usable as a file name (not \"ca\")", name)
	}
	server, client := c.Bool("server") || c.Bool("peer"), c.Bool("client") || c.Bool("peer")
	if !server && !client {
		return errors.New("ca issue: give --server, --client or --peer (the certificate's usages)")
	}
	if c.Duration("validity") <= 0 {
		return fmt.Errorf("ca issue: --validity %v: want a positive duration such as 8760h", c.Duration("validity"))
	}
	leaf := pki.Leaf{CommonName: name, Server: server, Client: client, Validity: c.Duration("validity")}
	for _, d := range c.StringSlice("dns") {
		if ip := net.ParseIP(d); ip != nil {
			leaf.IPs = append(leaf.IPs, ip)
		} else {
			leaf.DNSNames = append(leaf.DNSNames, d)
		}
	}
	for _, s := range c.StringSlice("ip") {
		ip := net.ParseIP(s)
		if ip == nil {
			return fmt.Errorf("ca issue: --ip %q: not an IP address", s)
		}
		leaf.IPs = append(leaf.IPs, ip)
	}
	if server && len(leaf.DNSNames)+len(leaf.IPs) == 0 {
		return errors.New("ca issue: a server certificate needs the names it is reached at: give --dns or --ip")
	}
	if server {
		leaf.Identity = pki.IdentityURI(pki.RoleEtcd, name)
	} else {
		leaf.Identity = pki.IdentityURI(pki.RoleClient, name)
	}
	kr, err := seal.LoadKeyring(kekPath(c, dataDir))
	if err != nil {
		return fmt.Errorf("ca issue: --kek-file: %w", err)
	}
	ca, bundle, err := pki.LoadLocal(pkiDir(c, dataDir), kr)
	if err != nil {
		return fmt.Errorf("ca issue: %w (dcosd ca init creates the CA)", err)
	}
	kp, certPEM, keyPEM, err := ca.Issue(leaf, time.Now())
	if err != nil {
		return fmt.Errorf("ca issue: %w", err)
	}
	out := c.String("out")
	if err := os.MkdirAll(out, 0o700); err != nil {
		return fmt.Errorf("ca issue: --out: %w", err)
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{name + ".key", keyPEM}, {name + ".crt", certPEM}, {"ca.crt", bundle.PEM()}} {
		if err := atomicfile.WriteDurable(filepath.Join(out, f.name), f.b); err != nil {
			return fmt.Errorf("ca issue: %w", err)
		}
	}
	fmt.Fprintf(c.App.Writer, "%s: %s, %s and ca.crt in %s (valid until %s)\n", name, name+".crt", name+".key", out, kp.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// caShowRow is one CA of `dcosd ca show -o json`.
type caShowRow struct {
	Fingerprint string    `json:"fingerprint"`
	Subject     string    `json:"subject"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	Active      bool      `json:"active"`
}

func caShow(c *cli.Context) error {
	if o := c.String("output"); o != "table" && o != "json" {
		return fmt.Errorf("ca show: --output %q: want table or json", o)
	}
	path := filepath.Join(pkiDir(c, c.String("data-dir")), pki.BundleFile)
	bundle, err := readBundle(path)
	if err != nil {
		return fmt.Errorf("ca show: %w", err)
	}
	rows := make([]caShowRow, len(bundle))
	for i, ca := range bundle {
		rows[i] = caShowRow{Fingerprint: "sha256:" + pki.Fingerprint(ca), Subject: ca.Subject.CommonName,
			NotBefore: ca.NotBefore.UTC(), NotAfter: ca.NotAfter.UTC(), Active: i == 0}
	}
	if c.String("output") == "json" {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FINGERPRINT\tSUBJECT\tNOT-BEFORE\tNOT-AFTER\tACTIVE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", r.Fingerprint, r.Subject, r.NotBefore.Format(time.RFC3339), r.NotAfter.Format(time.RFC3339), r.Active)
	}
	return tw.Flush()
}
