// Command testisolator is a minimal isolator built only on sdk/plugin, for
// the SDK's own tests. It enforces nothing: it records each container's pid
// and limits, reports the pid's resident memory as usage, and reports an OOM
// limitation when an Update sets a memory limit below that usage.
package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/dcos-kernel/dcos/sdk/plugin"
)

func main() { plugin.ServeIsolator(newIsolator()) }

type container struct {
	pid      int
	limits   plugin.Resources
	watchers []chan plugin.Limitation
}

type isolator struct {
	mu         sync.Mutex
	containers map[string]*container
}

var _ plugin.Isolator = (*isolator)(nil)

func newIsolator() *isolator { return &isolator{containers: map[string]*container{}} }

func (i *isolator) Prepare(_ context.Context, id string, limits plugin.Resources) (*plugin.LaunchInfo, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if _, ok := i.containers[id]; ok {
		return nil, fmt.Errorf("prepare %q: already prepared", id)
	}
	i.containers[id] = &container{limits: limits}
	return &plugin.LaunchInfo{Env: map[string]string{"TEST_ISOLATOR": id}}, nil
}

func (i *isolator) lookup(id string) (*container, error) {
	c, ok := i.containers[id]
	if !ok {
		return nil, fmt.Errorf("container %q: %w", id, plugin.ErrTaskNotFound)
	}
	return c, nil
}

func (i *isolator) Isolate(_ context.Context, id string, pid int) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	c, err := i.lookup(id)
	if err != nil {
		return err
	}
	c.pid = pid
	return nil
}

func (i *isolator) Update(_ context.Context, id string, limits plugin.Resources) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	c, err := i.lookup(id)
	if err != nil {
		return err
	}
	c.limits = limits
	if limits.MemBytes <= 0 || c.pid == 0 {
		return nil
	}
	rss, err := rssBytes(c.pid)
	if err != nil {
		return fmt.Errorf("update %q: %w", id, err)
	}
	if int64(rss) > limits.MemBytes {
		l := plugin.Limitation{ContainerID: id, Reason: plugin.LimitationOOM, At: time.Now(),
			Message: fmt.Sprintf("memory usage %d bytes exceeds limit %d", rss, limits.MemBytes)}
		for _, w := range c.watchers {
			select {
			case w <- l:
			default: // a watcher that does not keep up misses limitations
			}
		}
	}
	return nil
}

func (i *isolator) Usage(_ context.Context, id string) (*plugin.TaskUsage, error) {
	i.mu.Lock()
	c, err := i.lookup(id)
	i.mu.Unlock()
	if err != nil {
		return nil, err
	}
	rss, err := rssBytes(c.pid)
	if err != nil {
		return nil, fmt.Errorf("usage %q: %w", id, err)
	}
	return &plugin.TaskUsage{Timestamp: time.Now(), MemoryRSSBytes: rss, PIDs: 1}, nil
}

func (i *isolator) Watch(ctx context.Context, id string) (<-chan plugin.Limitation, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	c, err := i.lookup(id)
	if err != nil {
		return nil, err
	}
	w := make(chan plugin.Limitation, 8)
	c.watchers = append(c.watchers, w)
	return w, nil
}

func (i *isolator) Cleanup(_ context.Context, id string) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	c, ok := i.containers[id]
	if !ok {
		return nil // idempotent
	}
	for _, w := range c.watchers {
		close(w)
	}
	delete(i.containers, id)
	return nil
}

func (i *isolator) Recover(_ context.Context, states []plugin.ContainerState) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, s := range states {
		if _, ok := i.containers[s.ContainerID]; !ok {
			i.containers[s.ContainerID] = &container{pid: s.PID, limits: s.Limits}
		}
	}
	return nil
}

func rssBytes(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0, err
	}
	var size, rss uint64
	if _, err := fmt.Sscan(string(b), &size, &rss); err != nil {
		return 0, err
	}
	return rss * uint64(os.Getpagesize()), nil
}
