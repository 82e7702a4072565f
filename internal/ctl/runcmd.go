package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/proto"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// imageDriver is the task driver that runs container images.
const imageDriver = "oci"

// defaultWaitTimeout bounds run's wait for its task to run, like kubectl
// run's --pod-running-timeout.
const defaultWaitTimeout = 5 * time.Minute

func runCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "allocate one instance, launch a task in it and wait until it runs",
		ArgsUsage: "-- CMD [ARGS...] | --image REF [-- ARGS...]",
		Description: `Allocate one instance of --cpus and --mem, launch CMD in it, wait until the
task is RUNNING or has ended, and print the allocation, agent and task ids.
A task that FINISHED exits 0 too (run says so); one that FAILED, was KILLED
or LOST prints "task t-N failed: REASON" and exits 1. Past --wait-timeout
run exits 1 naming the state the task is stuck in (the task goes on).
--detach prints the ids at once, without waiting. -o json prints
{"allocation": ..., "task": ...} with the task as run last saw it.

With --image, the task runs the container image REF with the oci driver
(driver config {"image": REF}, plus "readonly_root": true with --read-only).
As in Kubernetes, ARGS after "--" replace the image's CMD (without them it
runs as built); --entrypoint PATH, or --command with the program as the
first of ARGS, replaces its ENTRYPOINT, and then the image's CMD is not
used.

When the allocation is pending, run prints the kernel's reason, revokes the
pending allocation and exits 1; with --wait it watches until the allocation
is granted and then launches. If the launch fails, or the wait for the
grant is interrupted, the allocation is revoked too, so run never leaves an
allocation without a task behind.

  dcosctl run --cpus 0.5 --mem 64Mi -- sleep 60
  dcosctl run --cpus 0.5 --mem 64Mi --image 127.0.0.1:5000/nginx:test --port http:80
  dcosctl run --cpus 0.5 --mem 64Mi --image REF --entrypoint /bin/sh -- -c 'echo hi'`,
		Flags: append(append(append(allocFlags(false), launchFlags()...), volumeFlags()...),
			&cli.BoolFlag{Name: "wait", Usage: "wait for a pending allocation to be granted", DisableDefaultText: true},
			&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "print the ids once launched, without waiting for the task to run", DisableDefaultText: true},
			&cli.DurationFlag{Name: "wait-timeout", Usage: "`DURATION` to wait for the task to run or end (then exit 1; the task goes on)", Value: defaultWaitTimeout},
			&cli.StringFlag{Name: "image", Usage: "container image `REF` to run (driver oci), e.g. registry.example:5000/nginx:1.22"},
			&cli.BoolFlag{Name: "read-only", Usage: "with --image: the container's root filesystem is read-only", DisableDefaultText: true},
			&cli.StringFlag{Name: "entrypoint", Usage: "with --image: `PATH` in the image to run instead of its entrypoint, with ARGS"},
			&cli.BoolFlag{Name: "command", Usage: "with --image: the first of ARGS is the program to run instead of the image's entrypoint", DisableDefaultText: true},
		),
		Action: func(c *cli.Context) error {
			f, err := outputFormat(c)
			if err != nil {
				return err
			}
			if c.IsSet("wait-timeout") && c.Duration("wait-timeout") <= 0 {
				return usagef("--wait-timeout: want a positive duration, got %s", c.Duration("wait-timeout"))
			}
			if c.Bool("detach") && c.IsSet("wait-timeout") {
				return usagef("run: --wait-timeout goes without --detach")
			}
			areq, err := allocateRequest(c)
			if err != nil {
				return err
			}
			// The allocation id is filled in once granted.
			lreq, err := runLaunchRequest(c, c.Args().Slice())
			if err != nil {
				return err
			}
			if !c.IsSet("ports") {
				areq.Resources.Ports = dynamicPorts(lreq)
			}
			if err := addVolumes(c, areq, lreq); err != nil {
				return err
			}
			k, err := dial(c, e)
			if err != nil {
				return err
			}
			alloc, err := allocateOne(c.Context, k, areq, c.Bool("wait"), e)
			if err != nil {
				return err
			}
			lreq.AllocationId = alloc.GetId()
			res, err := k.Launch(c.Context, connect.NewRequest(lreq))
			if err != nil {
				return fmt.Errorf("%w (%s)", callError("Launch", err), release(c.Context, k, alloc.GetId(), "dcosctl run: launch failed"))
			}
			task := res.Msg.GetTask()
			if task != nil && task.GetAllocationId() == "" {
				task.AllocationId = alloc.GetId()
			}
			var waitErr error
			if !c.Bool("detach") {
				task, waitErr = waitTaskRuns(c.Context, k, task, res.Msg.GetRevision(), c.Duration("wait-timeout"))
				if waitErr != nil && c.Context.Err() != nil {
					fmt.Fprintf(e.stderr, "dcosctl: task %s of allocation %s launched; no longer waiting for it to run\n", task.GetId(), alloc.GetId())
					return waitErr
				}
			}
			if err := printRun(e, f, alloc, task); err != nil {
				return err
			}
			if waitErr != nil {
				return waitErr
			}
			if c.Bool("detach") || f == formatJSON {
				return nil
			}
			if task.GetState() == syscallsv1.TaskState_TASK_STATE_FINISHED {
				_, err = fmt.Fprintf(e.stdout, "task %s finished: %s\n", task.GetId(), reasonOf(task))
			}
			return err
		},
	}
}

// printRun prints what run made: the ids (and ports) as a table, or the
// allocation and task as JSON.
func printRun(e *env, f format, alloc *syscallsv1.Allocation, task *syscallsv1.Task) error {
	if f == formatJSON {
		return writeJSONObject(e.stdout, map[string]proto.Message{"allocation": alloc, "task": task})
	}
	if len(task.GetPorts()) == 0 {
		t := newTable(e.stdout, "ALLOCATION", "AGENT", "TASK")
		t.row(alloc.GetId(), alloc.GetAgentId(), task.GetId())
		return t.flush()
	}
	t := newTable(e.stdout, "ALLOCATION", "AGENT", "TASK", "PORTS")
	t.row(alloc.GetId(), alloc.GetAgentId(), task.GetId(), formatPorts(task.GetPorts()))
	return t.flush()
}

// runLaunchRequest builds run's LaunchRequest: CMD from argv, or with
// --image, the oci driver's config and the overrides of the image's
// entrypoint and CMD (Kubernetes' command and args).
func runLaunchRequest(c *cli.Context, argv []string) (*syscallsv1.LaunchRequest, error) {
	ref := c.String("image")
	if !c.IsSet("image") {
		for _, f := range []string{"read-only", "entrypoint", "command"} {
			if c.IsSet(f) {
				return nil, usagef("--%s goes with --image", f)
			}
		}
		return launchRequest(c, "", argv)
	}
	switch {
	case ref == "" || strings.ContainsAny(ref, " \t\n\x00"):
		return nil, usagef("--image %q: want an image reference such as registry.example:5000/nginx:1.22", ref)
	case c.IsSet("driver") && c.String("driver") != imageDriver:
		return nil, usagef("--image runs with driver %s, not --driver %s", imageDriver, c.String("driver"))
	case c.IsSet("driver-config"):
		return nil, usagef("--image makes the driver config; --driver-config goes without it")
	case c.IsSet("entrypoint") && c.Bool("command"):
		return nil, usagef("--entrypoint and --command both replace the image's entrypoint: give one")
	case c.IsSet("entrypoint") && c.String("entrypoint") == "":
		return nil, usagef("--entrypoint: want a PATH in the image")
	case c.Bool("command") && (len(argv) == 0 || argv[0] == ""):
		return nil, usagef("--command: put the program and its arguments after \"--\"")
	}
	req := &syscallsv1.LaunchRequest{Args: argv}
	switch {
	case c.IsSet("entrypoint"):
		req.Command = c.String("entrypoint")
	case c.Bool("command"):
		req.Command, req.Args = argv[0], argv[1:]
	}
	cfg, err := json.Marshal(imageConfig{Image: ref, ReadonlyRoot: c.Bool("read-only")})
	if err != nil {
		return nil, err
	}
	req, err = launchSpec(c, req)
	if err != nil {
		return nil, err
	}
	req.Driver, req.DriverConfig = imageDriver, string(cfg)
	return req, nil
}

// imageConfig is the oci driver's config that run --image sends.
type imageConfig struct {
	Image        string `json:"image"`
	ReadonlyRoot bool   `json:"readonly_root,omitempty"`
}

// settled reports whether a task in state s is done being started: RUNNING
// or ended.
func settled(s syscallsv1.TaskState) bool {
	return s >= syscallsv1.TaskState_TASK_STATE_RUNNING
}

// waitTaskRuns waits until task, launched at revision after, is RUNNING
// or has ended, and returns it as last seen: with an error naming the
// reason when it ended other than FINISHED, or the state it is stuck in
// when timeout passes. It watches the task's state events from after;
// when the watch breaks, it lists the task afresh and watches again, so a
// kernel that restarts or compacts its history costs a retry, not the
// answer. An error of ListTasks ends the wait.
func waitTaskRuns(ctx context.Context, k syscallsv1connect.KernelClient, task *syscallsv1.Task, after int64, timeout time.Duration) (*syscallsv1.Task, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	id := task.GetId()
	backoff := 100 * time.Millisecond
	for !settled(task.GetState()) {
		if after == 0 {
			// Watching "from now on" could miss the change: list first.
			listed, rev, err := listTask(ctx, k, task)
			if err != nil {
				return task, waitError(ctx, task, timeout, err)
			}
			task, after = listed, rev
			if settled(task.GetState()) {
				break
			}
		}
		var err error
		task, after, err = watchTask(ctx, k, task, after)
		if err != nil {
			return task, waitError(ctx, task, timeout, err)
		}
		if settled(task.GetState()) {
			break
		}
		// The watch ended or broke: list again after a pause.
		after = 0
		select {
		case <-ctx.Done():
			return task, waitError(ctx, task, timeout, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
	if s := task.GetState(); s == syscallsv1.TaskState_TASK_STATE_RUNNING || s == syscallsv1.TaskState_TASK_STATE_FINISHED {
		return task, nil
	}
	return task, fmt.Errorf("task %s failed: %s", id, failReason(task))
}

// watchTask follows the state events of task from revision after until it
// settles or the stream ends, and returns it as last seen with the
// revision seen last. A stream that breaks is not an error (the caller
// lists afresh) unless ctx is done.
func watchTask(ctx context.Context, k syscallsv1connect.KernelClient, task *syscallsv1.Task, after int64) (*syscallsv1.Task, int64, error) {
	stream, err := k.Watch(ctx, connect.NewRequest(&syscallsv1.WatchRequest{
		AfterRevision: after,
		Kinds:         []syscallsv1.EventKind{syscallsv1.EventKind_EVENT_KIND_TASK_STATE},
	}))
	if err != nil {
		if ctx.Err() != nil {
			return task, after, ctx.Err()
		}
		return task, after, nil
	}
	defer stream.Close()
	for stream.Receive() {
		ev := stream.Msg()
		after = max(after, ev.GetRevision())
		if t := ev.GetTask(); t.GetId() == task.GetId() {
			task = t
			if settled(t.GetState()) {
				return task, after, nil
			}
		}
	}
	if ctx.Err() != nil {
		return task, after, ctx.Err()
	}
	return task, after, nil
}

// listTask returns task as ListTasks shows it now, with the list's
// revision.
func listTask(ctx context.Context, k syscallsv1connect.KernelClient, task *syscallsv1.Task) (*syscallsv1.Task, int64, error) {
	res, err := k.ListTasks(ctx, connect.NewRequest(&syscallsv1.ListTasksRequest{AllocationId: task.GetAllocationId()}))
	if err != nil {
		if ctx.Err() != nil {
			return task, 0, ctx.Err()
		}
		return task, 0, callError("ListTasks", err)
	}
	for _, t := range res.Msg.GetTasks() {
		if t.GetId() == task.GetId() {
			return t, res.Msg.GetRevision(), nil
		}
	}
	return task, 0, fmt.Errorf("task %s is not listed in allocation %s any more", task.GetId(), task.GetAllocationId())
}

// waitError says why the wait for task ended early: the timeout, with the
// state it is stuck in, or err.
func waitError(ctx context.Context, task *syscallsv1.Task, timeout time.Duration, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		state := "PENDING"
		if s := task.GetState(); s != syscallsv1.TaskState_TASK_STATE_UNSPECIFIED {
			state = taskState(s)
		}
		msg := fmt.Sprintf("task %s still %s after %s (--wait-timeout)", task.GetId(), state, timeout)
		if r := task.GetReason(); r != "" {
			msg += ": " + r
		}
		return errors.New(msg + `; it was not stopped: see "dcosctl ps", stop it with "dcosctl revoke ` + task.GetId() + `"`)
	}
	return fmt.Errorf("waiting for task %s to run: %w", task.GetId(), err)
}

// failReason is why task ended other than FINISHED: its reason, with the
// state unless FAILED.
func failReason(task *syscallsv1.Task) string {
	r := reasonOf(task)
	if task.GetState() != syscallsv1.TaskState_TASK_STATE_FAILED {
		return taskState(task.GetState()) + ": " + r
	}
	return r
}

// reasonOf is task's reason, or its exit code when the kernel gave none.
func reasonOf(task *syscallsv1.Task) string {
	if r := task.GetReason(); r != "" {
		return r
	}
	return fmt.Sprintf("exit code %d", task.GetExitCode())
}
