//go:build wasip1

// Command goguest is the Go guest of plugins/wasm's tests: a first-fit
// policy on sdk/policy that logs through the host. It is built by TestMain
// with `GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared` and is never
// committed as a binary.
//
// The batch seed selects test behaviours:
//
//	1     decode only: answer an empty decision (benchmarks the codec)
//	666   return an error (a policy error)
//	777   panic (the SDK turns it into a policy error)
//	888   allocate without bound (the Go runtime exits: out of memory)
//	999   place nothing, and log the first 8 bytes of WASI randomness
//	other first fit, logging a summary at info and each request at debug
package main

import (
	"crypto/rand"
	"errors"

	"github.com/dcos-kernel/dcos/sdk/policy"
)

func main() {}

var sink [][]byte

var _ = policy.Register(func(b *policy.Batch, d *policy.Decision) error {
	switch b.Seed {
	case 1:
		return nil
	case 666:
		return errors.New("seed 666 is unlucky")
	case 777:
		panic("seed 777")
	case 888:
		for {
			sink = append(sink, make([]byte, 1<<20))
		}
	case 999:
		var r [8]byte
		_, _ = rand.Read(r[:])
		policy.Logf(policy.LevelInfo, "random %x", r)
		return nil
	}
	free := make([]policy.Resources, len(b.Agents))
	for i := range b.Agents {
		free[i] = b.Agents[i].Free
	}
	for ri := range b.Requests {
		r := &b.Requests[ri]
		placed := false
		for ai := range b.Agents {
			if free[ai].Fits(r.Resources) && r.Feasible(&b.Agents[ai]) {
				free[ai] = free[ai].Sub(r.Resources)
				d.Place(ri, ai)
				placed = true
				if policy.LogEnabled(policy.LevelDebug) {
					policy.Logf(policy.LevelDebug, "request %d on %s", ri, b.Agents[ai].ID)
				}
				break
			}
		}
		if !placed {
			d.Unplaced = append(d.Unplaced, policy.Unplaced{Request: uint32(ri), Verdict: policy.NotNow})
		}
	}
	policy.Logf(policy.LevelInfo, "placed %d of %d requests on %d agents", len(d.Placements), len(b.Requests), len(b.Agents))
	return nil
})
