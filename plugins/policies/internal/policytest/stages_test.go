package policytest_test

import (
	"bytes"
	"testing"

	"github.com/dcos-kernel/dcos/plugins/policies/binpack"
	"github.com/dcos-kernel/dcos/plugins/policies/drf"
	"github.com/dcos-kernel/dcos/plugins/policies/internal/feasible"
	pt "github.com/dcos-kernel/dcos/plugins/policies/internal/policytest"
	"github.com/dcos-kernel/dcos/plugins/policies/priority"
	"github.com/dcos-kernel/dcos/plugins/policies/spread"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

// BenchmarkStage times the stages of a built-in's cycle on pt.Big(1), so
// that the same code can be timed natively and in wasm, where the policy
// runs (docs/benchmarks.md, issue 3):
//
//	go test ./plugins/policies/internal/policytest -run '^$' -bench Stage
//	GOOS=wasip1 GOARCH=wasm go test -c -o stages.wasm ./plugins/policies/internal/policytest
//	go build -o wazero github.com/tetratelabs/wazero/cmd/wazero
//	./wazero run -env GOGC=off stages.wasm -test.run '^$' -test.bench Stage
//
// decode/all is the SDK decoding the batch with its granted allocations
// (what priority gets), decode/no-allocations without them (binpack, drf,
// spread), decode/agents-unchanged the same flagged AGENTS_UNCHANGED (as
// between most cycles: only free resources are read); feasible is the
// feasibility stage every built-in starts with; each policy runs on the
// decoded batch; encode-decision encodes drf's answer.
func BenchmarkStage(b *testing.B) {
	batch := pt.Big(1)
	noAllocs := *batch
	noAllocs.Allocations = nil
	var e policy.Encoder
	all := bytes.Clone(e.EncodeBatch(batch))
	lean := bytes.Clone(e.EncodeBatch(&noAllocs))
	same := bytes.Clone(e.EncodeBatchSameAgents(&noAllocs))
	for _, c := range []struct {
		name string
		in   [][]byte // decoded in turn
	}{{"all", [][]byte{all}}, {"no-allocations", [][]byte{lean}}, {"agents-unchanged", [][]byte{same}}} {
		b.Run("decode/"+c.name, func(b *testing.B) {
			var d policy.Decoder
			if _, err := d.DecodeBatch(lean); err != nil { // the agents the flag refers to
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := d.DecodeBatch(c.in[0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	var dec policy.Decoder
	decoded, err := dec.DecodeBatch(all)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("feasible", func(b *testing.B) {
		for b.Loop() {
			s := feasible.New(decoded)
			for set := range s.Len() {
				s.Agents(int32(set))
			}
		}
	})
	var d policy.Decision
	for _, p := range []struct {
		name string
		f    policy.Func
	}{{"binpack", binpack.Place}, {"drf", drf.Place}, {"priority", priority.Place}, {"spread", spread.Place}} {
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				d.Reset()
				if err := p.f(decoded, &d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	var out []byte
	d.Reset()
	_ = drf.Place(decoded, &d)
	b.Run("encode-decision", func(b *testing.B) {
		for b.Loop() {
			out = policy.EncodeDecision(out[:0], &d, nil)
		}
	})
}
