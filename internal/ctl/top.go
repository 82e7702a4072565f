package ctl

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/internal/quantity"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// topSorts are the columns top sorts by, largest first (id: by task id).
var topSorts = map[string]func(a, b *syscallsv1.Task) int{
	"cpu": func(a, b *syscallsv1.Task) int {
		return cmp.Compare(b.GetUsage().GetCpuCores(), a.GetUsage().GetCpuCores())
	},
	"mem": func(a, b *syscallsv1.Task) int {
		return cmp.Compare(b.GetUsage().GetMemBytes(), a.GetUsage().GetMemBytes())
	},
	"rx": func(a, b *syscallsv1.Task) int {
		return cmp.Compare(b.GetUsage().GetRxBytesPerSec(), a.GetUsage().GetRxBytesPerSec())
	},
	"tx": func(a, b *syscallsv1.Task) int {
		return cmp.Compare(b.GetUsage().GetTxBytesPerSec(), a.GetUsage().GetTxBytesPerSec())
	},
	"id": func(a, b *syscallsv1.Task) int { return cmp.Compare(a.GetId(), b.GetId()) },
}

func topCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "top",
		Usage: "a live table of the running tasks' resource use",
		Description: `Print the running tasks the caller may see with their CPU (% of one core),
memory now and peak, network receive and transmit rates and processes, as
their agents last sampled them (every --usage-interval of the agent, 5 s by
default; rates are the kernel's, from the last two samples). The table is
redrawn every --interval until interrupted; --once prints it once.

  dcosctl top --sort mem -n 20`,
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "interval", Value: 2 * time.Second, Usage: "refresh every `DURATION`"},
			&cli.StringFlag{Name: "sort", Value: "cpu", Usage: "sort by `COLUMN`: cpu, mem, rx, tx or id"},
			&cli.IntFlag{Name: "n", Usage: "show at most `N` tasks (0: all)"},
			&cli.StringFlag{Name: "agent", Usage: "only tasks on agent `ID`"},
			&cli.BoolFlag{Name: "once", Usage: "print the table once and exit", DisableDefaultText: true},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			less, ok := topSorts[c.String("sort")]
			if !ok {
				return usagef("--sort %q: want cpu, mem, rx, tx or id", c.String("sort"))
			}
			if c.Duration("interval") <= 0 {
				return usagef("--interval must be positive")
			}
			k, err := dial(c, e)
			if err != nil {
				return err
			}
			for {
				tasks, err := runningTasks(c.Context, k, c.String("agent"))
				if err != nil {
					return err
				}
				slices.SortStableFunc(tasks, less)
				if n := c.Int("n"); n > 0 && len(tasks) > n {
					tasks = tasks[:n]
				}
				if !c.Bool("once") {
					fmt.Fprint(e.stdout, "\x1b[H\x1b[2J") // home, clear screen
					fmt.Fprintf(e.stdout, "dcosctl top — %s, every %v, by %s\n\n", e.now().Format(time.TimeOnly), c.Duration("interval"), c.String("sort"))
				}
				if err := printTop(e, tasks); err != nil {
					return err
				}
				if c.Bool("once") {
					return nil
				}
				select {
				case <-c.Context.Done():
					return nil
				case <-time.After(c.Duration("interval")):
				}
			}
		},
	}
}

// runningTasks lists the RUNNING tasks, optionally on one agent.
func runningTasks(ctx context.Context, k syscallsv1connect.KernelClient, agent string) ([]*syscallsv1.Task, error) {
	res, err := k.ListTasks(ctx, connect.NewRequest(&syscallsv1.ListTasksRequest{AgentId: agent}))
	if err != nil {
		return nil, callError("ListTasks", err)
	}
	var out []*syscallsv1.Task
	for _, t := range res.Msg.GetTasks() {
		if t.GetState() == syscallsv1.TaskState_TASK_STATE_RUNNING {
			out = append(out, t)
		}
	}
	return out, nil
}

func printTop(e *env, tasks []*syscallsv1.Task) error {
	t := newTable(e.stdout, "TASK", "AGENT", "CPU%", "MEM", "PEAK", "RX/S", "TX/S", "PIDS", "COMMAND")
	for _, k := range tasks {
		u := k.GetUsage()
		if u == nil {
			t.row(k.GetId(), k.GetAgentId(), "-", "-", "-", "-", "-", "-", formatCommand(k.GetCommand(), k.GetArgs()))
			continue
		}
		t.row(k.GetId(), k.GetAgentId(), strconv.FormatFloat(u.GetCpuCores()*100, 'f', 1, 64),
			formatBytesU(u.GetMemBytes()), formatBytesU(u.GetMemPeakBytes()),
			formatRate(u.GetRxBytesPerSec()), formatRate(u.GetTxBytesPerSec()),
			strconv.FormatUint(u.GetPids(), 10), formatCommand(k.GetCommand(), k.GetArgs()))
	}
	return t.flush()
}

func formatBytesU(n uint64) string { return quantity.FormatBytes(int64(min(n, math.MaxInt64))) }

// formatRate prints bytes per second, rounded to whole bytes.
func formatRate(r float64) string {
	if r <= 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		return "0"
	}
	return quantity.FormatBytes(int64(math.Round(r)))
}

func usageCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "usage",
		Usage:     "a task's latest resource use",
		ArgsUsage: "TASK_ID",
		Description: `Print what task TASK_ID's agent last sampled: CPU time, memory now and peak,
processes, OOM kills, network bytes and packets in and out, and the rates
the kernel computed. -o json prints the TaskUsage message.`,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("usage: want exactly one TASK_ID")
			}
			f, k, err := formatAndDial(c, e)
			if err != nil {
				return err
			}
			res, err := k.ListTasks(c.Context, connect.NewRequest(&syscallsv1.ListTasksRequest{}))
			if err != nil {
				return callError("ListTasks", err)
			}
			id := c.Args().First()
			i := slices.IndexFunc(res.Msg.GetTasks(), func(t *syscallsv1.Task) bool { return t.GetId() == id })
			if i < 0 {
				return fmt.Errorf("no task %q (dcosctl ps -a lists the tasks you may see)", id)
			}
			u := res.Msg.GetTasks()[i].GetUsage()
			if u == nil {
				return fmt.Errorf("task %s: no usage reported yet (agents sample every few seconds)", id)
			}
			if f == formatJSON {
				return writeJSON(e.stdout, u)
			}
			t := newTable(e.stdout, "FIELD", "VALUE")
			for _, r := range [][2]string{
				{"sampled", u.GetSampled().AsTime().Format(time.RFC3339)},
				{"cpu", time.Duration(min(u.GetCpuNs(), math.MaxInt64)).String()},
				{"cpu%", strconv.FormatFloat(u.GetCpuCores()*100, 'f', 1, 64)},
				{"mem", formatBytesU(u.GetMemBytes())},
				{"mem peak", formatBytesU(u.GetMemPeakBytes())},
				{"pids", strconv.FormatUint(u.GetPids(), 10)},
				{"oom kills", strconv.FormatUint(u.GetOomKills(), 10)},
				{"rx", formatBytesU(u.GetRxBytes()) + " in " + strconv.FormatUint(u.GetRxPackets(), 10) + " packets"},
				{"tx", formatBytesU(u.GetTxBytes()) + " in " + strconv.FormatUint(u.GetTxPackets(), 10) + " packets"},
				{"rx/s", formatRate(u.GetRxBytesPerSec())},
				{"tx/s", formatRate(u.GetTxBytesPerSec())},
			} {
				t.row(r[0], r[1])
			}
			return t.flush()
		},
	}
}
