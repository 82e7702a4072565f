// Command replicated is the tutorial framework of docs/framework-sdk.md:
// it keeps --count copies of --cmd running, labelled app=<--name>. Its
// replicas elect a leader; only the leader allocates, launches and
// revokes, with its fence, from a cache of what the framework owns, so a
// replica that takes over (or restarts) adopts the running tasks instead
// of launching more.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dcos-kernel/dcos/sdk/framework"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// app is one replica's configuration.
type app struct {
	name  string
	count int
	cmd   []string
	res   *pb.Resources
	log   *slog.Logger
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replicated", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kernel := fs.String("kernel", "http://127.0.0.1:7070", "kernel API `URLs`, comma-separated")
	token := fs.String("token", os.Getenv("DCOS_TOKEN"), "framework `token` (default $DCOS_TOKEN)")
	count := fs.Int("count", 1, "copies of the command to keep running")
	cmd := fs.String("cmd", "", "`command` and arguments, split on spaces (no shell)")
	name := fs.String("name", "replicated", "app `name`: the label app=NAME and the election's name")
	ttl := fs.Duration("ttl", 10*time.Second, "leadership lease")
	cpus := fs.Float64("cpus", 0.1, "cpus per copy")
	mem := fs.Int64("mem", 32<<20, "memory bytes per copy")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *count < 0 || strings.TrimSpace(*cmd) == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "replicated: --cmd is required, --count must be >= 0, and no arguments")
		return 2
	}
	a := &app{name: *name, count: *count, cmd: strings.Fields(*cmd), res: &pb.Resources{Cpus: *cpus, MemBytes: *mem},
		log: slog.New(slog.NewTextHandler(stdout, nil))}
	c, err := framework.New(framework.Config{Endpoints: strings.Split(*kernel, ","), Token: *token, Logger: a.log})
	if err != nil {
		fmt.Fprintln(stderr, "replicated:", err)
		return 2
	}
	// Every replica keeps the cache warm, so that a new leader starts from it.
	cache := framework.NewCache(c)
	cacheDone := make(chan struct{})
	go func() { defer close(cacheDone); cache.Run(ctx) }()
	defer func() { <-cacheDone }()
	e := c.NewElector(framework.ElectionConfig{Name: *name, TTL: *ttl})
	err = e.Run(ctx, func(lctx context.Context, fence *pb.Fence) {
		a.log.Info("leading", "candidate", e.Candidate(), "epoch", fence.GetEpoch())
		a.lead(lctx, c.Fenced(fence), cache)
		a.log.Info("no longer leading", "epoch", fence.GetEpoch())
	})
	if err != nil {
		fmt.Fprintln(stderr, "replicated:", err)
		return 1
	}
	return 0
}

// lead reconciles on every change the cache sees until leadership ends.
func (a *app) lead(ctx context.Context, c *framework.Client, cache *framework.Cache) {
	if cache.WaitSynced(ctx) != nil {
		return
	}
	q := framework.NewQueue(framework.QueueConfig{})
	defer cache.Subscribe(func(*pb.Event) { q.Add(a.name) })()
	q.Add(a.name)
	q.Run(ctx, 1, framework.ReconcileFunc(func(ctx context.Context, _ string) (time.Duration, error) {
		return 0, a.reconcile(ctx, c, cache)
	}))
}

// reconcile brings the app to count live copies: it revokes allocations
// whose task ended, launches into granted allocations without a task,
// allocates what is missing and revokes what is too much. It waits for
// the cache to see each of its writes, so that the next pass does not
// act twice on the same gap.
func (a *app) reconcile(ctx context.Context, c *framework.Client, cache *framework.Cache) error {
	tasks := map[string][]*pb.Task{}
	for _, t := range cache.Tasks() {
		tasks[t.GetAllocationId()] = append(tasks[t.GetAllocationId()], t)
	}
	var live []*pb.Allocation
	for _, al := range cache.Allocations() {
		if al.GetLabels()["app"] != a.name {
			continue
		}
		ts := tasks[al.GetId()]
		switch {
		case len(ts) > 0 && allEnded(ts):
			a.log.Info("replacing", "allocation", al.GetId(), "task", ts[0].GetId(), "state", ts[0].GetState(), "reason", ts[0].GetReason())
			if err := revoke(ctx, c, cache, al.GetId(), "task ended"); err != nil {
				return err
			}
			continue
		case len(ts) == 0 && al.GetState() == pb.AllocationState_ALLOCATION_STATE_GRANTED:
			r, err := c.Launch(ctx, &pb.LaunchRequest{AllocationId: al.GetId(), Command: a.cmd[0], Args: a.cmd[1:],
				Labels: map[string]string{"app": a.name}})
			if err != nil {
				return err
			}
			a.log.Info("launched", "task", r.GetTask().GetId(), "allocation", al.GetId())
			if err := waitFor(ctx, func() bool { _, ok := cache.Task(r.GetTask().GetId()); return ok }); err != nil {
				return err
			}
		}
		live = append(live, al)
	}
	if n := a.count - len(live); n > 0 {
		r, err := c.Allocate(ctx, &pb.AllocateRequest{Count: int32(n), Resources: a.res, Labels: map[string]string{"app": a.name}})
		if err != nil {
			return err
		}
		a.log.Info("allocated", "count", n)
		for _, al := range r.GetAllocations() {
			if err := waitFor(ctx, func() bool { _, ok := cache.Allocation(al.GetId()); return ok }); err != nil {
				return err
			}
		}
		return nil
	}
	for _, al := range live[a.count:] { // too many: the last ones by id go
		if err := revoke(ctx, c, cache, al.GetId(), "scaled down"); err != nil {
			return err
		}
	}
	return nil
}

func allEnded(ts []*pb.Task) bool {
	for _, t := range ts {
		if t.GetState() < pb.TaskState_TASK_STATE_FINISHED {
			return false
		}
	}
	return true
}

// revoke takes allocation id back and waits until the cache has dropped it.
func revoke(ctx context.Context, c *framework.Client, cache *framework.Cache, id, why string) error {
	if _, err := c.Revoke(ctx, &pb.RevokeRequest{Id: id, Reason: why}); err != nil {
		return err
	}
	return waitFor(ctx, func() bool { _, ok := cache.Allocation(id); return !ok })
}

// waitFor waits until the cache shows a write of ours (done reports it).
func waitFor(ctx context.Context, done func() bool) error {
	for !done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}
