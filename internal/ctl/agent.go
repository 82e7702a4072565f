package ctl

import (
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// agentCommand is "dcosctl agent": an agent's maintenance (AgentDrain).
func agentCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "agent",
		Usage: "put an agent in maintenance (drain) or take it out (undrain)",
		Subcommands: []*cli.Command{
			{
				Name:      "drain",
				Usage:     "stop placing on an agent and let frameworks move their work off it",
				ArgsUsage: "ID",
				Description: `Start the maintenance of agent ID (operators only; see docs/maintenance.md).
The agent gets no new placements; frameworks get an AGENT_DRAINING event
and move their work elsewhere (the init replaces its instances first,
respecting each service's minimumHealthCapacity). With --deadline, every
allocation still on the agent when it passes is revoked with reason
"drained"; without one, nothing is taken back by force. The agent stays
draining (across restarts) until "dcosctl agent undrain ID". Draining a
draining agent again sets its deadline anew (from now; none without
--deadline).

Prints the agent, its state (UP,DRAINING) and its deadline; -o json prints
the AgentDrain response.

  dcosctl agent drain agent-3 --deadline 1h
  dcosctl allocs --agent agent-3     # what is still there`,
				Flags: []cli.Flag{
					&cli.DurationFlag{Name: "deadline", Usage: "revoke what is left on the agent after `DURATION` (e.g. 30m, 1h); 0 or unset: no deadline"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usagef("agent drain: want one agent ID")
					}
					req := &syscallsv1.AgentDrainRequest{AgentId: c.Args().First()}
					switch d := c.Duration("deadline"); {
					case d < 0:
						return usagef("agent drain: --deadline %v: want a duration >= 0, e.g. 1h", d)
					case d > 0:
						req.Deadline = durationpb.New(d)
					}
					return agentDrain(c, e, req)
				},
			},
			{
				Name:      "undrain",
				Usage:     "end an agent's maintenance: it takes placements again",
				ArgsUsage: "ID",
				Description: `End the maintenance of agent ID (operators only): it takes new placements
again and frameworks get an AGENT_UNDRAINED event. Nothing that moved away
moves back. Undraining an agent that is not draining is not an error.`,
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usagef("agent undrain: want one agent ID")
					}
					return agentDrain(c, e, &syscallsv1.AgentDrainRequest{AgentId: c.Args().First(), Undrain: true})
				},
			},
		},
	}
}

func agentDrain(c *cli.Context, e *env, req *syscallsv1.AgentDrainRequest) error {
	f, k, err := formatAndDial(c, e)
	if err != nil {
		return err
	}
	res, err := k.AgentDrain(c.Context, connect.NewRequest(req))
	if err != nil {
		return callError("AgentDrain", err)
	}
	if f == formatJSON {
		return writeJSON(e.stdout, res.Msg)
	}
	a := res.Msg.GetAgent()
	t := newTable(e.stdout, "ID", "STATE", "DEADLINE")
	t.row(a.GetId(), agentStates(a), drainDeadline(a))
	return t.flush()
}

// agentStates is an agent's state, with ",DRAINING" while it drains (as
// kubectl shows "Ready,SchedulingDisabled").
func agentStates(a *syscallsv1.Agent) string {
	s := agentState(a.GetState())
	if a.GetDraining() {
		s += ",DRAINING"
	}
	return s
}

// drainDeadline is when a draining agent's allocations are revoked, "-"
// for none.
func drainDeadline(a *syscallsv1.Agent) string {
	if !a.GetDraining() || a.GetDrainDeadline() == nil {
		return "-"
	}
	return a.GetDrainDeadline().AsTime().UTC().Format(time.RFC3339)
}
