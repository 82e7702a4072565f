package ctl

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/internal/quantity"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

func roleCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "role",
		Usage:     "list roles and set their weights, quotas, CPU classes and cpusets",
		ArgsUsage: "ls | set",
		Description: `A role's weight is its share under the DRF policy (1 unless set); its quota
caps what its granted allocations may hold, whatever the policy decides: a
request its quota holds stays pending with a reason like
"role capped: quota cpus=2 reached". Its CPU class (normal unless set) is
how the CPU scheduler treats its tasks: idle tasks run on CPU time that
normal ones leave, so services keep their latency beside batch work. Its
cpuset (every CPU unless set) is the CPUs its tasks may run on, e.g. batch
on 1-3 so that CPU 0 stays free for services.
"role ls" lists every role with settings or allocations; "role set"
(operators only) changes a role's weight, quota, CPU class and/or cpuset,
persisted and effective in the next allocation cycle (a CPU class or
cpuset: for the tasks launched after it). See docs/roles.md.

  dcosctl role ls
  dcosctl role set batch --weight 2 --quota cpus=16,mem=64Gi
  dcosctl role set batch --cpu-class idle
  dcosctl role set batch --cpuset 1-3
  dcosctl role set batch --quota none`,
		Subcommands: []*cli.Command{
			roleLsCommand(e),
			roleSetCommand(e),
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("unknown role command %q; see \"dcosctl role --help\"", c.Args().First())
			}
			return cli.ShowSubcommandHelp(c)
		},
	}
}

func roleLsCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "ls",
		Usage: "list the roles with settings or allocations",
		Description: `Print one row per role, sorted by name: its weight, its CPU class, its
cpuset (- when every CPU), its quota (- when none),
what its granted allocations hold, and how many of its allocations wait.
The default role (no name) is shown as -. -o json prints the RoleList
response.`,
		Action: func(c *cli.Context) error {
			f, k, err := listCall(c, e)
			if err != nil {
				return err
			}
			res, err := k.RoleList(c.Context, connect.NewRequest(&syscallsv1.RoleListRequest{}))
			if err != nil {
				return callError("RoleList", err)
			}
			if f == formatJSON {
				return writeJSON(e.stdout, res.Msg)
			}
			return writeRoles(e.stdout, res.Msg.GetRoles()...)
		},
	}
}

func roleSetCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "set",
		Usage:     "set a role's weight, quota, CPU class and/or cpuset (operators only)",
		ArgsUsage: "NAME",
		Description: `Set role NAME's DRF weight (a number > 0) and/or its quota, and print the
role as "role ls" does. A quota lists any of cpus, mem, disk and ports;
it replaces the whole quota, and a dimension left out is not capped.
--quota none (or --quota "") removes the quota. --cpu-class idle runs the
role's tasks in the idle CPU class (cgroup cpu.idle, Linux >= 5.15): they
use only CPU time that normal tasks leave, and a waking normal task
preempts them at once; --cpu-class normal undoes it. The class applies to
tasks launched after it is set (running tasks keep theirs). --cpuset LIST
confines the role's tasks to the CPUs of a Linux CPU list ("1-3,5"): the
agent runs them on LIST ∩ the CPUs it may use itself, or on all of those
(with a warning in its log) when the two do not meet; --cpuset "" clears
it. Like the class, it applies to tasks launched after it. What is set
overrides dcosd's --role-weight, --role-quota and --role-cpu-class for that
field, and survives restarts. Allocations granted past a lowered quota are
kept. -o json prints the RoleSet response.

  dcosctl role set web --weight 2
  dcosctl role set batch --cpu-class idle
  dcosctl role set batch --cpuset 1-3
  dcosctl role set batch --cpuset ""
  dcosctl role set batch --quota cpus=16,mem=64Gi,disk=1Ti,ports=100
  dcosctl role set batch --quota none`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "weight", Usage: "DRF `WEIGHT`, a number > 0"},
			&cli.StringFlag{Name: "quota", Usage: "`QUOTA`: cpus=N,mem=SIZE,disk=SIZE,ports=N (any subset), or none"},
			&cli.StringFlag{Name: "cpu-class", Usage: "`CLASS` of the role's tasks: normal or idle (batch work that yields the CPU to services)"},
			&cli.StringFlag{Name: "cpuset", Usage: "CPU `LIST` the role's tasks run on, e.g. 1-3,5 (\"\": every CPU)"},
		},
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) != 1 || args[0] == "" {
				return usagef("role set: want one NAME, got %d arguments", len(args))
			}
			req := &syscallsv1.RoleSetRequest{Name: args[0]}
			if c.IsSet("weight") {
				w, err := strconv.ParseFloat(c.String("weight"), 64)
				if err != nil || !(w > 0) {
					return usagef("role set: --weight %q: want a number > 0", c.String("weight"))
				}
				req.Weight = &w
			}
			if c.IsSet("quota") {
				q, err := parseQuota(c.String("quota"))
				if err != nil {
					return usagef("role set: --quota %q: %v", c.String("quota"), err)
				}
				req.Quota = q
			}
			if c.IsSet("cpu-class") {
				class, err := parseCPUClass(c.String("cpu-class"))
				if err != nil {
					return usagef("role set: --cpu-class %q: %v", c.String("cpu-class"), err)
				}
				req.CpuClass = &class
			}
			if c.IsSet("cpuset") {
				// The kernel validates the list (InvalidArgument naming cpuset).
				s := strings.TrimSpace(c.String("cpuset"))
				req.Cpuset = &s
			}
			if req.Weight == nil && req.Quota == nil && req.CpuClass == nil && req.Cpuset == nil {
				return usagef("role set: nothing to set: give --weight, --quota, --cpu-class, --cpuset or several")
			}
			f, k, err := formatAndDial(c, e)
			if err != nil {
				return err
			}
			res, err := k.RoleSet(c.Context, connect.NewRequest(req))
			if err != nil {
				return callError("RoleSet", err)
			}
			if f == formatJSON {
				return writeJSON(e.stdout, res.Msg)
			}
			return writeRoles(e.stdout, res.Msg.GetRole())
		},
	}
}

// parseQuota reads cpus=N,mem=SIZE,disk=SIZE,ports=N (any subset, any
// order); "" and "none" are the empty quota, which clears a role's.
func parseQuota(s string) (*syscallsv1.Resources, error) {
	q := &syscallsv1.Resources{}
	if t := strings.TrimSpace(s); t == "" || t == "none" {
		return q, nil
	}
	var rest []string
	ports := false
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if k != "ports" {
			rest = append(rest, kv)
			continue
		}
		if ports {
			return nil, fmt.Errorf("ports given twice")
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("ports: %q is not a non-negative integer", v)
		}
		q.Ports, ports = n, true
	}
	r, err := quantity.ParseResources(strings.Join(rest, ","))
	if err != nil {
		return nil, fmt.Errorf("%w (want cpus, mem, disk, ports)", err)
	}
	if r.CPUs != nil {
		q.Cpus = *r.CPUs
	}
	if r.MemBytes != nil {
		q.MemBytes = *r.MemBytes
	}
	if r.DiskBytes != nil {
		q.DiskBytes = *r.DiskBytes
	}
	return q, nil
}

// formatResources is r as "cpus=2,mem=1Gi,disk=10Gi,ports=4", its zero
// dimensions left out; "-" when all are zero.
func formatResources(r *syscallsv1.Resources) string {
	var parts []string
	if r.GetCpus() != 0 {
		parts = append(parts, "cpus="+formatCPUs(r.GetCpus()))
	}
	if r.GetMemBytes() != 0 {
		parts = append(parts, "mem="+quantity.FormatBytes(r.GetMemBytes()))
	}
	if r.GetDiskBytes() != 0 {
		parts = append(parts, "disk="+quantity.FormatBytes(r.GetDiskBytes()))
	}
	if r.GetPorts() != 0 {
		parts = append(parts, "ports="+strconv.FormatInt(r.GetPorts(), 10))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}

// parseCPUClass reads "normal" or "idle" (any case).
func parseCPUClass(s string) (syscallsv1.CpuClass, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "normal":
		return syscallsv1.CpuClass_CPU_CLASS_NORMAL, nil
	case "idle":
		return syscallsv1.CpuClass_CPU_CLASS_IDLE, nil
	}
	return 0, fmt.Errorf("want normal or idle")
}

// formatCPUClass is c as parseCPUClass reads it ("normal", "idle"), or
// the enum's number for a class this dcosctl does not know.
func formatCPUClass(c syscallsv1.CpuClass) string {
	if n, ok := syscallsv1.CpuClass_name[int32(c)]; ok {
		return strings.ToLower(strings.TrimPrefix(n, "CPU_CLASS_"))
	}
	return strconv.Itoa(int(c))
}

func writeRoles(w io.Writer, roles ...*syscallsv1.Role) error {
	t := newTable(w, "NAME", "WEIGHT", "CPU-CLASS", "CPUSET", "QUOTA", "USAGE", "PENDING")
	for _, r := range roles {
		t.row(dash(r.GetName()), strconv.FormatFloat(r.GetWeight(), 'g', -1, 64), formatCPUClass(r.GetCpuClass()), dash(r.GetCpuset()), formatResources(r.GetQuota()),
			formatResources(r.GetUsage()), strconv.Itoa(int(r.GetPending())))
	}
	return t.flush()
}
