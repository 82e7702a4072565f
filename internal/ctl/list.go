package ctl

import (
	"strconv"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

func agentsCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "agents",
		Usage: "list the agents the kernel knows",
		Description: `Print one row per agent: id, hostname, state (UP or LOST, with ",DRAINING"
while it is in maintenance: see "dcosctl agent drain"), its subnet for
bridge tasks, cpus, memory and host ports allocated out of the agent's total
(with its host-port range), and labels. -o json prints the ListAgents
response (with each agent's underlay address, and draining and
drainDeadline).`,
		Action: func(c *cli.Context) error {
			f, k, err := listCall(c, e)
			if err != nil {
				return err
			}
			res, err := k.ListAgents(c.Context, connect.NewRequest(&syscallsv1.ListAgentsRequest{}))
			if err != nil {
				return callError("ListAgents", err)
			}
			if f == formatJSON {
				return writeJSON(e.stdout, res.Msg)
			}
			t := newTable(e.stdout, "ID", "HOSTNAME", "STATE", "SUBNET", "CPUS", "MEM", "PORTS", "LABELS")
			for _, a := range res.Msg.GetAgents() {
				ports := "-"
				if r := a.GetHostPorts(); r != "" {
					ports = usedOf(strconv.FormatInt(a.GetAllocated().GetPorts(), 10), strconv.FormatInt(a.GetTotal().GetPorts(), 10)) + "(" + r + ")"
				}
				t.row(a.GetId(), a.GetHostname(), agentStates(a), a.GetSubnet(),
					usedOf(formatCPUs(a.GetAllocated().GetCpus()), formatCPUs(a.GetTotal().GetCpus())),
					usedOf(formatMem(a.GetAllocated()), formatMem(a.GetTotal())),
					ports, formatLabels(a.GetLabels()))
			}
			return t.flush()
		},
	}
}

func allocsCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "allocs",
		Usage: "list live allocations (pending and granted)",
		Description: `Print one row per allocation the caller may see (all of them for operators,
its own for a framework): id, state, agent, cpus, memory, the host ports
reserved for it, role, owner, and why a pending allocation does not fit yet.
-o json prints the ListAllocations response.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "agent", Usage: "only allocations on agent `ID`"},
		},
		Action: func(c *cli.Context) error {
			f, k, err := listCall(c, e)
			if err != nil {
				return err
			}
			res, err := k.ListAllocations(c.Context, connect.NewRequest(&syscallsv1.ListAllocationsRequest{AgentId: c.String("agent")}))
			if err != nil {
				return callError("ListAllocations", err)
			}
			if f == formatJSON {
				return writeJSON(e.stdout, res.Msg)
			}
			t := newTable(e.stdout, "ID", "STATE", "AGENT", "CPUS", "MEM", "HOST_PORTS", "ROLE", "OWNER", "REASON")
			for _, a := range res.Msg.GetAllocations() {
				reason := a.GetPendingReason()
				if reason == "" {
					reason = a.GetRevokeReason()
				}
				t.row(a.GetId(), allocState(a.GetState()), a.GetAgentId(),
					formatCPUs(a.GetResources().GetCpus()), formatMem(a.GetResources()),
					formatHostPorts(a), a.GetRole(), a.GetOwner(), reason)
			}
			return t.flush()
		},
	}
}

func psCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "ps",
		Usage: "list tasks",
		Description: `Print one row per task the caller may see: id, allocation, agent, address
(bridge tasks, once their agent reported it), host ports (NAME:HOST->PORT,
the port the task listens on), state, health ("healthy" or "unhealthy" once
its health check has a result, "-" without one), whether it is ready (its
readiness check passes; without one, RUNNING and not unhealthy), reason or
exit code, pid, age and command line. Tasks that have ended (FINISHED, FAILED, KILLED,
LOST) are shown only with --all. -o json prints the ListTasks response with
the same filter (with each task's network and ports, its checks with their
effective values, and the last health check failure's message); a task's
secret env shows its names with "<redacted>" values, and with
--reveal-secrets the values of the caller's own tasks (an operator's: all)
in revealedSecretEnv.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Aliases: []string{"a"}, Usage: "include tasks that have ended", DisableDefaultText: true},
			&cli.StringFlag{Name: "alloc", Usage: "only tasks of allocation `ID`"},
			&cli.StringFlag{Name: "agent", Usage: "only tasks on agent `ID`"},
			revealSecretsFlag, // secrets.go
		},
		Action: func(c *cli.Context) error {
			f, k, err := listCall(c, e)
			if err != nil {
				return err
			}
			if c.Bool("reveal-secrets") && f != formatJSON {
				return usagef("ps: --reveal-secrets goes with -o json")
			}
			res, err := k.ListTasks(c.Context, connect.NewRequest(&syscallsv1.ListTasksRequest{
				AllocationId:  c.String("alloc"),
				AgentId:       c.String("agent"),
				RevealSecrets: c.Bool("reveal-secrets"),
			}))
			if err != nil {
				return callError("ListTasks", err)
			}
			tasks := res.Msg.GetTasks()
			if !c.Bool("all") {
				live := tasks[:0:0]
				for _, t := range tasks {
					if !terminal(t.GetState()) {
						live = append(live, t)
					}
				}
				tasks = live
			}
			if f == formatJSON {
				return writeTasksJSON(e.stdout, &syscallsv1.ListTasksResponse{Tasks: tasks, Revision: res.Msg.GetRevision()}) // secrets.go
			}
			now := e.now()
			t := newTable(e.stdout, "ID", "ALLOCATION", "AGENT", "IP", "PORTS", "STATE", "HEALTH", "READY", "REASON", "PID", "AGE", "COMMAND")
			for _, task := range tasks {
				pid := ""
				if task.GetPid() != 0 {
					pid = strconv.Itoa(int(task.GetPid()))
				}
				health, ready := taskHealth(task)
				t.row(task.GetId(), task.GetAllocationId(), task.GetAgentId(), task.GetIp(), formatPorts(task.GetPorts()), taskState(task.GetState()),
					health, ready, taskReason(task), pid, formatAge(now, task.GetCreated()),
					formatCommand(task.GetCommand(), task.GetArgs()))
			}
			return t.flush()
		},
	}
}

// terminal reports whether a task in state s has ended for good.
func terminal(s syscallsv1.TaskState) bool {
	switch s {
	case syscallsv1.TaskState_TASK_STATE_FINISHED, syscallsv1.TaskState_TASK_STATE_FAILED,
		syscallsv1.TaskState_TASK_STATE_KILLED, syscallsv1.TaskState_TASK_STATE_LOST:
		return true
	}
	return false
}

// taskHealth is a task's HEALTH and READY cells: "healthy" or
// "unhealthy" once its health check has a result ("" otherwise), and
// "yes" or "no" while it has not ended ("" after).
func taskHealth(t *syscallsv1.Task) (health, ready string) {
	switch t.GetHealth() {
	case syscallsv1.HealthState_HEALTH_STATE_HEALTHY:
		health = "healthy"
	case syscallsv1.HealthState_HEALTH_STATE_UNHEALTHY:
		health = "unhealthy"
	}
	if !terminal(t.GetState()) {
		ready = "no"
		if t.GetReady() {
			ready = "yes"
		}
	}
	return health, ready
}

// taskReason is the kernel's reason, else the exit code of an ended task.
func taskReason(t *syscallsv1.Task) string {
	if t.GetReason() != "" {
		return t.GetReason()
	}
	if terminal(t.GetState()) {
		return "exit " + strconv.Itoa(int(t.GetExitCode()))
	}
	return ""
}

// listCall prepares a command that takes no arguments and prints a
// response: it checks the arguments, then returns the output format and a
// client.
func listCall(c *cli.Context, e *env) (format, syscallsv1connect.KernelClient, error) {
	if err := noArgs(c); err != nil {
		return 0, nil, err
	}
	return formatAndDial(c, e)
}

func noArgs(c *cli.Context) error {
	if c.Args().Present() {
		return usagef("%s takes no arguments, got %q", c.Command.Name, c.Args().First())
	}
	return nil
}
