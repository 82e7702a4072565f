package policy

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"unsafe"
)

func sampleBatch() *Batch {
	return &Batch{
		Seed: 42,
		Agents: []Agent{
			{ID: "agent-1", Labels: []Label{{"zone", "a"}, {"rack", "r1"}}, Total: Resources{4000, 8 << 30, 100 << 30, 1000}, Free: Resources{2000, 4 << 30, 50 << 30, 998}},
			{ID: "agent-2", Labels: []Label{{"zone", "b"}}, Total: Resources{2000, 4 << 30, 0, 0}, Free: Resources{2000, 4 << 30, 0, 0}},
			{ID: "agent-3", Total: Resources{1000, 1 << 30, 0, 1}, Free: Resources{0, 0, 0, 1}},
		},
		Requests: []Request{
			{Resources: Resources{500, 64 << 20, 0, 2}, Priority: 10, Role: 1, Group: 0,
				Constraints: []Constraint{{Op: OpIn, Label: "zone", Values: []string{"a", "b"}}, {Op: OpNotEquals, Label: "rack", Values: []string{"r2"}}}},
			{Resources: Resources{1000, 1 << 30, 1 << 20, 0}, Priority: -3, Role: NoRole, Group: 1, GangMin: 1},
		},
		Roles:       []Role{{Name: "web", Weight: 1, Usage: Resources{1000, 1 << 30, 0, 2}}, {Name: "batch", Weight: 2.5, Quota: Resources{8000, 0, 0, 3}}},
		Allocations: []Allocation{{Agent: 0, Role: 0, Priority: 1, Resources: Resources{1000, 1 << 30, 0, 2}}},
		NoRoleUsage: Resources{500, 1 << 20, 0, 1},
	}
}

// normalise makes nil and empty slices compare equal.
func normalise(b *Batch) {
	for i := range b.Agents {
		if len(b.Agents[i].Labels) == 0 {
			b.Agents[i].Labels = nil
		}
	}
	for i := range b.Requests {
		if len(b.Requests[i].Constraints) == 0 {
			b.Requests[i].Constraints = nil
		}
	}
}

func TestBatch_RoundTrip(t *testing.T) {
	want := sampleBatch()
	var e Encoder
	var d Decoder
	for range 2 { // twice: buffers are reused
		got, err := d.DecodeBatch(e.EncodeBatch(want))
		if err != nil {
			t.Fatal(err)
		}
		normalise(got)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
		}
	}
	// Equal strings are stored once.
	enc := e.EncodeBatch(want)
	if n := le.Uint32(enc[44:]); n != uint32(len("agent-1zonearackr1agent-2bagent-3r2webbatch")) {
		t.Fatalf("string table of %d bytes", n)
	}
}

func TestDecision_RoundTrip(t *testing.T) {
	want := &Decision{Placements: []Placement{{0, 1}, {1, 0}}, Revocations: []uint32{0}, Unplaced: []Unplaced{{2, Never}}}
	var got Decision
	if err := DecodeDecision(EncodeDecision(nil, want, nil), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, want) {
		t.Fatalf("got %+v want %+v", got, want)
	}
	err := DecodeDecision(EncodeDecision(nil, want, errors.New("out of ideas")), &got)
	var pe *PolicyError
	if !errors.As(err, &pe) || pe.Msg != "out of ideas" || len(got.Placements) != 0 {
		t.Fatalf("policy error: %v, %+v", err, got)
	}
}

func TestDecodeBatch_Malformed(t *testing.T) {
	var e Encoder
	good := append([]byte(nil), e.EncodeBatch(sampleBatch())...)
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := map[string][]byte{
		"empty":          nil,
		"short":          good[:10],
		"magic":          mutate(func(b []byte) []byte { b[0] ^= 1; return b }),
		"version":        mutate(func(b []byte) []byte { le.PutUint32(b[4:], 1); return b }),
		"v1 magic":       mutate(func(b []byte) []byte { b[3] = '1'; return b }),
		"truncated":      good[:len(good)-1],
		"trailing":       append(append([]byte(nil), good...), 0),
		"huge count":     mutate(func(b []byte) []byte { le.PutUint32(b[16:], 1<<31); return b }),
		"string outside": mutate(func(b []byte) []byte { le.PutUint32(b[batchHeaderSize+64:], 1<<30); return b }),
		"labels outside": mutate(func(b []byte) []byte { le.PutUint32(b[batchHeaderSize+72:], 999); return b }),
		"role outside":   mutate(func(b []byte) []byte { le.PutUint32(b[batchHeaderSize+3*agentSize+36:], 7); return b }),
	}
	var d Decoder
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := d.DecodeBatch(in); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func FuzzDecodeBatch(f *testing.F) {
	var e Encoder
	seed := append([]byte(nil), e.EncodeBatch(sampleBatch())...)
	f.Add(seed)
	f.Add(append([]byte(nil), e.EncodeBatchSameAgents(sampleBatch())...)) // flagged AGENTS_UNCHANGED
	f.Add(append([]byte(nil), e.EncodeBatch(&Batch{})...))
	f.Fuzz(func(t *testing.T, in []byte) {
		// A decoder that holds agents from an earlier batch takes the
		// AGENTS_UNCHANGED path when in has the flag: it must not panic
		// either, whatever in says.
		var reused Decoder
		if _, err := reused.DecodeBatch(seed); err != nil {
			t.Fatal(err)
		}
		_, _ = reused.DecodeBatch(in)
		var d Decoder
		b, err := d.DecodeBatch(in)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to a batch that decodes equal.
		var e2 Encoder
		var d2 Decoder
		b2, err := d2.DecodeBatch(e2.EncodeBatch(b))
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		normalise(b)
		normalise(b2)
		if !reflect.DeepEqual(b, b2) {
			t.Fatalf("re-encode changed the batch")
		}
	})
}

func FuzzDecodeDecision(f *testing.F) {
	f.Add(EncodeDecision(nil, &Decision{Placements: []Placement{{0, 1}}, Revocations: []uint32{3}, Unplaced: []Unplaced{{1, NotNow}}}, nil))
	f.Add(EncodeDecision(nil, &Decision{}, errors.New("x")))
	f.Fuzz(func(t *testing.T, in []byte) {
		var d Decision
		if err := DecodeDecision(in, &d); err != nil {
			return
		}
		var d2 Decision
		if err := DecodeDecision(EncodeDecision(nil, &d, nil), &d2); err != nil || len(d2.Placements) != len(d.Placements) {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

func TestRun_PanicIsPolicyError(t *testing.T) {
	registered = func(*Batch, *Decision) error { panic("oops") }
	t.Cleanup(func() { registered = nil })
	var e Encoder
	var d Decision
	err := DecodeDecision(Run(e.EncodeBatch(sampleBatch())), &d)
	var pe *PolicyError
	if !errors.As(err, &pe) || pe.Msg != "panic: oops" {
		t.Fatalf("got %v", err)
	}
}

// TestEncoder_EncodeBatchSameAgents checks that reusing the agents'
// encoding gives the bytes of a fresh encoding, with the free resources
// (and everything but the agents) of the new batch.
func TestEncoder_EncodeBatchSameAgents(t *testing.T) {
	b := sampleBatch()
	var e Encoder
	_ = e.EncodeBatch(b)
	b.Agents[0].Free.MilliCPU--
	b.Seed++
	b.Requests = b.Requests[:1]
	b.Allocations = nil
	got := e.EncodeBatchSameAgents(b)
	var fresh Encoder
	want := fresh.EncodeBatch(b)
	if le.Uint32(got[48:]) != flagAgentsUnchanged || le.Uint32(want[48:]) != 0 {
		t.Fatalf("flags %#x and %#x, want the agents-unchanged flag on the first only", le.Uint32(got[48:]), le.Uint32(want[48:]))
	}
	le.PutUint32(got[48:], 0)
	if !bytes.Equal(got, want) {
		t.Fatalf("EncodeBatchSameAgents differs from EncodeBatch but for the flag")
	}
	// Another number of agents: a full encoding.
	b.Agents = b.Agents[:1]
	got = e.EncodeBatchSameAgents(b)
	if want := fresh.EncodeBatch(b); !bytes.Equal(got, want) {
		t.Fatalf("EncodeBatchSameAgents with fewer agents differs from EncodeBatch")
	}
}

// TestBatch_LayoutV2 pins the version 2 layout of docs/policy-abi.md:
// the header's magic and version, 32-byte resources with ports last, and
// every record size a multiple of 8.
func TestBatch_LayoutV2(t *testing.T) {
	for name, size := range map[string]int{"agent": agentSize, "request": requestSize, "role": roleSize, "allocation": allocationSize, "constraint": constraintSize, "label": labelSize, "ref": refSize, "header": batchHeaderSize} {
		if size%8 != 0 {
			t.Errorf("%s record of %d bytes is not a multiple of 8", name, size)
		}
	}
	var e Encoder
	b := sampleBatch()
	enc := e.EncodeBatch(b)
	if string(enc[:4]) != "DCP2" || le.Uint32(enc[4:]) != 2 {
		t.Fatalf("header %q version %d, want DCP2 2", enc[:4], le.Uint32(enc[4:]))
	}
	agents := batchHeaderSize
	reqs := agents + len(b.Agents)*agentSize
	roles := reqs + len(b.Requests)*requestSize
	allocs := roles + len(b.Roles)*roleSize
	i64At := func(off int) int64 { return int64(le.Uint64(enc[off:])) }
	for _, f := range []struct {
		what string
		off  int
		want int64
	}{
		{"agent 0 total ports", agents + 24, b.Agents[0].Total.Ports},
		{"agent 0 free ports", agents + 56, b.Agents[0].Free.Ports},
		{"agent 2 free ports", agents + 2*agentSize + 56, b.Agents[2].Free.Ports},
		{"request 0 ports", reqs + 24, b.Requests[0].Resources.Ports},
		{"no-role usage cpu", 64, b.NoRoleUsage.MilliCPU},
		{"no-role usage ports", 88, b.NoRoleUsage.Ports},
		{"request 0 priority", reqs + 32, int64(b.Requests[0].Priority) & 0xffffffff},
		{"role 0 usage ports", roles + 40, b.Roles[0].Usage.Ports},
		{"role 1 quota ports", roles + roleSize + 72, b.Roles[1].Quota.Ports},
		{"allocation 0 ports", allocs + 40, b.Allocations[0].Resources.Ports},
	} {
		got := i64At(f.off)
		if f.what == "request 0 priority" {
			got = int64(le.Uint32(enc[f.off:]))
		}
		if got != f.want {
			t.Errorf("%s at %d = %d, want %d", f.what, f.off, got, f.want)
		}
	}
}

func TestDecodeDecision_OtherVersion(t *testing.T) {
	enc := EncodeDecision(nil, &Decision{}, nil)
	enc[3] = '1' // "DCO1": a version 1 module's answer
	var d Decision
	if err := DecodeDecision(enc, &d); !errors.Is(err, ErrMalformed) || !bytes.Contains([]byte(err.Error()), []byte("another ABI version")) {
		t.Fatalf("err = %v, want ErrMalformed naming another ABI version", err)
	}
}

// TestDecoder_AgentsUnchanged: a decoder given a batch flagged "agents
// unchanged" reuses its agents and reads only their free resources; the
// result equals a fresh decoding of the same batch, equal strings still
// share one address, and without the decoder's own earlier decoding (or
// with other counts) the flag is ignored.
func TestDecoder_AgentsUnchanged(t *testing.T) {
	b := sampleBatch()
	var e Encoder
	var d Decoder
	if got, err := d.DecodeBatch(e.EncodeBatch(b)); err != nil || got.AgentsUnchanged {
		t.Fatalf("first batch: %v, AgentsUnchanged %v", err, got != nil && got.AgentsUnchanged)
	}
	// The next cycle: free resources change, requests and roles differ
	// (so the strings section moves), the agents do not.
	b.Agents[0].Free.Ports--
	b.Agents[2].Free.MilliCPU = 7
	b.Requests = append(b.Requests, Request{Resources: Resources{1, 2, 3, 4}, Role: 0, Group: 2,
		Constraints: []Constraint{{Op: OpEquals, Label: "zone", Values: []string{"b"}}, {Op: OpIn, Label: "brand-new", Values: []string{"x"}}}})
	in := bytes.Clone(e.EncodeBatchSameAgents(b))
	got, err := d.DecodeBatch(in)
	if err != nil {
		t.Fatal(err)
	}
	if !got.AgentsUnchanged {
		t.Fatal("AgentsUnchanged not set on a flagged batch")
	}
	var fresh Decoder
	want, err := fresh.DecodeBatch(in)
	if err != nil {
		t.Fatal(err)
	}
	if want.AgentsUnchanged {
		t.Fatal("a fresh decoder set AgentsUnchanged")
	}
	want.AgentsUnchanged = true
	normalise(got)
	normalise(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("reused agents:\n got %+v\nwant %+v", got, want)
	}
	c := got.Requests[2].Constraints[0]
	if v, _ := got.Agents[1].Label("zone"); c.Values[0] != v || unsafe.StringData(c.Values[0]) != unsafe.StringData(v) {
		t.Fatalf("constraint value %q and label value %q do not share one copy", c.Values[0], v)
	}
	// Fewer agents than decoded before: the flag cannot hold; decoded in full.
	b.Agents = b.Agents[:2]
	in = bytes.Clone(e.EncodeBatch(b))
	le.PutUint32(in[48:], flagAgentsUnchanged)
	if got, err := d.DecodeBatch(in); err != nil || got.AgentsUnchanged || len(got.Agents) != 2 {
		t.Fatalf("flag with other counts: %v, %+v", err, got)
	}
}
