package wasm

import (
	"bytes"
	"context"
	"encoding/binary"
	"maps"
	"strings"
	"testing"

	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

// TestConverter_AgentCache checks the per-instance cache of converted and
// encoded agents: after each change to the snapshot, the batch the host
// sends equals the one a fresh converter and encoder make, and any change
// to an agent (free resources, labels changed in place or by a new map,
// total, id, the agent set) changes it.
func TestConverter_AgentCache(t *testing.T) {
	s := handSnapshot()
	for i := range s.Agents { // own the maps: the cases change them
		s.Agents[i].Labels = maps.Clone(s.Agents[i].Labels)
	}
	var c converter
	var e policy.Encoder
	// encode returns the batch the host sends, with the header's flags
	// word (offset 48) cleared after checking that its agents-unchanged bit
	// says same: the rest must equal a fresh encoding.
	encode := func(w policy.Wants) (in []byte, same bool) {
		b, same := c.batch(s, w)
		if same {
			in = e.EncodeBatchSameAgents(b)
		} else {
			in = e.EncodeBatch(b)
		}
		if flag := binary.LittleEndian.Uint32(in[48:]) == 1; flag != same {
			t.Fatalf("agents-unchanged flag %v, sameAgents %v", flag, same)
		}
		binary.LittleEndian.PutUint32(in[48:], 0)
		return in, same
	}
	reference := func(w policy.Wants) []byte {
		var c converter
		var e policy.Encoder
		b, _ := c.batch(s, w)
		return e.EncodeBatch(b)
	}
	prev, _ := encode(policy.WantAll)
	prev = bytes.Clone(prev)
	for _, tc := range []struct {
		name     string
		change   func()
		changed  bool // the batch differs from the previous one
		sameWant bool // the converter reports the agents unchanged
	}{
		{"nothing", func() {}, false, true},
		{"free", func() { s.Agents[1].Free.MilliCPU -= 100 }, true, true},
		{"free ports", func() { s.Agents[1].Free.Ports++ }, true, true},
		{"label value in place", func() { s.Agents[0].Labels["zone"] = "z" }, true, false},
		{"nothing again", func() {}, false, true},
		{"label value by a new map", func() {
			s.Agents[0].Labels = map[string]string{"zone": "a", "rack": "r1"}
		}, true, false},
		{"label added", func() { s.Agents[3].Labels = map[string]string{"gpu": "true"} }, true, false},
		{"label key renamed", func() { delete(s.Agents[3].Labels, "gpu"); s.Agents[3].Labels["gpus"] = "true" }, true, false},
		{"label removed", func() { delete(s.Agents[3].Labels, "gpus") }, true, false},
		{"total", func() { s.Agents[2].Total.Mem += 1 << 20 }, true, false},
		{"total ports", func() { s.Agents[2].Total.Ports += 10 }, true, false},
		{"id", func() { s.Agents[2].ID = "a2-new" }, true, false},
		{"agent gone", func() { s.Agents = s.Agents[:3] }, true, false},
		{"free and seed", func() { s.Agents[0].Free.Disk++; s.Seed++ }, true, true},
		{"an allocation without a role", func() {
			s.Allocations = append(s.Allocations, kernel.Granted{ID: "g-2", Agent: 1, Priority: 0, Resources: mib(100, 64)})
		}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.change()
			got, same := encode(policy.WantAll)
			if want := reference(policy.WantAll); !bytes.Equal(got, want) {
				t.Fatalf("cached encoding differs from a fresh one")
			}
			if changed := !bytes.Equal(got, prev); changed != tc.changed {
				t.Fatalf("batch changed = %v, want %v", changed, tc.changed)
			}
			if same != tc.sameWant {
				t.Fatalf("sameAgents = %v, want %v", same, tc.sameWant)
			}
			prev = bytes.Clone(got)
		})
	}
	t.Run("without allocations", func(t *testing.T) {
		got, _ := encode(0)
		if want := reference(0); !bytes.Equal(got, want) {
			t.Fatalf("cached encoding differs from a fresh one")
		}
		var d policy.Decoder
		b, err := d.DecodeBatch(got)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Allocations) != 0 || len(b.Agents) != len(s.Agents) || len(b.Roles) != len(s.Roles) {
			t.Fatalf("decoded %d allocations, %d agents, %d roles", len(b.Allocations), len(b.Agents), len(b.Roles))
		}
	})
}

// TestPolicy_Wants checks dcos_policy_wants: a module that declares it
// reads no optional part gets batches without allocations (wants.wasm
// answers a policy error otherwise), and a module without the export gets
// everything.
func TestPolicy_Wants(t *testing.T) {
	h := newHost(t, HostConfig{})
	p := load(t, h, "wants", "testdata/wants.wasm")
	if w := p.Wants(); w != 0 {
		t.Fatalf("wants.wasm: Wants() = %b, want 0", w)
	}
	s := handSnapshot()
	if len(s.Allocations) == 0 {
		t.Fatal("the snapshot has no allocations to leave out")
	}
	if _, err := p.DryRun(context.Background(), s); err != nil {
		t.Fatalf("wants.wasm got allocations: %v", err)
	}
	if w := load(t, h, "firstfit", "testdata/firstfit.wasm").Wants(); w != policy.WantAll {
		t.Fatalf("firstfit.wasm: Wants() = %b, want %b", w, policy.WantAll)
	}
	// The check in wants.wasm is real: with the allocations it refuses.
	inst, err := p.get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer inst.close(context.Background())
	p.wants = policy.WantAll
	defer func() { p.wants = 0 }()
	if _, err := inst.call(context.Background(), p, s); err == nil || !strings.Contains(err.Error(), "allocations sent") {
		t.Fatalf("wants.wasm given %d allocations: %v, want a policy error", len(s.Allocations), err)
	}
}
