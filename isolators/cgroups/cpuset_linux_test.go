//go:build linux

package cgroups

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	cg "github.com/dcos-kernel/dcos/internal/cgroups"
	"github.com/dcos-kernel/dcos/internal/cpulist"
	procfs "github.com/dcos-kernel/dcos/internal/executor/proc"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// procCPUs returns the Cpus_allowed_list of /proc/PID/status.
func procCPUs(t *testing.T, pid int) string {
	t.Helper()
	v, err := procfs.StatusField(pid, "Cpus_allowed_list")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestIsolator_CPUSet: a container's processes run on its cpuset ∩ the
// agent's CPUs (Cpus_allowed_list), the part of a cpuset outside the
// agent's CPUs is dropped, a cpuset that does not meet them at all runs
// the task on every one of them with a warning naming the container, Update
// to "" gives every CPU back, and a cpuset that is not a CPU list is an
// error.
func TestIsolator_CPUSet(t *testing.T) {
	skipUnlessCgroups(t)
	logs := &syncBuffer{}
	i, err := New(Config{Parent: fmt.Sprintf("dcos-test-%d-%d", os.Getpid(), seq.Add(1)),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { checkNoLeftovers(t, i) })
	allowed, err := i.layout.ParentCPUs(i.parent)
	if errors.Is(err, cg.ErrNotSupported) {
		t.Skipf("no cpuset controller: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	last := -1
	for n := range cpulist.MaxCPU + 1 {
		if allowed.Has(n) {
			last = n
		}
	}
	lastCPU := fmt.Sprint(last)
	ctx := context.Background()
	for _, tt := range []struct {
		id, cpuset, want string
		warn             bool
	}{
		{"one", lastCPU, lastCPU, false},
		{"partly-outside", lastCPU + ",8000-8191", lastCPU, false},
		{"disjoint", "8000", allowed.String(), true},
		{"every", "", allowed.String(), false},
	} {
		t.Run(tt.id, func(t *testing.T) {
			li, err := i.Prepare(ctx, tt.id, contract.Resources{CPUs: 0.5, CPUSet: tt.cpuset})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := i.Cleanup(ctx, tt.id); err != nil {
					t.Error(err)
				}
			}()
			p := startIn(t, li.Cgroups, "sleep 30")
			if got := procCPUs(t, p.cmd.Process.Pid); got != tt.want {
				t.Errorf("cpuset %q: Cpus_allowed_list %q, want %q", tt.cpuset, got, tt.want)
			}
			warned := strings.Contains(logs.String(), "container="+tt.id)
			if warned != tt.warn {
				t.Errorf("cpuset %q: warned %v, want %v; log:\n%s", tt.cpuset, warned, tt.warn, logs)
			}
			if tt.cpuset == "" {
				return
			}
			if err := i.Update(ctx, tt.id, contract.Resources{CPUs: 0.5}); err != nil {
				t.Fatal(err)
			}
			if got := procCPUs(t, p.cmd.Process.Pid); got != allowed.String() {
				t.Errorf("after Update without cpuset: Cpus_allowed_list %q, want %q", got, allowed)
			}
		})
	}
	if _, err := i.Prepare(ctx, "bad", contract.Resources{CPUSet: "1-"}); err == nil || !strings.Contains(err.Error(), "cpuset") {
		t.Errorf("Prepare with cpuset \"1-\": %v, want an error naming cpuset", err)
	}
}

// TestIsolator_Recover_noCPUSet: a container whose cgroups lack only the
// cpuset one (made by an agent from before cpusets) is recovered, not
// removed as incomplete, and its process keeps running.
func TestIsolator_Recover_noCPUSet(t *testing.T) {
	a := newIsolator(t)
	ctx := context.Background()
	li, err := a.Prepare(ctx, "old", contract.Resources{CPUs: 1, MemBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	p := startIn(t, li.Cgroups, "sleep 30")
	d := dirOf(t, a, "old", cg.KeyCPUSet)
	if d == "" {
		t.Skip("no v1 cpuset hierarchy: nothing to recover")
	}
	// Move the process out and remove the cpuset cgroup, as an older agent
	// would have left the container.
	if err := os.WriteFile(filepath.Join(filepath.Dir(filepath.Dir(d)), "cgroup.procs"), []byte(fmt.Sprint(p.cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Rmdir(d); err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{Parent: a.parent})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Recover(ctx, []contract.ContainerState{{ContainerID: "old", PID: p.cmd.Process.Pid, Limits: contract.Resources{CPUs: 1, MemBytes: 64 << 20}}}); err != nil {
		t.Fatal(err)
	}
	if u, err := b.Usage(ctx, "old"); err != nil || u.PIDs != 1 {
		t.Fatalf("recovered container: %+v, %v; want its 1 process", u, err)
	}
	if _, err := os.Stat(d); err != nil {
		t.Errorf("cpuset cgroup not re-made: %v", err)
	}
	if err := b.Cleanup(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	if ws := p.wait(t); !ws.Signaled() {
		t.Errorf("process ended with %v after Cleanup, want killed", ws)
	}
	_ = a.Cleanup(ctx, "old")
}
