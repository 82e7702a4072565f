package ctl

import (
	"strconv"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

func pluginCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "plugin",
		Usage: "inspect the agents' plugins (task drivers, isolators)",
		Subcommands: []*cli.Command{
			{
				Name:  "ls",
				Usage: "list each agent's plugins, versions and health",
				Description: `Print one row per plugin per agent, as the agent last reported it: agent,
kind, name, whether it is built into dcosd, the plugin protocol version in
use, health (healthy, restarting, refused, stopped), restarts and the last
error. -o json prints the agents' plugin lists.`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "agent", Usage: "only agent `ID`"},
				},
				Action: func(c *cli.Context) error {
					f, k, err := listCall(c, e)
					if err != nil {
						return err
					}
					res, err := k.ListAgents(c.Context, connect.NewRequest(&syscallsv1.ListAgentsRequest{}))
					if err != nil {
						return callError("ListAgents", err)
					}
					var agents []*syscallsv1.Agent
					for _, a := range res.Msg.GetAgents() {
						if c.String("agent") == "" || a.GetId() == c.String("agent") {
							agents = append(agents, &syscallsv1.Agent{Id: a.GetId(), Hostname: a.GetHostname(), State: a.GetState(), Plugins: a.GetPlugins()})
						}
					}
					if f == formatJSON {
						return writeJSON(e.stdout, &syscallsv1.ListAgentsResponse{Agents: agents, Revision: res.Msg.GetRevision()})
					}
					t := newTable(e.stdout, "AGENT", "KIND", "NAME", "BUILTIN", "PROTOCOL", "HEALTH", "RESTARTS", "ERROR")
					for _, a := range agents {
						for _, p := range a.GetPlugins() {
							builtin := "no"
							if p.GetBuiltin() {
								builtin = "yes"
							}
							t.row(a.GetId(), p.GetKind(), p.GetName(), builtin, strconv.Itoa(int(p.GetProtocol())),
								p.GetHealth(), strconv.Itoa(int(p.GetRestarts())), p.GetLastError())
						}
					}
					return t.flush()
				},
			},
		},
	}
}
