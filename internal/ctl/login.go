package ctl

import (
	"errors"
	"fmt"
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
		ArgsUsage: "ADDR[,ADDR...] --token TOKEN",
		Description: `Check TOKEN with a call (ListAgents) to the kernels at ADDR — each
HOST[:PORT] or http://HOST:PORT, port 7070 by default; the first that answers
decides — then write them and the token to the client config (--config,
DCOS_CONFIG, default $XDG_CONFIG_HOME/dcos/config.json, mode 0600), where every
later command finds them. Clients fail over across the addresses in order.

  dcosctl login 10.0.0.1,10.0.0.2,10.0.0.3 --token "$DCOS_OPERATOR_TOKEN"`,
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
			var failed []string
			checked := ""
			for _, addr := range strings.Split(kernels, ",") {
				t := target{baseURL: addr, token: token}
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
			if err := clientconfig.Save(path, clientconfig.Config{Kernel: kernels, Token: token}); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "dcosctl: token accepted by %s; client config written to %s\n", checked, path)
			return nil
		},
	}
}
