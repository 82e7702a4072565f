package policytest

import (
	"testing"

	"github.com/dcos-kernel/dcos/sdk/policy"
)

// Benchmark measures f on Big(1) two ways: "direct" calls f on the decoded
// batch; "codec" runs the registered policy (which must be f) through
// policy.Run, decoding the batch and encoding the decision as the wasm
// module does. Both report placements per second.
func Benchmark(b *testing.B, f policy.Func) {
	batch := Big(1)
	var e policy.Encoder
	enc := append([]byte(nil), e.EncodeBatch(batch)...)
	var d policy.Decision
	if err := f(batch, &d); err != nil {
		b.Fatal(err)
	}
	if err := Check(batch, &d); err != nil {
		b.Fatal(err)
	}
	placed := len(d.Placements)
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d.Reset()
			if err := f(batch, &d); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(placed)*float64(b.N)/b.Elapsed().Seconds(), "placements/s")
	})
	b.Run("codec", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			policy.Run(enc)
		}
		b.ReportMetric(float64(placed)*float64(b.N)/b.Elapsed().Seconds(), "placements/s")
	})
}
