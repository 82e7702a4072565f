//go:build linux

package bridge

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// BenchmarkSetupTeardown measures a bridge-mode Setup (lease persisted,
// namespace, veth pair, address, lo and eth0 up, default route) and its
// Teardown, and reports the median and 99th percentile of each.
func BenchmarkSetupTeardown(b *testing.B) {
	tn := newTestNode(b, testSubnet())
	ctx := context.Background()
	var setups, teardowns []time.Duration
	i := 0
	for b.Loop() {
		id := fmt.Sprint("bench-", i)
		i++
		t0 := time.Now()
		if _, err := tn.d.Setup(ctx, contract.NetworkRequest{ContainerID: id, Mode: contract.NetworkModeBridge}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := tn.d.Teardown(ctx, id); err != nil {
			b.Fatal(err)
		}
		setups = append(setups, t1.Sub(t0))
		teardowns = append(teardowns, time.Since(t1))
	}
	b.ReportMetric(pct(setups, 50), "setup-p50-ms")
	b.ReportMetric(pct(setups, 99), "setup-p99-ms")
	b.ReportMetric(pct(teardowns, 50), "teardown-p50-ms")
	b.ReportMetric(pct(teardowns, 99), "teardown-p99-ms")
}

// pct returns the p-th percentile of ds in milliseconds.
func pct(ds []time.Duration, p int) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[(len(s)-1)*p/100]) / float64(time.Millisecond)
}
