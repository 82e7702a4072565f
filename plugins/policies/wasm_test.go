package policies_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/plugins/policies"
	"github.com/dcos-kernel/dcos/plugins/policies/binpack"
	"github.com/dcos-kernel/dcos/plugins/policies/drf"
	pt "github.com/dcos-kernel/dcos/plugins/policies/internal/policytest"
	"github.com/dcos-kernel/dcos/plugins/policies/priority"
	"github.com/dcos-kernel/dcos/plugins/policies/spread"
	"github.com/dcos-kernel/dcos/plugins/wasm"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

// native is each built-in's Go source: what its module runs.
var native = map[string]policy.Func{
	"binpack":  binpack.Place,
	"drf":      drf.Place,
	"priority": priority.Place,
	"spread":   spread.Place,
}

// testDeadline is generous: the race detector and a shared machine slow
// the host side of a call; the default deadline is not under test here.
const testDeadline = 10 * time.Second

// Modes of loading a built-in: trusted (Host.LoadTrusted, as dcosd loads
// the modules it ships: no per-loop deadline checks) and interruptible
// (Host.Load, as any operator-supplied module).
const (
	trusted       = "trusted"
	interruptible = "interruptible"
)

var builtins struct {
	once sync.Once
	host *wasm.Host
	pols map[string]map[string]*wasm.Policy // mode → name → policy
	err  error
}

// builtin returns the built-in module name loaded in mode in a real wazero
// host shared by the package's tests (each module is compiled once per
// mode and run).
func builtin(t testing.TB, mode, name string) *wasm.Policy {
	t.Helper()
	builtins.once.Do(func() {
		ctx := context.Background()
		h, err := wasm.NewHost(ctx, wasm.HostConfig{Deadline: testDeadline})
		if err != nil {
			builtins.err = err
			return
		}
		builtins.host = h
		builtins.pols = map[string]map[string]*wasm.Policy{trusted: {}, interruptible: {}}
		for _, n := range policies.Names() {
			mod, _ := policies.Builtin(n)
			for mode, load := range map[string]func(context.Context, string, []byte) (*wasm.Policy, error){trusted: h.LoadTrusted, interruptible: h.Load} {
				p, err := load(ctx, n, mod)
				if err != nil {
					builtins.err = fmt.Errorf("load %s (%s): %w", n, mode, err)
					return
				}
				builtins.pols[mode][n] = p
			}
		}
	})
	if builtins.err != nil {
		t.Fatal(builtins.err)
	}
	p := builtins.pols[mode][name]
	if p == nil {
		t.Fatalf("no built-in %q", name)
	}
	return p
}

// run places b with built-in name in wazero, loaded both trusted and
// interruptible, and natively (on the batch the module decodes); it fails
// t unless all three decide the same and the kernel accepts every answer
// without over-committing an agent, and returns the snapshot, the
// module's decision and the kernel's judgement of it.
func run(t *testing.T, name string, b *policy.Batch) (*kernel.Snapshot, *kernel.Decision, *kernel.Judgement) {
	t.Helper()
	s := pt.Snapshot(b)
	want := pt.KernelDecision(pt.Place(t, native[name], pt.Normalize(b)))
	var got *kernel.Decision
	for _, mode := range []string{trusted, interruptible} {
		d, err := builtin(t, mode, name).Place(s)
		if err != nil {
			t.Fatalf("%s in wazero (%s): %v", name, mode, err)
		}
		if diff := pt.DiffDecisions(d, want); diff != "" {
			t.Fatalf("%s: wasm (%s) and native differ: %s", name, mode, diff)
		}
		got = d
	}
	j := kernel.Judge(s, got)
	if len(j.Rejected) > 0 {
		t.Fatalf("%s: the kernel refuses %d answers: %v", name, len(j.Rejected), j.Rejected)
	}
	for i, f := range j.Free {
		if f.MilliCPU < 0 || f.Mem < 0 || f.Disk < 0 || f.Ports < 0 {
			t.Fatalf("%s: agent %d over-committed: %v free", name, i, f)
		}
	}
	return s, got, j
}

// perRole counts placements per role name ("" for none).
func perRole(s *kernel.Snapshot, d *kernel.Decision) map[string]int {
	n := map[string]int{}
	for _, p := range d.Placements {
		n[s.Requests[p.Request].Role]++
	}
	return n
}

// perLabel counts placements per value of an agent label.
func perLabel(s *kernel.Snapshot, d *kernel.Decision, key string) map[string]int {
	n := map[string]int{}
	for _, p := range d.Placements {
		n[s.Agents[p.Agent].Labels[key]]++
	}
	return n
}

// perAgent counts placements per agent, in agent order.
func perAgent(s *kernel.Snapshot, d *kernel.Decision) []int {
	n := make([]int, len(s.Agents))
	for _, p := range d.Placements {
		n[p.Agent]++
	}
	return n
}

// revoked returns the ids of the allocations the kernel accepts to revoke,
// sorted.
func revoked(s *kernel.Snapshot, j *kernel.Judgement) []string {
	var ids []string
	for _, i := range j.Revocations {
		ids = append(ids, s.Allocations[i].ID)
	}
	slices.Sort(ids)
	return ids
}

// TestBuiltin_HandMade runs each built-in module in wazero on the
// hand-made clusters of the native tests and checks the decisions the
// kernel accepts: DRF's shares (the paper's two-user example, weights,
// quota), spread across zone, binpack packing, priority preemption, and
// every built-in keeping a role within its quota.
func TestBuiltin_HandMade(t *testing.T) {
	none := policy.Resources{}
	gib := pt.GiB
	type check func(t *testing.T, s *kernel.Snapshot, d *kernel.Decision, j *kernel.Judgement)
	roles := func(want map[string]int) check {
		return func(t *testing.T, s *kernel.Snapshot, d *kernel.Decision, _ *kernel.Judgement) {
			if got := perRole(s, d); !maps.Equal(got, want) {
				t.Errorf("placed per role = %v, want %v", got, want)
			}
		}
	}
	zones := func(want map[string]int) check {
		return func(t *testing.T, s *kernel.Snapshot, d *kernel.Decision, _ *kernel.Judgement) {
			if got := perLabel(s, d, spread.Label); !maps.Equal(got, want) {
				t.Errorf("placed per zone = %v, want %v", got, want)
			}
		}
	}
	agents := func(want ...int) check {
		return func(t *testing.T, s *kernel.Snapshot, d *kernel.Decision, _ *kernel.Judgement) {
			if got := perAgent(s, d); !slices.Equal(got, want) {
				t.Errorf("placed per agent = %v, want %v", got, want)
			}
		}
	}
	preempts := func(ids ...string) check {
		return func(t *testing.T, s *kernel.Snapshot, d *kernel.Decision, j *kernel.Judgement) {
			if got := revoked(s, j); !slices.Equal(got, ids) {
				t.Errorf("revoked %v, want %v", got, ids)
			}
		}
	}
	never := func(reqs ...int) check {
		return func(t *testing.T, s *kernel.Snapshot, d *kernel.Decision, _ *kernel.Judgement) {
			if !slices.Equal(d.Never, reqs) {
				t.Errorf("never = %v, want %v", d.Never, reqs)
			}
		}
	}
	tests := []struct {
		name   string
		policy string
		build  func(c *pt.Cluster)
		checks []check
	}{{
		// Ghodsi et al. §4: 9 CPUs, 18 GB; A runs <1 CPU, 4 GB> tasks,
		// B <3 CPU, 1 GB>: dominant shares equalise at 2/3 with A 3, B 2.
		name:   "drf/paper two-user example",
		policy: "drf",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(9000, 18*gib))
			a, b := c.Role("A", 1, none), c.Role("B", 1, none)
			c.Request(pt.Req{N: 10, Resources: pt.R(1000, 4*gib), Role: a, Roled: true})
			c.Request(pt.Req{N: 10, Resources: pt.R(3000, 1*gib), Role: b, Roled: true})
		},
		checks: []check{roles(map[string]int{"A": 3, "B": 2})},
	}, {
		name:   "drf/paper example with B's requests first",
		policy: "drf",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(9000, 18*gib))
			a, b := c.Role("A", 1, none), c.Role("B", 1, none)
			c.Request(pt.Req{N: 10, Resources: pt.R(3000, 1*gib), Role: b, Roled: true})
			c.Request(pt.Req{N: 10, Resources: pt.R(1000, 4*gib), Role: a, Roled: true})
		},
		checks: []check{roles(map[string]int{"A": 3, "B": 2})},
	}, {
		name:   "drf/weight 2 gets twice the dominant share",
		policy: "drf",
		build: func(c *pt.Cluster) {
			c.Agents(3, pt.R(10000, 10*gib))
			w, u := c.Role("heavy", 2, none), c.Role("light", 1, none)
			c.Request(pt.Req{N: 30, Resources: pt.R(1000, 1*gib), Role: u, Roled: true})
			c.Request(pt.Req{N: 30, Resources: pt.R(1000, 1*gib), Role: w, Roled: true})
		},
		checks: []check{roles(map[string]int{"heavy": 20, "light": 10})},
	}, {
		name:   "drf/weights with different dominant resources",
		policy: "drf",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(12000, 12*gib))
			cpu, mem := c.Role("cpu", 2, none), c.Role("mem", 1, none)
			c.Request(pt.Req{N: 20, Resources: pt.R(1000, 256*pt.MiB), Role: cpu, Roled: true})
			c.Request(pt.Req{N: 20, Resources: pt.R(250, 1*gib), Role: mem, Roled: true})
		},
		checks: []check{roles(map[string]int{"cpu": 10, "mem": 8})},
	}, {
		name:   "drf/quota caps a role",
		policy: "drf",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(8000, 16*gib))
			q, o := c.Role("capped", 1, pt.R(2000, 0)), c.Role("open", 1, none)
			c.Request(pt.Req{N: 6, Resources: pt.R(1000, 1*gib), Role: q, Roled: true})
			c.Request(pt.Req{N: 6, Resources: pt.R(1000, 1*gib), Role: o, Roled: true})
		},
		checks: []check{roles(map[string]int{"capped": 2, "open": 6}), never()},
	}, {
		name:   "drf/granted usage counts",
		policy: "drf",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(8000, 16*gib))
			a, b := c.Role("A", 1, none), c.Role("B", 1, none)
			c.Grant(0, a, 0, pt.R(4000, 1*gib))
			c.Request(pt.Req{N: 4, Resources: pt.R(1000, 1*gib), Role: a, Roled: true})
			c.Request(pt.Req{N: 4, Resources: pt.R(1000, 1*gib), Role: b, Roled: true})
		},
		checks: []check{roles(map[string]int{"B": 4}), preempts()},
	}, {
		name:   "spread/even across zones of unequal size",
		policy: "spread",
		build: func(c *pt.Cluster) {
			c.Agents(5, pt.R(8000, 16*gib), "zone=a")
			c.Agents(2, pt.R(8000, 16*gib), "zone=b")
			c.Agents(1, pt.R(8000, 16*gib), "zone=c")
			c.Request(pt.Req{N: 9, Resources: pt.R(500, 512*pt.MiB)})
		},
		checks: []check{zones(map[string]int{"a": 3, "b": 3, "c": 3})},
	}, {
		name:   "spread/across agents within a zone",
		policy: "spread",
		build: func(c *pt.Cluster) {
			c.Agents(3, pt.R(8000, 16*gib), "zone=a", "rack=r1")
			c.Agents(3, pt.R(8000, 16*gib), "rack=r2", "zone=b") // labels unsorted: the host sorts them
			c.Request(pt.Req{N: 6, Resources: pt.R(500, 512*pt.MiB)})
		},
		checks: []check{zones(map[string]int{"a": 3, "b": 3}), agents(1, 1, 1, 1, 1, 1)},
	}, {
		name:   "spread/a full zone is skipped",
		policy: "spread",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(1000, 1*gib), "zone=a")
			c.Agents(2, pt.R(8000, 16*gib), "zone=b")
			c.Agents(2, pt.R(8000, 16*gib), "zone=c")
			c.Request(pt.Req{N: 6, Resources: pt.R(500, 512*pt.MiB)})
		},
		checks: []check{zones(map[string]int{"a": 2, "b": 2, "c": 2})},
	}, {
		name:   "spread/groups, priorities and verdicts",
		policy: "spread",
		build: func(c *pt.Cluster) {
			c.Agents(2, pt.R(2000, 4*gib), "zone=a")
			c.Agents(2, pt.R(2000, 4*gib), "zone=b")
			c.Request(pt.Req{N: 4, Resources: pt.R(500, 512*pt.MiB)})                                                                        // group 0, placed after group 1
			c.Request(pt.Req{N: 2, Resources: pt.R(500, 512*pt.MiB), Priority: 1, Constraints: []policy.Constraint{pt.Equals("zone", "a")}}) // first
			c.Request(pt.Req{Resources: pt.R(4000, 1*gib)})                                                                                  // too big: Never
		},
		checks: []check{zones(map[string]int{"a": 4, "b": 2}), never(6)},
	}, {
		name:   "binpack/fills one agent before the next",
		policy: "binpack",
		build: func(c *pt.Cluster) {
			c.Agents(4, pt.R(4000, 8*gib))
			c.Request(pt.Req{N: 6, Resources: pt.R(1000, 2*gib)})
		},
		checks: []check{agents(4, 2, 0, 0)},
	}, {
		name:   "binpack/prefers the fuller agent",
		policy: "binpack",
		build: func(c *pt.Cluster) {
			c.Agents(3, pt.R(4000, 8*gib))
			c.Use(2, pt.R(3000, 6*gib))
			c.Request(pt.Req{N: 2, Resources: pt.R(500, 1*gib)})
		},
		checks: []check{agents(0, 0, 2)},
	}, {
		name:   "binpack/mixed sizes pack into the fewest agents",
		policy: "binpack",
		build: func(c *pt.Cluster) {
			c.Agents(4, pt.R(4000, 4*gib))
			c.Request(pt.Req{N: 2, Resources: pt.R(3000, 3*gib), Priority: 1})
			c.Request(pt.Req{N: 2, Resources: pt.R(1000, 1*gib)})
		},
		checks: []check{agents(2, 2, 0, 0)},
	}, {
		name:   "binpack/constraints and verdicts",
		policy: "binpack",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(4000, 8*gib), "zone=a")
			c.Agent(pt.R(4000, 8*gib), "zone=b")
			c.Request(pt.Req{N: 3, Resources: pt.R(2000, 1*gib), Constraints: []policy.Constraint{pt.Equals("zone", "b")}})
			c.Request(pt.Req{Resources: pt.R(8000, 1*gib)})
			c.Request(pt.Req{Resources: pt.R(1000, 1*gib), Constraints: []policy.Constraint{pt.Equals("zone", "c")}})
		},
		checks: []check{agents(0, 2), never(3, 4)},
	}, {
		name:   "priority/lowest priority first",
		policy: "priority",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(4000, 8*gib))
			c.Grant(0, policy.NoRole, 1, pt.R(2000, gib))
			c.Grant(0, policy.NoRole, 0, pt.R(2000, gib))
			c.Request(pt.Req{Resources: pt.R(2000, gib), Priority: 5})
		},
		checks: []check{preempts("a-1"), agents(1)},
	}, {
		name:   "priority/the agent with the lowest-priority victims",
		policy: "priority",
		build: func(c *pt.Cluster) {
			c.Agents(3, pt.R(2000, 8*gib))
			c.Grant(0, policy.NoRole, 3, pt.R(2000, gib))
			c.Grant(1, policy.NoRole, 1, pt.R(1000, gib))
			c.Grant(1, policy.NoRole, 1, pt.R(1000, gib))
			c.Grant(2, policy.NoRole, 1, pt.R(2000, gib))
			c.Request(pt.Req{Resources: pt.R(2000, gib), Priority: 5})
		},
		checks: []check{preempts("a-3"), agents(0, 0, 1)},
	}, {
		name:   "priority/what a revocation frees serves later requests",
		policy: "priority",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(2000, 8*gib))
			c.Grant(0, policy.NoRole, 0, pt.R(2000, gib))
			c.Request(pt.Req{N: 3, Resources: pt.R(1000, gib), Priority: 5})
		},
		checks: []check{preempts("a-0"), agents(2)},
	}, {
		name:   "priority/never equal or higher priority",
		policy: "priority",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(2000, 8*gib))
			c.Grant(0, policy.NoRole, 5, pt.R(1000, gib))
			c.Grant(0, policy.NoRole, 9, pt.R(1000, gib))
			c.Request(pt.Req{Resources: pt.R(1000, gib), Priority: 5})
		},
		checks: []check{preempts(), agents(0), never()},
	}, {
		name:   "priority/preempts only on agents the constraints admit",
		policy: "priority",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(2000, 8*gib), "zone=a")
			c.Agent(pt.R(2000, 8*gib), "zone=b")
			c.Grant(0, policy.NoRole, 0, pt.R(2000, gib))
			c.Grant(1, policy.NoRole, 1, pt.R(2000, gib))
			c.Request(pt.Req{Resources: pt.R(2000, gib), Priority: 5, Constraints: []policy.Constraint{pt.Equals("zone", "b")}})
		},
		checks: []check{preempts("a-1"), agents(0, 1)},
	}, {
		// Host ports are the scarce dimension in the four below: every
		// agent has cpu and memory to spare, and some have 0 or 1 port.
		name:   "binpack/ports are the scarce dimension",
		policy: "binpack",
		build: func(c *pt.Cluster) {
			c.Agent(pt.RP(16000, 64*gib, 0))
			c.Agent(pt.RP(16000, 64*gib, 1))
			c.Agent(pt.RP(16000, 64*gib, 2))
			c.Request(pt.Req{N: 4, Resources: pt.RP(1000, 1*gib, 1)})
			c.Request(pt.Req{Resources: pt.RP(1000, 1*gib, 0)})
			c.Request(pt.Req{Resources: pt.RP(1000, 1*gib, 3)})
		},
		checks: []check{agents(0, 1, 3), never(5)},
	}, {
		name:   "drf/ports are the scarce dimension",
		policy: "drf",
		build: func(c *pt.Cluster) {
			c.Agent(pt.RP(8000, 16*gib, 0))
			c.Agent(pt.RP(8000, 16*gib, 1))
			a, b := c.Role("A", 1, none), c.Role("B", 1, none)
			c.Request(pt.Req{N: 3, Resources: pt.RP(1000, 1*gib, 1), Role: a, Roled: true})
			c.Request(pt.Req{N: 3, Resources: pt.RP(1000, 1*gib, 0), Role: b, Roled: true})
			c.Request(pt.Req{Resources: pt.RP(1000, 1*gib, 2), Role: b, Roled: true})
		},
		checks: []check{roles(map[string]int{"A": 1, "B": 3}), agents(3, 1), never(6)},
	}, {
		name:   "drf/a ports quota caps a role",
		policy: "drf",
		build: func(c *pt.Cluster) {
			c.Agent(pt.RP(8000, 16*gib, 1000))
			q, o := c.Role("capped", 1, pt.RP(0, 0, 2)), c.Role("open", 1, none)
			c.Request(pt.Req{N: 4, Resources: pt.RP(100, 64*pt.MiB, 1), Role: q, Roled: true})
			c.Request(pt.Req{N: 2, Resources: pt.RP(100, 64*pt.MiB, 1), Role: o, Roled: true})
		},
		checks: []check{roles(map[string]int{"capped": 2, "open": 2}), never()},
	}, {
		name:   "spread/ports are the scarce dimension",
		policy: "spread",
		build: func(c *pt.Cluster) {
			c.Agents(2, pt.RP(8000, 16*gib, 0), "zone=a")
			c.Agent(pt.RP(8000, 16*gib, 1), "zone=b")
			c.Agent(pt.RP(8000, 16*gib, 2), "zone=c")
			c.Request(pt.Req{N: 4, Resources: pt.RP(500, 512*pt.MiB, 1)})
			c.Request(pt.Req{Resources: pt.RP(500, 512*pt.MiB, 3)})
		},
		checks: []check{zones(map[string]int{"b": 1, "c": 2}), never(4)},
	}, {
		name:   "priority/preempts for a port",
		policy: "priority",
		build: func(c *pt.Cluster) {
			c.Agent(pt.RP(8000, 16*gib, 1))
			c.Agent(pt.RP(8000, 16*gib, 0))
			c.Grant(0, policy.NoRole, 0, pt.RP(1000, gib, 1))
			c.Request(pt.Req{N: 2, Resources: pt.RP(1000, gib, 1), Priority: 5})
			c.Request(pt.Req{Resources: pt.RP(1000, gib, 2), Priority: 5})
		},
		checks: []check{preempts("a-0"), agents(1, 0), never(2)},
	}, {
		// A role at its quota gets nothing more while another role is
		// placed, in every built-in (run: the kernel refuses nothing).
		name:   "binpack/a role at its quota gets nothing more",
		policy: "binpack",
		build: func(c *pt.Cluster) {
			c.Agents(2, pt.R(8000, 16*gib))
			q, o := c.Role("capped", 1, pt.R(2000, 0)), c.Role("open", 1, none)
			c.Grant(1, q, 0, pt.R(1000, gib))
			c.Request(pt.Req{N: 3, Resources: pt.R(1000, gib), Role: q, Roled: true})
			c.Request(pt.Req{N: 3, Resources: pt.R(1000, gib), Role: o, Roled: true})
		},
		checks: []check{roles(map[string]int{"capped": 1, "open": 3}), agents(0, 4)},
	}, {
		name:   "spread/a role at its quota gets nothing more",
		policy: "spread",
		build: func(c *pt.Cluster) {
			c.Agents(2, pt.R(8000, 16*gib), "zone=a")
			c.Agents(2, pt.R(8000, 16*gib), "zone=b")
			q, o := c.Role("capped", 1, pt.R(2000, 0)), c.Role("open", 1, none)
			c.Grant(0, q, 0, pt.R(2000, gib))
			c.Request(pt.Req{N: 4, Resources: pt.R(500, 512*pt.MiB), Role: q, Roled: true})
			c.Request(pt.Req{N: 4, Resources: pt.R(500, 512*pt.MiB), Role: o, Roled: true})
		},
		checks: []check{roles(map[string]int{"open": 4}), zones(map[string]int{"a": 2, "b": 2})},
	}, {
		name:   "priority/a role at its quota gets nothing more, and preempts nothing",
		policy: "priority",
		build: func(c *pt.Cluster) {
			c.Agents(2, pt.R(2000, 8*gib))
			q, o := c.Role("capped", 1, pt.R(2000, 0)), c.Role("open", 1, none)
			c.Grant(0, policy.NoRole, 0, pt.R(2000, gib))
			c.Grant(1, q, 0, pt.R(2000, gib))
			c.Request(pt.Req{Resources: pt.R(1000, gib), Priority: 10, Role: q, Roled: true})
			c.Request(pt.Req{Resources: pt.R(1000, gib), Priority: 10, Role: o, Roled: true})
		},
		checks: []check{roles(map[string]int{"open": 1}), preempts("a-0"), agents(1, 0)},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := pt.NewCluster()
			tt.build(c)
			s, d, j := run(t, tt.policy, c.Batch())
			for _, check := range tt.checks {
				check(t, s, d, j)
			}
		})
	}
}

// TestBuiltin_RandomClusters is the property test in real wazero: for a
// fixed set of seeds, every built-in's decision on a random cluster is the
// native one, the kernel refuses none of its answers and no agent is
// over-committed (see run), and the same snapshot gives the same decision.
// The random clusters give a third of their roles a cpu quota, so every
// built-in is held to the kernel's quota check too; heldByQuota shows the
// quotas do hold requests back.
func TestBuiltin_RandomClusters(t *testing.T) {
	sizes := []pt.Size{
		{Agents: 1, Requests: 5, Roles: 1, Allocations: 2},
		{Agents: 7, Requests: 40, Roles: 2, Allocations: 10},
		{Agents: 50, Requests: 300, Roles: 3, Allocations: 120},
		{Agents: 200, Requests: 150, Roles: 4, Allocations: 400},
		{Agents: 30, Requests: 200, Roles: 3, Fill: 0.9}, // busy: priority preempts
		{Agents: 7, Requests: 60, Roles: 2, Allocations: 10, Gangs: 0.5},
		{Agents: 30, Requests: 200, Roles: 3, Fill: 0.8, Gangs: 0.5},
	}
	for _, name := range policies.Names() {
		t.Run(name, func(t *testing.T) {
			var placed, preempted, held, gangsWhole, gangsOut int
			for _, size := range sizes {
				for seed := uint64(1); seed <= 8; seed++ {
					t.Run(fmt.Sprintf("%dx%d/seed=%d", size.Agents, size.Requests, seed), func(t *testing.T) {
						s, d, j := run(t, name, pt.Random(seed, size))
						again, err := builtin(t, trusted, name).Place(s)
						if err != nil {
							t.Fatal(err)
						}
						if diff := pt.DiffDecisions(again, d); diff != "" {
							t.Fatalf("same snapshot, different decision: %s", diff)
						}
						placed += len(j.Placements)
						preempted += len(j.Revocations)
						held += heldByQuota(s, j)
						w, o := gangOutcomes(t, s, j)
						gangsWhole, gangsOut = gangsWhole+w, gangsOut+o
					})
				}
			}
			t.Logf("%s: %d placements, %d preemptions accepted, %d requests held by a quota, %d gangs placed whole, %d left out", name, placed, preempted, held, gangsWhole, gangsOut)
			if placed == 0 || held == 0 || (name == "priority" && preempted == 0) || gangsWhole == 0 || gangsOut == 0 {
				t.Errorf("the random clusters exercise too little: %d placements, %d preemptions, %d held by a quota, %d gangs placed, %d left out", placed, preempted, held, gangsWhole, gangsOut)
			}
		})
	}
}

// gangOutcomes counts the gangs j places (at least their minimum: it
// fails t on a partial one) and those it leaves out entirely.
func gangOutcomes(t *testing.T, s *kernel.Snapshot, j *kernel.Judgement) (whole, out int) {
	t.Helper()
	placed, min := map[string]int32{}, map[string]int32{}
	for i, r := range s.Requests {
		if r.GangMin > 0 {
			min[r.RequestID] = r.GangMin
			if j.Placed[i] {
				placed[r.RequestID]++
			}
		}
	}
	for g, m := range min {
		switch k := placed[g]; {
		case k == 0:
			out++
		case k < m:
			t.Fatalf("gang %s: %d of min %d placed", g, k, m)
		default:
			whole++
		}
	}
	return whole, out
}

// heldByQuota counts the requests j leaves unplaced that their role's
// quota holds: placing one more would take the role, with what j revokes
// and places, past a capped dimension.
func heldByQuota(s *kernel.Snapshot, j *kernel.Judgement) int {
	usage := map[string]kernel.Resources{}
	quota := map[string]kernel.Resources{}
	for _, r := range s.Roles {
		usage[r.Name], quota[r.Name] = r.Usage, r.Quota
	}
	for _, i := range j.Revocations {
		g := s.Allocations[i]
		usage[g.Role] = usage[g.Role].Sub(g.Resources)
	}
	for _, p := range j.Placements {
		r := s.Requests[p.Request]
		usage[r.Role] = usage[r.Role].Add(r.Resources)
	}
	n := 0
	for i, r := range s.Requests {
		q, u := quota[r.Role], usage[r.Role].Add(r.Resources)
		if !j.Placed[i] && (q.MilliCPU > 0 && u.MilliCPU > q.MilliCPU || q.Mem > 0 && u.Mem > q.Mem ||
			q.Disk > 0 && u.Disk > q.Disk || q.Ports > 0 && u.Ports > q.Ports) {
			n++
		}
	}
	return n
}
