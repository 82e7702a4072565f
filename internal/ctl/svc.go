package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	dinit "github.com/dcos-kernel/dcos/frameworks/init"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// svcState is the init's framework state as an operator reads and writes
// it: every call names the init's principal as owner.
type svcState struct {
	k     syscallsv1connect.KernelClient
	owner string
}

func (s svcState) get(ctx context.Context, key string, v any) (rev int64, found bool, err error) {
	res, err := s.k.StateGet(ctx, connect.NewRequest(&syscallsv1.StateGetRequest{Key: key, Owner: s.owner}))
	if connect.CodeOf(err) == connect.CodeNotFound {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, callError("StateGet", err)
	}
	if err := json.Unmarshal(res.Msg.GetEntry().GetValue(), v); err != nil {
		return 0, false, fmt.Errorf("%s: %w", key, err)
	}
	return res.Msg.GetEntry().GetRevision(), true, nil
}

// put writes key; with cas it is conditional on rev (0: must not exist).
// secret writes it as a secret entry (sealed at rest): the value holds
// a spec with secretEnv values.
func (s svcState) put(ctx context.Context, key string, v any, secret, cas bool, rev int64) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	req := &syscallsv1.StatePutRequest{Key: key, Value: b, Owner: s.owner, Secret: secret}
	if cas {
		req.ExpectedRevision = &rev
	}
	if _, err := s.k.StatePut(ctx, connect.NewRequest(req)); err != nil {
		if connect.CodeOf(err) == connect.CodeAborted {
			return fmt.Errorf("%s changed meanwhile (someone else applied it); try again", key)
		}
		return callError("StatePut", err)
	}
	return nil
}

func (s svcState) list(ctx context.Context, prefix string) ([]*syscallsv1.StateEntry, error) {
	res, err := s.k.StateList(ctx, connect.NewRequest(&syscallsv1.StateListRequest{Prefix: prefix, Owner: s.owner}))
	if err != nil {
		return nil, callError("StateList", err)
	}
	return res.Msg.GetEntries(), nil
}

func (s svcState) del(ctx context.Context, key string) error {
	if _, err := s.k.StateDelete(ctx, connect.NewRequest(&syscallsv1.StateDeleteRequest{Key: key, Owner: s.owner})); err != nil {
		return callError("StateDelete", err)
	}
	return nil
}

// commit stores next as service name's spec (compare-and-swap on rev,
// found telling whether a spec existed), then in its history, keeping the
// last dinit.HistoryKeep versions. Both entries are secret when the spec
// has a secretEnv.
func (s svcState) commit(ctx context.Context, name string, next *dinit.Record, found bool, rev int64) error {
	if !found {
		rev = 0
	}
	secret := next.Spec.HasSecrets()
	if err := s.put(ctx, dinit.SpecKey(name), next, secret, true, rev); err != nil {
		return err
	}
	if err := s.put(ctx, dinit.HistoryKey(name, next.Version), next, secret, false, 0); err != nil {
		return err
	}
	hist, err := s.list(ctx, dinit.HistoryPrefix(name))
	if err != nil {
		return err
	}
	for i := 0; i < len(hist)-dinit.HistoryKeep; i++ {
		if err := s.del(ctx, hist[i].GetKey()); err != nil {
			return err
		}
	}
	return nil
}

// record reads service name's current spec; a missing one is an error.
func (s svcState) record(ctx context.Context, name string) (*dinit.Record, int64, error) {
	var r dinit.Record
	rev, found, err := s.get(ctx, dinit.SpecKey(name), &r)
	if err != nil {
		return nil, 0, err
	}
	if !found {
		return nil, 0, fmt.Errorf("service %q: not found (see \"dcosctl svc ls\")", name)
	}
	r.Spec.Default()
	return &r, rev, nil
}

// instances lists the live allocations and tasks of the init's service
// name (all services when name is empty).
func (s svcState) instances(ctx context.Context, name string) ([]*syscallsv1.Allocation, []*syscallsv1.Task, error) {
	ar, err := s.k.ListAllocations(ctx, connect.NewRequest(&syscallsv1.ListAllocationsRequest{}))
	if err != nil {
		return nil, nil, callError("ListAllocations", err)
	}
	tr, err := s.k.ListTasks(ctx, connect.NewRequest(&syscallsv1.ListTasksRequest{}))
	if err != nil {
		return nil, nil, callError("ListTasks", err)
	}
	mine := func(owner string, labels map[string]string) bool {
		svc := dinit.ServiceOf(labels)
		return owner == s.owner && svc != "" && (name == "" || svc == name)
	}
	var allocs []*syscallsv1.Allocation
	for _, a := range ar.Msg.GetAllocations() {
		if mine(a.GetOwner(), a.GetLabels()) {
			allocs = append(allocs, a)
		}
	}
	var tasks []*syscallsv1.Task
	for _, t := range tr.Msg.GetTasks() {
		if mine(t.GetOwner(), t.GetLabels()) {
			tasks = append(tasks, t)
		}
	}
	return allocs, tasks, nil
}

func svcCall(c *cli.Context, e *env, args int, usage string) (format, svcState, error) {
	if c.NArg() != args {
		return 0, svcState{}, usagef("svc %s: want %s", c.Command.Name, usage)
	}
	f, k, err := formatAndDial(c, e)
	if err != nil {
		return 0, svcState{}, err
	}
	return f, svcState{k: k, owner: c.String("framework")}, nil
}

func svcCommand(e *env) *cli.Command {
	framework := &cli.StringFlag{Name: "framework", Value: "init", Usage: "the init's principal `NAME`, whose framework state holds the specs"}
	flags := func(more ...cli.Flag) []cli.Flag { return append([]cli.Flag{framework}, more...) }
	return &cli.Command{
		Name:  "svc",
		Usage: "run services that stay up, with the distributed init",
		Description: `Services are specs (YAML or JSON, see docs/init.md) the init keeps running:
it replaces instances that exit or are lost, backs off crash loops, and runs
every change as a rolling deployment. dcosctl writes the specs into the
init's framework state (as an operator); the leading init replica acts on
them.

  dcosctl svc apply -f web.yaml --dry-run   # print the plan
  dcosctl svc apply -f web.yaml
  dcosctl svc status web
  dcosctl svc scale web 5
  dcosctl svc rollback web`,
		Subcommands: []*cli.Command{
			{
				Name:  "apply",
				Usage: "create or change services from a spec file",
				Description: `Validate every service of FILE (one service, or several under "services:"),
then store each as a new version of its spec; the init deploys it. A bad
spec stores nothing and names the field. A change of instances only is a
scale (no instance restarts); any other change replaces the instances in a
rolling deployment under the spec's upgradeStrategy. --dry-run prints the
plan and stores nothing.

  dcosctl svc apply -f web.yaml
  dcosctl svc apply -f services.json --dry-run`,
				Flags: flags(
					&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "spec `FILE` (YAML or JSON; - for stdin)"},
					&cli.BoolFlag{Name: "dry-run", Usage: "print the plan, store nothing"},
				),
				Action: func(c *cli.Context) error {
					path := c.String("file")
					if path == "" {
						return usagef("svc apply: want -f FILE")
					}
					var data []byte
					var err error
					if path == "-" {
						data, err = io.ReadAll(e.stdin)
					} else {
						data, err = os.ReadFile(path)
					}
					if err != nil {
						return fmt.Errorf("svc apply: %w", err)
					}
					svcs, err := dinit.Parse(data)
					if err != nil {
						return fmt.Errorf("svc apply: %s: %w", path, err)
					}
					f, st, err := svcCall(c, e, 0, "no arguments besides -f FILE")
					if err != nil {
						return err
					}
					return svcApply(c.Context, e, f, st, svcs, c.Bool("dry-run"))
				},
			},
			{
				Name:  "ls",
				Usage: "list services",
				Description: `Print one row per service: its version, instances running and ready out of
those asked, and its deployment's status.`,
				Flags: flags(),
				Action: func(c *cli.Context) error {
					f, st, err := svcCall(c, e, 0, "no arguments")
					if err != nil {
						return err
					}
					return svcList(c.Context, e, f, st)
				},
			},
			{
				Name:      "get",
				Usage:     "print a service's current spec (secretEnv values redacted)",
				ArgsUsage: "NAME",
				Description: `Print the current version of the service's spec as stored: YAML by default,
the stored record (version, template version, applied, cause, spec) with
-o json. secretEnv values are never printed: each shows as "<redacted>",
its name kept.

  dcosctl svc get web
  dcosctl svc get web -o json`,
				Flags: flags(),
				Action: func(c *cli.Context) error {
					f, st, err := svcCall(c, e, 1, "one NAME")
					if err != nil {
						return err
					}
					return svcGet(c.Context, e, f, st, c.Args().First())
				},
			},
			{
				Name:      "status",
				Usage:     "show a service's instances, deployment and why it is not running",
				ArgsUsage: "NAME",
				Description: `Print the service's instances (agent, state, health, version), its current
deployment and step, and why instances are not running: the kernel's
pending reason (e.g. "can never fit"), the restart backoff ("delayed until
T") and the failing check's last message.

  dcosctl svc status web
  dcosctl svc status web -o json`,
				Flags: flags(),
				Action: func(c *cli.Context) error {
					f, st, err := svcCall(c, e, 1, "one NAME")
					if err != nil {
						return err
					}
					return svcStatus(c.Context, e, f, st, c.Args().First())
				},
			},
			{
				Name:      "scale",
				Usage:     "change a service's number of instances",
				ArgsUsage: "NAME N",
				Description: `Store a new version of the spec with instances N: no instance restarts.

  dcosctl svc scale web 5`,
				Flags: flags(),
				Action: func(c *cli.Context) error {
					_, st, err := svcCall(c, e, 2, "NAME and N")
					if err != nil {
						return err
					}
					n, err := strconv.Atoi(c.Args().Get(1))
					if err != nil || n < 0 || n > dinit.MaxInstances {
						return usagef("svc scale: N: want a number between 0 and %d, got %q", dinit.MaxInstances, c.Args().Get(1))
					}
					return svcChange(c.Context, e, st, c.Args().First(), func(r *dinit.Record) (change, error) {
						s := r.Spec
						s.Instances = &n
						return change{spec: s, cause: "scale to " + strconv.Itoa(n)}, nil
					})
				},
			},
			{
				Name:      "restart",
				Usage:     "replace every instance of a service",
				ArgsUsage: "NAME",
				Description: `Store a new version of the same spec that asks for new instances: they
replace the running ones in a rolling deployment (same as a spec change).

  dcosctl svc restart web`,
				Flags: flags(),
				Action: func(c *cli.Context) error {
					_, st, err := svcCall(c, e, 1, "one NAME")
					if err != nil {
						return err
					}
					return svcChange(c.Context, e, st, c.Args().First(), func(r *dinit.Record) (change, error) {
						return change{spec: r.Spec, cause: "restart", restart: true}, nil
					})
				},
			},
			{
				Name:      "rollback",
				Usage:     "make the previous version the spec again",
				ArgsUsage: "NAME",
				Description: `Store the version before the current one (see "svc history") as a new
version: a new deployment back to it. Also stops a failed deployment.

  dcosctl svc rollback web`,
				Flags: flags(),
				Action: func(c *cli.Context) error {
					_, st, err := svcCall(c, e, 1, "one NAME")
					if err != nil {
						return err
					}
					name := c.Args().First()
					return svcChange(c.Context, e, st, name, func(r *dinit.Record) (change, error) {
						hist, err := svcHistory(c.Context, st, name)
						if err != nil {
							return change{}, err
						}
						// The latest earlier version that differs: a restart
						// or an unchanged re-apply is not a version to go
						// back to.
						for i := len(hist) - 1; i >= 0; i-- {
							h := hist[i]
							h.Spec.Default()
							differs := h.Spec.Template() != r.Spec.Template() || h.Spec.Count() != r.Spec.Count()
							if h.Version < r.Version && differs {
								return change{spec: h.Spec, cause: fmt.Sprintf("rollback to %d", h.Version), template: h}, nil
							}
						}
						return change{}, fmt.Errorf("svc rollback: %s: no earlier different version in history", name)
					})
				},
			},
			{
				Name:      "rm",
				Usage:     "remove services; the init stops their instances",
				ArgsUsage: "NAME...",
				Description: `Delete each service's spec and history: the init kills its instances.
Removing a service that does not exist is not an error.`,
				Flags: flags(),
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return usagef("svc rm: want one or more NAMEs")
					}
					k, err := dial(c, e)
					if err != nil {
						return err
					}
					st := svcState{k: k, owner: c.String("framework")}
					for _, name := range c.Args().Slice() {
						if err := st.del(c.Context, dinit.SpecKey(name)); err != nil {
							return err
						}
						hist, err := st.list(c.Context, dinit.HistoryPrefix(name))
						if err != nil {
							return err
						}
						for _, h := range hist {
							if err := st.del(c.Context, h.GetKey()); err != nil {
								return err
							}
						}
						fmt.Fprintf(e.stdout, "%s: removed\n", name)
					}
					return nil
				},
			},
			{
				Name:      "history",
				Usage:     "list a service's versions",
				ArgsUsage: "NAME",
				Description: `Print the last versions of the service's spec (at most 10): version, the
instance version it runs, when it was applied, what made it, instances.`,
				Flags: flags(),
				Action: func(c *cli.Context) error {
					f, st, err := svcCall(c, e, 1, "one NAME")
					if err != nil {
						return err
					}
					hist, err := svcHistory(c.Context, st, c.Args().First())
					if err != nil {
						return err
					}
					if f == formatJSON {
						// secretEnv values are never shown.
						var shown []dinit.Record
						for _, h := range hist {
							shown = append(shown, h.Redacted())
						}
						return writeGoJSON(e.stdout, map[string]any{"history": shown})
					}
					t := newTable(e.stdout, "VERSION", "TEMPLATE", "APPLIED", "CAUSE", "INSTANCES")
					for _, h := range hist {
						t.row(strconv.FormatInt(h.Version, 10), strconv.FormatInt(h.TemplateVersion, 10),
							h.Applied.Format(time.RFC3339), h.Cause, strconv.Itoa(h.Spec.Count()))
					}
					return t.flush()
				},
			},
		},
	}
}

func writeGoJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeIndented(w, b)
}

func svcHistory(ctx context.Context, st svcState, name string) ([]*dinit.Record, error) {
	entries, err := st.list(ctx, dinit.HistoryPrefix(name))
	if err != nil {
		return nil, err
	}
	var out []*dinit.Record
	for _, en := range entries {
		var r dinit.Record
		if err := json.Unmarshal(en.GetValue(), &r); err != nil {
			return nil, fmt.Errorf("%s: %w", en.GetKey(), err)
		}
		out = append(out, &r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// change is a new version of a service made from its current one.
type change struct {
	spec    dinit.Service
	cause   string
	restart bool
	// template, on a rollback, is the version gone back to: when its
	// instance template differs from the current one, instances that
	// still run it (the old ones of a failed deployment) are kept, not
	// replaced.
	template *dinit.Record
}

// svcChange stores a new version of service name made by makeChange from
// the current one.
func svcChange(ctx context.Context, e *env, st svcState, name string, makeChange func(*dinit.Record) (change, error)) error {
	cur, rev, err := st.record(ctx, name)
	if err != nil {
		return err
	}
	ch, err := makeChange(cur)
	if err != nil {
		return err
	}
	if err := ch.spec.Validate(); err != nil {
		return fmt.Errorf("svc: %s: %w", name, err)
	}
	next := dinit.Next(cur, ch.spec, ch.cause, ch.restart, e.now())
	if t := ch.template; t != nil && cur.Spec.Template() != ch.spec.Template() && t.Spec.Template() == ch.spec.Template() {
		next.TemplateVersion = t.TemplateVersion
	}
	cause := ch.cause
	if err := st.commit(ctx, name, next, true, rev); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: version %d (%s)\n", name, next.Version, cause)
	return nil
}

// applyResult is one service of svc apply, for -o json.
type applyResult struct {
	Name    string       `json:"name"`
	Version int64        `json:"version"`
	Change  string       `json:"change"`
	Plan    []dinit.Step `json:"plan"`
	DryRun  bool         `json:"dryRun,omitempty"`
}

func svcApply(ctx context.Context, e *env, f format, st svcState, svcs []dinit.Service, dryRun bool) error {
	allocs, tasks, err := st.instances(ctx, "")
	if err != nil {
		return err
	}
	var results []applyResult
	for _, s := range svcs {
		var cur dinit.Record
		rev, found, err := st.get(ctx, dinit.SpecKey(s.Name), &cur)
		if err != nil {
			return err
		}
		var prev *dinit.Record
		change := "create"
		if found {
			cur.Spec.Default()
			prev = &cur
			switch {
			case cur.Spec.Template() != s.Template():
				change = "update"
			case cur.Spec.Count() != s.Count():
				change = "scale"
			default:
				b1, _ := json.Marshal(cur.Spec)
				b2, _ := json.Marshal(s)
				change = "unchanged"
				if string(b1) != string(b2) {
					change = "settings"
				}
			}
		}
		next := dinit.Next(prev, s, "apply", false, e.now())
		c := dinit.CountsOf(dinit.Instances(s.Name, allocs, tasks), next.TemplateVersion)
		res := applyResult{Name: s.Name, Version: next.Version, Change: change, Plan: dinit.Plan(&s, c), DryRun: dryRun}
		if change == "unchanged" {
			res.Version, res.Plan = cur.Version, nil
		} else if !dryRun {
			if err := st.commit(ctx, s.Name, next, found, rev); err != nil {
				return err
			}
		}
		results = append(results, res)
	}
	if f == formatJSON {
		return writeGoJSON(e.stdout, map[string]any{"services": results})
	}
	for _, r := range results {
		verb := "applied"
		if r.DryRun {
			verb = "would apply (dry run)"
		}
		if r.Change == "unchanged" {
			fmt.Fprintf(e.stdout, "%s: unchanged (version %d)\n", r.Name, r.Version)
			continue
		}
		fmt.Fprintf(e.stdout, "%s: %s version %d (%s)\n", r.Name, verb, r.Version, r.Change)
		for i, step := range r.Plan {
			fmt.Fprintf(e.stdout, "  step %d: %s\n", i+1, step)
		}
	}
	return nil
}

// svcGet prints service name's current spec, its secretEnv values
// redacted.
func svcGet(ctx context.Context, e *env, f format, st svcState, name string) error {
	rec, _, err := st.record(ctx, name)
	if err != nil {
		return err
	}
	shown := rec.Redacted()
	if f == formatJSON {
		return writeGoJSON(e.stdout, shown)
	}
	b, err := json.Marshal(shown.Spec)
	if err != nil {
		return err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	y, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "# %s: version %d (instances run version %d), %s %s\n", name, rec.Version, rec.TemplateVersion, rec.Cause, rec.Applied.Format(time.RFC3339))
	_, err = e.stdout.Write(y)
	return err
}

// svcRow is one service of svc ls.
type svcRow struct {
	Name       string `json:"name"`
	Version    int64  `json:"version"`
	Instances  int    `json:"instances"`
	Running    int    `json:"running"`
	Ready      int    `json:"ready"`
	Deployment string `json:"deployment,omitempty"`
	Message    string `json:"message,omitempty"`
}

func svcList(ctx context.Context, e *env, f format, st svcState) error {
	specs, err := st.list(ctx, dinit.PrefixSpecs)
	if err != nil {
		return err
	}
	deps := map[string]*dinit.Deployment{}
	if entries, err := st.list(ctx, dinit.PrefixDeployments); err == nil {
		for _, en := range entries {
			var d dinit.Deployment
			if json.Unmarshal(en.GetValue(), &d) == nil {
				deps[dinit.ServiceOfKey(en.GetKey())] = &d
			}
		}
	}
	allocs, tasks, err := st.instances(ctx, "")
	if err != nil {
		return err
	}
	var rows []svcRow
	for _, en := range specs {
		var r dinit.Record
		if err := json.Unmarshal(en.GetValue(), &r); err != nil {
			return fmt.Errorf("%s: %w", en.GetKey(), err)
		}
		r.Spec.Default()
		row := svcRow{Name: r.Spec.Name, Version: r.Version, Instances: r.Spec.Count()}
		for _, in := range dinit.Instances(row.Name, allocs, tasks) {
			if in.Task.GetState() == syscallsv1.TaskState_TASK_STATE_RUNNING {
				row.Running++
			}
			if in.Ready() {
				row.Ready++
			}
		}
		if d := deps[row.Name]; d != nil {
			row.Deployment = d.Status
			if d.Status == dinit.DeploymentRunning && d.Step < len(d.Steps) {
				row.Deployment += fmt.Sprintf(" (step %d/%d)", d.Step+1, len(d.Steps))
			}
			if d.Reason != "" {
				row.Message = d.Reason
			}
		}
		rows = append(rows, row)
	}
	if f == formatJSON {
		return writeGoJSON(e.stdout, map[string]any{"services": rows})
	}
	t := newTable(e.stdout, "NAME", "VERSION", "RUNNING", "READY", "DEPLOYMENT", "MESSAGE")
	for _, r := range rows {
		t.row(r.Name, strconv.FormatInt(r.Version, 10), fmt.Sprintf("%d/%d", r.Running, r.Instances),
			fmt.Sprintf("%d/%d", r.Ready, r.Instances), r.Deployment, oneLine(r.Message))
	}
	return t.flush()
}

// instanceRow is one instance of svc status.
type instanceRow struct {
	Instance   int    `json:"instance"`
	Version    int64  `json:"version"`
	Allocation string `json:"allocation"`
	Task       string `json:"task,omitempty"`
	Agent      string `json:"agent,omitempty"`
	State      string `json:"state"`
	Health     string `json:"health,omitempty"`
	Ready      bool   `json:"ready"`
	Why        string `json:"why,omitempty"`
}

func svcStatus(ctx context.Context, e *env, f format, st svcState, name string) error {
	rec, _, err := st.record(ctx, name)
	if err != nil {
		return err
	}
	var dep dinit.Deployment
	_, hasDep, err := st.get(ctx, dinit.DeploymentKey(name), &dep)
	if err != nil {
		return err
	}
	var status dinit.Status
	if _, _, err := st.get(ctx, dinit.StatusKey(name), &status); err != nil {
		return err
	}
	allocs, tasks, err := st.instances(ctx, name)
	if err != nil {
		return err
	}
	now := e.now()
	var rows []instanceRow
	seen := map[string]bool{}
	for _, in := range dinit.Instances(name, allocs, tasks) {
		row := instanceRow{Instance: in.Index, Version: in.Version, Allocation: in.Alloc.GetId(), Agent: in.Alloc.GetAgentId(),
			State: allocState(in.Alloc.GetState()), Ready: in.Ready()}
		var why []string
		if t := in.Task; t != nil {
			row.Task, row.State = t.GetId(), taskState(t.GetState())
			if t.GetHealthCheck() != nil {
				row.Health = enumName(t.GetHealth().String(), "HEALTH_STATE_")
			}
			if m := t.GetHealthMessage(); m != "" && t.GetHealth() == syscallsv1.HealthState_HEALTH_STATE_UNHEALTHY {
				why = append(why, "check: "+m)
			}
		}
		if r := in.Alloc.GetPendingReason(); r != "" {
			why = append(why, r)
		}
		key := strconv.Itoa(in.Index)
		seen[key] = true
		if is := status.Instances[key]; is != nil && in.Version == rec.TemplateVersion {
			why = append(why, backoffWhy(is, now)...)
		}
		row.Why = strings.Join(why, "; ")
		rows = append(rows, row)
	}
	// Instances waiting for their backoff have no allocation to show.
	keys := make([]string, 0, len(status.Instances))
	for k := range status.Instances {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if seen[k] {
			continue
		}
		if w := backoffWhy(status.Instances[k], now); len(w) > 0 {
			n, _ := strconv.Atoi(k)
			rows = append(rows, instanceRow{Instance: n, Version: rec.TemplateVersion, State: "WAITING", Why: strings.Join(w, "; ")})
		}
	}
	if f == formatJSON {
		out := map[string]any{"name": name, "version": rec.Version, "templateVersion": rec.TemplateVersion, "instances": rec.Spec.Count(),
			"running": rows, "message": status.Message}
		if hasDep {
			out["deployment"] = dep
		}
		return writeGoJSON(e.stdout, out)
	}
	fmt.Fprintf(e.stdout, "Service:     %s\nVersion:     %d (instances run version %d)\nInstances:   %d\n", name, rec.Version, rec.TemplateVersion, rec.Spec.Count())
	if hasDep {
		fmt.Fprintf(e.stdout, "Deployment:  %s of version %d", dep.Status, dep.SpecVersion)
		if dep.Status == dinit.DeploymentRunning && dep.Step < len(dep.Steps) {
			fmt.Fprintf(e.stdout, ", step %d/%d: %s", dep.Step+1, len(dep.Steps), dep.Steps[dep.Step])
		}
		fmt.Fprintln(e.stdout)
		if dep.Reason != "" {
			fmt.Fprintf(e.stdout, "Reason:      %s\n", oneLine(dep.Reason))
		}
	}
	if status.Message != "" {
		fmt.Fprintf(e.stdout, "Not running: %s\n", oneLine(status.Message))
	}
	fmt.Fprintln(e.stdout)
	t := newTable(e.stdout, "INSTANCE", "VERSION", "AGENT", "STATE", "HEALTH", "READY", "ALLOCATION", "TASK", "WHY")
	for _, r := range rows {
		t.row(strconv.Itoa(r.Instance), strconv.FormatInt(r.Version, 10), r.Agent, r.State, r.Health, strconv.FormatBool(r.Ready),
			r.Allocation, r.Task, oneLine(r.Why))
	}
	return t.flush()
}

// backoffWhy is the restart backoff of an instance, for people.
func backoffWhy(is *dinit.InstanceStatus, now time.Time) []string {
	var why []string
	if is.DelayedUntil.After(now) {
		why = append(why, fmt.Sprintf("delayed until %s (failure %d)", is.DelayedUntil.Local().Format(time.TimeOnly), is.Failures))
	}
	if is.LastFailure != "" && is.Failures > 0 {
		why = append(why, "last failure: "+is.LastFailure)
	}
	return why
}
