package wasm

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"google.golang.org/protobuf/proto"

	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/plugins/wasm/internal/pbbench"
	"github.com/dcos-kernel/dcos/sdk/policy"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// bigSnapshot is a cluster of na agents (3 labels each: zone of 10, rack
// of na/20, a unique host name) and nr pending requests (a third with a
// zone constraint, some with IN), 20 roles and na granted allocations.
func bigSnapshot(na, nr int) *kernel.Snapshot {
	s := &kernel.Snapshot{Seed: 42}
	for i := range 20 {
		s.Roles = append(s.Roles, kernel.RoleInfo{Name: fmt.Sprintf("role-%02d", i), Weight: 1, Usage: mib(1000, 1024)})
	}
	for i := range na {
		s.Agents = append(s.Agents, kernel.AgentInfo{
			ID:     fmt.Sprintf("agent-%05d", i),
			Labels: map[string]string{"zone": fmt.Sprintf("zone-%d", i%10), "rack": fmt.Sprintf("rack-%d", i/20), "host": fmt.Sprintf("host-%05d.dc1.example.com", i)},
			Total:  mib(32000, 128<<10),
			Free:   mib(int64(i%4)*8000, int64(i%4)*32<<10),
		})
		s.Allocations = append(s.Allocations, kernel.Granted{ID: fmt.Sprintf("alloc-%d", i), Agent: i, Role: s.Roles[i%20].Name, Priority: int32(i % 3), Resources: mib(8000, 32<<10)})
	}
	for i := range nr {
		r := kernel.Request{ID: fmt.Sprintf("req-%d", i), RequestID: fmt.Sprintf("req%d", i/4), Role: s.Roles[i%20].Name, Priority: int32(i % 5), Resources: mib(500+int64(i%8)*250, 1024+int64(i%8)*512)}
		switch i % 6 {
		case 0, 1:
			r.Constraints = []*pb.Constraint{eq("zone", fmt.Sprintf("zone-%d", i%10))}
		case 2:
			r.Constraints = []*pb.Constraint{in("zone", "zone-1", "zone-2", "zone-3"), notEq("rack", "rack-7")}
		}
		s.Requests = append(s.Requests, r)
	}
	return s
}

// BenchmarkCloseOnContextDone measures what the deadline mechanism costs
// a tight loop (wazero issue #2466): spin.wasm counts down 10M iterations
// in a runtime with and without WithCloseOnContextDone.
func BenchmarkCloseOnContextDone(b *testing.B) {
	const iters = 10_000_000
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("close=%v", on), func(b *testing.B) {
			ctx := context.Background()
			rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCloseOnContextDone(on))
			defer rt.Close(ctx)
			mod, err := rt.Instantiate(ctx, readFile(b, "testdata/spin.wasm"))
			if err != nil {
				b.Fatal(err)
			}
			spin := mod.ExportedFunction("spin")
			cctx, cancel := context.WithTimeout(ctx, time.Hour)
			defer cancel()
			b.ResetTimer()
			for b.Loop() {
				if _, err := spin.Call(cctx, iters); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/iters, "ns/iter")
		})
	}
}

// BenchmarkPlace_Empty is the fixed cost of one call: an empty batch
// through the whole path (convert, encode, dcos_alloc, write, dcos_place,
// read, decode, pool).
func BenchmarkPlace_Empty(b *testing.B) {
	for _, m := range []struct{ name, path string }{{"wat", "testdata/firstfit.wasm"}, {"go", goGuest}} {
		b.Run(m.name, func(b *testing.B) {
			h := newHost(b, HostConfig{})
			p := load(b, h, m.name, m.path)
			s := &kernel.Snapshot{}
			for b.Loop() {
				if _, err := p.Place(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPlace_10kx1k is one cycle on 10,000 agents × 1,000 requests.
// go-decode is the Go guest answering empty after decoding (seed 1): the
// codec's whole cost in wasm. host-encode is the host's share alone.
func BenchmarkPlace_10kx1k(b *testing.B) {
	s := bigSnapshot(10_000, 1_000)
	b.Run("host-encode", func(b *testing.B) {
		var c converter
		var e policy.Encoder
		for b.Loop() {
			e.EncodeBatch(first(c.batch(s, policy.WantAll)))
		}
	})
	b.Run("native-firstfit", func(b *testing.B) {
		for b.Loop() {
			if _, err := (kernel.FirstFit{}).Place(s); err != nil {
				b.Fatal(err)
			}
		}
	})
	h := newHost(b, HostConfig{})
	for _, m := range []struct {
		name, path string
		seed       uint64
	}{{"go-decode", goGuest, 1}, {"go-firstfit", goGuest, 42}, {"wat-firstfit", "testdata/firstfit.wasm", 42}} {
		b.Run(m.name, func(b *testing.B) {
			p := load(b, h, m.name, m.path)
			s := *s
			s.Seed = m.seed
			for b.Loop() {
				if _, err := p.Place(&s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWire_10kx1k compares the ABI's flat layout with protobuf
// (generated code, internal/pbbench) on the same 10k × 1k batch, natively:
// host-side encode and guest-side decode.
func BenchmarkWire_10kx1k(b *testing.B) {
	var c converter
	batch := first(c.batch(bigSnapshot(10_000, 1_000), policy.WantAll))
	var e policy.Encoder
	flat := append([]byte(nil), e.EncodeBatch(batch)...)
	pbuf, err := proto.Marshal(pbbench.FromBatch(batch))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("flat/encode", func(b *testing.B) {
		b.SetBytes(int64(len(flat)))
		for b.Loop() {
			e.EncodeBatch(batch)
		}
	})
	b.Run("flat/decode", func(b *testing.B) {
		b.SetBytes(int64(len(flat)))
		var d policy.Decoder
		for b.Loop() {
			if _, err := d.DecodeBatch(flat); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("protobuf/encode", func(b *testing.B) { // build the messages + marshal
		b.SetBytes(int64(len(pbuf)))
		for b.Loop() {
			if _, err := proto.Marshal(pbbench.FromBatch(batch)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("protobuf/marshal", func(b *testing.B) { // marshal only
		b.SetBytes(int64(len(pbuf)))
		m := pbbench.FromBatch(batch)
		for b.Loop() {
			if _, err := proto.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("protobuf/decode", func(b *testing.B) {
		b.SetBytes(int64(len(pbuf)))
		for b.Loop() {
			var m pbbench.Batch
			if err := proto.Unmarshal(pbuf, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// first returns its first argument.
func first[T any](v T, _ bool) T { return v }
