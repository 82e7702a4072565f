package dinit

import (
	"context"
	"sort"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Subscriber is the part of *framework.Cache that Feed uses.
type Subscriber interface {
	Subscribe(fn func(*pb.Event)) (cancel func())
}

// Enqueuer is the part of *framework.Queue that Feed uses.
type Enqueuer interface {
	Add(key string)
}

// Feed queues, for as long as it is subscribed, the services that events
// concern (KeysOf, and those with instances on an agent that starts or
// stops draining), and every service after a resync notice; it first
// learns which agents drain and queues every service there is
// (AllServices), so that a new leader reconciles everything. cancel
// unsubscribes.
func (c *Controller) Feed(ctx context.Context, sub Subscriber, q Enqueuer) (cancel func(), err error) {
	all := func() error {
		if err := c.refreshDrains(ctx); err != nil {
			return err
		}
		names, err := c.AllServices(ctx)
		for _, n := range names {
			q.Add(n)
		}
		return err
	}
	cancel = sub.Subscribe(func(ev *pb.Event) {
		if ev.GetKind() == pb.EventKind_EVENT_KIND_UNSPECIFIED && ev.GetReason() == "resync" {
			if err := all(); err != nil {
				c.logger().Warn("resync: list services", "err", err)
			}
			return
		}
		for _, k := range KeysOf(ev) {
			q.Add(k)
		}
		for _, k := range c.drainKeys(ev) {
			q.Add(k)
		}
	})
	if err := all(); err != nil {
		cancel()
		return nil, err
	}
	return cancel, nil
}

// AllServices lists every service the init has anything of: a spec, or
// instances the cache shows (a service removed while no init ran still
// has instances to stop), sorted.
func (c *Controller) AllServices(ctx context.Context) ([]string, error) {
	set := map[string]bool{}
	for _, a := range c.Cache.Allocations() {
		if s := ServiceOf(a.GetLabels()); s != "" {
			set[s] = true
		}
	}
	names, err := c.Services(ctx)
	for _, n := range names {
		set[n] = true
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, err
}
