package ctl

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/frameworks/jobs"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// jobStore adapts dcosctl's kernel client to jobs.Store.
type jobStore struct {
	k syscallsv1connect.KernelClient
}

func (s jobStore) StateGet(ctx context.Context, r *syscallsv1.StateGetRequest) (*syscallsv1.StateGetResponse, error) {
	res, err := s.k.StateGet(ctx, connect.NewRequest(r))
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

func (s jobStore) StatePut(ctx context.Context, r *syscallsv1.StatePutRequest) (*syscallsv1.StatePutResponse, error) {
	res, err := s.k.StatePut(ctx, connect.NewRequest(r))
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

func (s jobStore) StateDelete(ctx context.Context, r *syscallsv1.StateDeleteRequest) (*syscallsv1.StateDeleteResponse, error) {
	res, err := s.k.StateDelete(ctx, connect.NewRequest(r))
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

func (s jobStore) StateList(ctx context.Context, r *syscallsv1.StateListRequest) (*syscallsv1.StateListResponse, error) {
	res, err := s.k.StateList(ctx, connect.NewRequest(r))
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

func jobCall(c *cli.Context, e *env, args int, usage string) (format, jobs.Operator, syscallsv1connect.KernelClient, error) {
	if c.NArg() != args {
		return 0, jobs.Operator{}, nil, usagef("job %s: want %s", c.Command.Name, usage)
	}
	f, k, err := formatAndDial(c, e)
	if err != nil {
		return 0, jobs.Operator{}, nil, err
	}
	return f, jobs.Operator{Store: jobStore{k}, Owner: c.String("framework")}, k, nil
}

// jobError turns a kernel error into dcosctl's message and a missing job
// into a hint.
func jobError(op string, err error) error {
	if errors.Is(err, jobs.ErrNotFound) {
		return fmt.Errorf("job %s: %w (see \"dcosctl job ls\")", op, err)
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return callError("job "+op, err)
	}
	return fmt.Errorf("job %s: %w", op, err)
}

func writeJSONValue(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeIndented(w, b)
}

func jobCommand(e *env) *cli.Command {
	framework := &cli.StringFlag{Name: "framework", Value: "jobs", Usage: "the jobs framework's principal `NAME`, whose framework state holds the jobs"}
	flags := func(more ...cli.Flag) []cli.Flag { return append([]cli.Flag{framework}, more...) }
	return &cli.Command{
		Name:  "job",
		Usage: "run batch jobs to completion, by hand or on a cron schedule",
		Description: `Jobs are specs (YAML or JSON, see docs/jobs.md) the jobs framework runs to
completion: parallel tasks, retries with backoff, an active deadline, gangs
granted all at once, and cron schedules with a time zone and a concurrency
policy. dcosctl writes specs and manual runs into the framework's state (as
an operator); the leading jobs replica acts on them.

  dcosctl job apply -f nightly.yaml
  dcosctl job run nightly
  dcosctl job history nightly
  dcosctl job logs nightly --task 0`,
		Subcommands: []*cli.Command{
			{
				Name:  "apply",
				Usage: "create or change a job from a spec file",
				Description: `Validate the job of FILE and store it as the job's next version. A bad spec
stores nothing and names the field. Runs already going keep the spec they
started with.

  dcosctl job apply -f nightly.yaml
  cat job.json | dcosctl job apply -f -`,
				Flags: flags(&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "spec `FILE` (YAML or JSON; - for stdin)"}),
				Action: func(c *cli.Context) error {
					path := c.String("file")
					if path == "" {
						return usagef("job apply: want -f FILE")
					}
					var data []byte
					var err error
					if path == "-" {
						data, err = io.ReadAll(e.stdin)
					} else {
						data, err = os.ReadFile(path)
					}
					if err != nil {
						return fmt.Errorf("job apply: %w", err)
					}
					j, err := jobs.ParseSpec(data)
					if err != nil {
						return fmt.Errorf("job apply: %s: %w", path, err)
					}
					_, op, _, err := jobCall(c, e, 0, "no arguments besides -f FILE")
					if err != nil {
						return err
					}
					rec, err := op.Apply(c.Context, j, e.now())
					if err != nil {
						return jobError("apply", err)
					}
					fmt.Fprintf(e.stdout, "job %s: version %d applied\n", j.Name, rec.Version)
					return nil
				},
			},
			{
				Name:      "run",
				Usage:     "start a run of a job now and wait for it to end",
				ArgsUsage: "NAME",
				Description: `Record a run of NAME (whatever its schedule) and print its id. Unless
--detach, wait for it to end: exit 0 when it succeeded, 1 when it failed
(its reason on stderr).

  dcosctl job run nightly
  dcosctl job run nightly --detach`,
				Flags: flags(&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "print the run id and return at once"}),
				Action: func(c *cli.Context) error {
					_, op, _, err := jobCall(c, e, 1, "one NAME")
					if err != nil {
						return err
					}
					name := c.Args().First()
					r, err := op.StartRun(c.Context, name, e.now())
					if err != nil {
						return jobError("run", err)
					}
					fmt.Fprintln(e.stdout, r.ID)
					if c.Bool("detach") {
						return nil
					}
					for {
						got, err := op.Run(c.Context, name, r.ID)
						if errors.Is(err, jobs.ErrNotFound) {
							// Removed with its job (rm), or dropped by
							// history before this poll saw it end.
							return fmt.Errorf("job run: run %s is no longer recorded (see \"dcosctl job history %s\")", r.ID, name)
						}
						if err != nil {
							return jobError("run", err)
						}
						if got != nil && got.Ended() {
							if got.State == jobs.RunFailed {
								fmt.Fprintf(e.stderr, "run %s failed: %s\n", got.ID, got.Reason)
								return exitStatus(exitCallError)
							}
							if got.MPI != nil {
								fmt.Fprintf(e.stderr, "run %s succeeded (the launcher exited 0, attempt %d)\n", got.ID, got.MPI.Attempt)
							} else {
								fmt.Fprintf(e.stderr, "run %s succeeded (%d tasks)\n", got.ID, got.Succeeded)
							}
							return nil
						}
						select {
						case <-c.Context.Done():
							return c.Context.Err()
						case <-time.After(200 * time.Millisecond):
						}
					}
				},
			},
			{
				Name:  "ls",
				Usage: "list jobs",
				Description: `Print one row per job: its schedule, time zone, the last run and its state.

  dcosctl job ls -o json`,
				Flags: flags(),
				Action: func(c *cli.Context) error {
					f, op, _, err := jobCall(c, e, 0, "no arguments")
					if err != nil {
						return err
					}
					specs, err := op.Specs(c.Context)
					if err != nil {
						return jobError("ls", err)
					}
					type row struct {
						Spec    jobs.Job  `json:"spec"`
						Version int64     `json:"version"`
						LastRun *jobs.Run `json:"lastRun,omitempty"`
					}
					var rows []row
					for _, s := range specs {
						runs, err := op.Runs(c.Context, s.Spec.Name)
						if err != nil {
							return jobError("ls", err)
						}
						// secretEnv values are never shown.
						r := row{Spec: s.Spec.Redacted(), Version: s.Version}
						if len(runs) > 0 {
							r.LastRun = runs[len(runs)-1].Redacted()
						}
						rows = append(rows, r)
					}
					if f == formatJSON {
						if rows == nil {
							rows = []row{}
						}
						return writeJSONValue(e.stdout, rows)
					}
					t := newTable(e.stdout, "NAME", "VERSION", "SCHEDULE", "PARALLELISM", "LAST RUN", "STATE")
					for _, r := range rows {
						last, state := "", ""
						if r.LastRun != nil {
							last, state = r.LastRun.ID, r.LastRun.State
						}
						sched := r.Spec.Schedule
						if sched != "" && r.Spec.TimeZone != "UTC" {
							sched += " (" + r.Spec.TimeZone + ")"
						}
						par := strconv.Itoa(r.Spec.Parallelism)
						if m := r.Spec.MPI; m != nil {
							par = fmt.Sprintf("mpi %d ranks", m.Ranks)
						}
						t.row(r.Spec.Name, strconv.FormatInt(r.Version, 10), sched, par, last, state)
					}
					return t.flush()
				},
			},
			{
				Name:      "status",
				Usage:     "show a job's runs that are going and their tasks",
				ArgsUsage: "NAME",
				Description: `Print the job's spec version and each run not ended yet, task by task: its
agent, attempts, last exit and when a failed task retries.

  dcosctl job status nightly
  dcosctl job status nightly -o json`,
				Flags: flags(),
				Action: func(c *cli.Context) error {
					f, op, k, err := jobCall(c, e, 1, "one NAME")
					if err != nil {
						return err
					}
					name := c.Args().First()
					spec, err := op.Spec(c.Context, name)
					if err != nil {
						return jobError("status", err)
					}
					runs, err := op.Runs(c.Context, name)
					if err != nil {
						return jobError("status", err)
					}
					live := []*jobs.Run{}
					for _, r := range runs {
						if !r.Ended() {
							live = append(live, r)
						}
					}
					if f == formatJSON {
						// secretEnv values are never shown.
						shown := spec.Redacted()
						for i, r := range live {
							live[i] = r.Redacted()
						}
						return writeJSONValue(e.stdout, map[string]any{"spec": &shown, "runs": live})
					}
					// Why allocations wait (a gang says what it misses).
					pending := map[string]string{}
					if len(live) > 0 {
						al, err := k.ListAllocations(c.Context, connect.NewRequest(&syscallsv1.ListAllocationsRequest{}))
						if err != nil {
							return callError("ListAllocations", err)
						}
						for _, a := range al.Msg.GetAllocations() {
							if a.GetState() == syscallsv1.AllocationState_ALLOCATION_STATE_PENDING {
								pending[a.GetId()] = cmp.Or(a.GetPendingReason(), "waiting")
							}
						}
					}
					if m := spec.Spec.MPI; m != nil {
						fmt.Fprintf(e.stdout, "job %s: version %d, mpi: %d ranks on %d rank hosts (slotsPerTask %d) and a launcher", name, spec.Version, m.Ranks, m.Hosts(), m.SlotsPerTask)
					} else {
						fmt.Fprintf(e.stdout, "job %s: version %d, parallelism %d, completions %d", name, spec.Version, spec.Spec.Parallelism, spec.Spec.Completions)
					}
					if spec.Spec.Schedule != "" {
						fmt.Fprintf(e.stdout, ", schedule %q %s %s", spec.Spec.Schedule, spec.Spec.TimeZone, spec.Spec.ConcurrencyPolicy)
					}
					fmt.Fprintln(e.stdout)
					if len(live) == 0 {
						fmt.Fprintln(e.stdout, "no run going")
					}
					for _, r := range live {
						if r.MPI != nil {
							printMPIRun(e.stdout, r, pending)
							continue
						}
						fmt.Fprintf(e.stdout, "\nrun %s: %s, %d/%d succeeded, started %s\n", r.ID, r.State, r.Succeeded, spec.Spec.Completions, fmtTime(r.Started))
						t := newTable(e.stdout, "TASK", "AGENT", "ATTEMPTS", "STATE", "LAST EXIT", "RETRY AT")
						for _, s := range r.Tasks {
							t.row(strconv.Itoa(s.Index), s.Agent, strconv.Itoa(s.Attempts), jobSlotState(s, pending), s.LastReason, fmtTime(s.RetryAt))
						}
						t.flush()
					}
					return nil
				},
			},
			{
				Name:      "history",
				Usage:     "list a job's runs, newest first",
				ArgsUsage: "NAME",
				Description: `Print the runs history keeps (successfulRunsHistoryLimit and
failedRunsHistoryLimit of the spec, 3 and 1 by default) and those going:
id, cause, state, when it started and ended, and why it failed.

  dcosctl job history nightly
  dcosctl job history nightly -o json`,
				Flags: flags(),
				Action: func(c *cli.Context) error {
					f, op, _, err := jobCall(c, e, 1, "one NAME")
					if err != nil {
						return err
					}
					runs, err := op.Runs(c.Context, c.Args().First())
					if err != nil {
						return jobError("history", err)
					}
					for i, j := 0, len(runs)-1; i < j; i, j = i+1, j-1 {
						runs[i], runs[j] = runs[j], runs[i]
					}
					if f == formatJSON {
						shown := []*jobs.Run{} // secretEnv values are never shown
						for _, r := range runs {
							shown = append(shown, r.Redacted())
						}
						return writeJSONValue(e.stdout, shown)
					}
					t := newTable(e.stdout, "RUN", "CAUSE", "STATE", "SUCCEEDED", "STARTED", "FINISHED", "REASON")
					for _, r := range runs {
						t.row(r.ID, r.Cause, r.State, strconv.Itoa(r.Succeeded), fmtTime(r.Started), fmtTime(r.Finished), r.Reason)
					}
					return t.flush()
				},
			},
			{
				Name:      "logs",
				Usage:     "print the output of a run's task",
				ArgsUsage: "NAME",
				Description: `Print what a task of a run wrote (through the logs syscall, see
"dcosctl logs"): by default the newest run and task 0, its last attempt;
of an MPI job, its launcher (mpirun prints every rank's output), or rank
host N with --task N. Logs last as long as the agent keeps the task's
sandbox.

  dcosctl job logs nightly
  dcosctl job logs nightly --run nightly-3 --task 2 --stderr`,
				Flags: flags(
					&cli.StringFlag{Name: "run", Usage: "run `ID` (default: the newest)"},
					&cli.IntFlag{Name: "task", Usage: "task `N` of the run (of an MPI job: rank host N; default its launcher)"},
					&cli.BoolFlag{Name: "stderr", Usage: "print stderr (to stderr) instead of stdout"},
					&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "follow the output"},
				),
				Action: func(c *cli.Context) error {
					f, op, k, err := jobCall(c, e, 1, "one NAME")
					if err != nil {
						return err
					}
					runs, err := op.Runs(c.Context, c.Args().First())
					if err != nil {
						return jobError("logs", err)
					}
					var r *jobs.Run
					for _, x := range runs {
						if c.String("run") == "" || x.ID == c.String("run") {
							r = x
						}
					}
					if r == nil {
						return jobError("logs", fmt.Errorf("run %q: %w", c.String("run"), jobs.ErrNotFound))
					}
					n := c.Int("task")
					var id string
					switch {
					case r.MPI != nil && !c.IsSet("task"):
						if id = r.MPI.Launcher.Task; id == "" {
							return fmt.Errorf("job logs: run %s has no launcher launched (see \"dcosctl job status %s\"; --task N for rank host N)", r.ID, r.Job)
						}
					case n < 0 || n >= len(r.Tasks) || r.Tasks[n].Task == "":
						return fmt.Errorf("job logs: run %s has no task %d launched", r.ID, n)
					default:
						id = r.Tasks[n].Task
					}
					req := &syscallsv1.LogsRequest{TaskId: id, Follow: c.Bool("follow")}
					if c.Bool("stderr") {
						req.Streams = []syscallsv1.LogStream{syscallsv1.LogStream_LOG_STREAM_STDERR}
					}
					return streamLogs(c.Context, k, req, &logsPrinter{e: e, json: f == formatJSON}, defaultLogsBackoff)
				},
			},
			{
				Name:      "rm",
				Usage:     "remove a job, stopping its runs",
				ArgsUsage: "NAME",
				Description: `Delete the job's spec: the jobs framework stops its runs going (their tasks
are killed) and deletes its history.

  dcosctl job rm nightly`,
				Flags: flags(),
				Action: func(c *cli.Context) error {
					_, op, _, err := jobCall(c, e, 1, "one NAME")
					if err != nil {
						return err
					}
					if err := op.Remove(c.Context, c.Args().First()); err != nil {
						return jobError("rm", err)
					}
					fmt.Fprintf(e.stdout, "job %s: removed\n", c.Args().First())
					return nil
				},
			},
		},
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// jobSlotState is a task slot's state in dcosctl job status.
func jobSlotState(s jobs.TaskRecord, pending map[string]string) string {
	switch {
	case s.Done:
		return "done"
	case s.Task != "" && !s.TaskEnded:
		return "running " + s.Task
	case !s.RetryAt.IsZero():
		return "backoff"
	case pending[s.Allocation] != "":
		return "pending: " + pending[s.Allocation]
	case s.Allocation != "":
		return "allocated"
	}
	return "allocating"
}

// printMPIRun prints an MPI run of dcosctl job status: its attempt, its
// rank hosts ("host N") and its launcher.
func printMPIRun(w io.Writer, r *jobs.Run, pending map[string]string) {
	m := r.MPI
	fmt.Fprintf(w, "\nrun %s: %s, attempt %d, started %s", r.ID, r.State, m.Attempt, fmtTime(r.Started))
	if m.Failures > 0 {
		fmt.Fprintf(w, "; last attempt failed: %s", m.LastReason)
	}
	if !m.RetryAt.IsZero() {
		fmt.Fprintf(w, "; next attempt at %s", fmtTime(m.RetryAt))
	}
	fmt.Fprintln(w)
	t := newTable(w, "TASK", "AGENT", "STATE", "LAST EXIT")
	for _, s := range r.Tasks {
		t.row("host "+strconv.Itoa(s.Index), s.Agent, jobSlotState(s, pending), s.LastReason)
	}
	l := m.Launcher
	state := jobSlotState(l, pending)
	if l.Allocation == "" && len(r.Tasks) > 0 {
		state = "waits for every rank host to run"
	}
	t.row("launcher", l.Agent, state, l.LastReason)
	t.flush()
}
