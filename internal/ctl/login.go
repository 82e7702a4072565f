package ctl

import (
	"os"

	"errors"
	"fmt"
	"github.com/dcos-kernel/dcos/internal/pki"
	"strings"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/internal/clientconfig"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

func loginCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "login",
		Usage:     "check a token against a cluster's kernels and write the client config",
		ArgsUsage: "ADDR[,ADDR...] --token TOKEN (--ca-fingerprint sha256:HEX | --ca-cert FILE)",
		Description: `Pin the cluster's CA, check TOKEN with a call (ListAgents) over TLS to the
kernels at ADDR — each HOST[:PORT] or https://HOST:PORT, port 7070 by default;
the first that answers decides — then write them, the token and the CA to the
client config (--config, DCOS_CONFIG, default $XDG_CONFIG_HOME/dcos/config.json,
mode 0600), where every later command finds them. Clients fail over across the
addresses in order.

The CA is pinned by --ca-cert FILE (a kernel's DATA_DIR/pki/ca.crt), or by
--ca-fingerprint sha256:HEX (printed when the cluster was bootstrapped): the
CA the kernel serves is accepted only if its SHA-256 matches (kubeadm join's
--discovery-token-ca-cert-hash). Without either, login refuses. After a
"dcosctl ca rotate", the config's CA follows: commands fetch the new
bundle over a connection the pinned CA verified (at most every 10
minutes; docs/security.md, "Rotating the CA"), so log in again only if
the config was not used during the rotation's overlap.

  dcosctl login 10.0.0.1,10.0.0.2,10.0.0.3 --token "$DCOS_OPERATOR_TOKEN" --ca-fingerprint sha256:3f1c...`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "ca-fingerprint", Usage: "`sha256:HEX` of the cluster's CA: the CA the kernel serves is recorded only if it matches"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("login: want one ADDR[,ADDR...], got %d arguments", c.NArg())
			}
			token := c.String("token")
			if token == "" {
				return usagef("login: --token is required")
			}
			kernels, err := clientconfig.NormalizeKernels(c.Args().First())
			if err != nil {
				return usagef("login: %v", err)
			}
			path := c.String("config")
			if path == "" {
				if path, err = clientconfig.DefaultPath(); err != nil {
					return usagef("login: %v; pass --config", err)
				}
			}
			ca, err := loginCA(c, kernels)
			if err != nil {
				return err
			}
			conf, err := caTLS(string(ca))
			if err != nil {
				return err
			}
			var failed []string
			checked := ""
			for _, addr := range strings.Split(kernels, ",") {
				t := target{baseURL: addr, token: token, tls: conf}
				if c.Bool("trace") {
					t.trace = e.stderr
				}
				_, err := t.kernel().ListAgents(c.Context, connect.NewRequest(&syscallsv1.ListAgentsRequest{}))
				switch connect.CodeOf(err) {
				case connect.CodeUnauthenticated:
					return callError("login: "+addr+": ListAgents", err)
				case connect.CodePermissionDenied:
					return fmt.Errorf("login: %s: this token may not call ListAgents (an agent join token is for \"dcosd agent --token\", not dcosctl)", addr)
				}
				if err != nil {
					failed = append(failed, callError(addr+": ListAgents", err).Error())
					continue
				}
				checked = addr
				break
			}
			if checked == "" {
				return errors.New("login: no kernel answered: " + strings.Join(failed, "; "))
			}
			if err := clientconfig.Save(path, clientconfig.Config{Kernel: kernels, Token: token, CA: string(ca)}); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "dcosctl: token accepted by %s; client config written to %s\n", checked, path)
			return nil
		},
	}
}

// loginCA returns the CA bundle login pins: --ca-cert's, or the CA the
// first kernel of kernels that answers serves whose fingerprint is
// --ca-fingerprint; without either, an error saying how to get one.
func loginCA(c *cli.Context, kernels string) ([]byte, error) {
	if f := c.String("ca-cert"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, usagef("login: --ca-cert: %v", err)
		}
		if _, err := pki.ParseBundle(b); err != nil {
			return nil, usagef("login: --ca-cert %s: %v", f, err)
		}
		return b, nil
	}
	fp := c.String("ca-fingerprint")
	if fp == "" {
		return nil, usagef("login: the cluster's CA is not pinned: pass --ca-fingerprint sha256:HEX or --ca-cert FILE (%s)", clientconfig.FingerprintHint)
	}
	if _, err := clientconfig.ParseFingerprint(fp); err != nil {
		return nil, usagef("login: --ca-fingerprint: %v", err)
	}
	var failed []string
	for _, addr := range strings.Split(kernels, ",") {
		b, err := clientconfig.PinCA(c.Context, addr, fp)
		if err == nil {
			return b, nil
		}
		failed = append(failed, err.Error())
	}
	return nil, fmt.Errorf("login: --ca-fingerprint: %s", strings.Join(failed, "; "))
}
