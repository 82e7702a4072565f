package gang

import "github.com/dcos-kernel/dcos/sdk/policy"

// Place runs f on b and appends to d (which arrives empty) an answer in
// which no gang is partial: every group whose requests carry GangMin > 0
// has at least GangMin of them placed, or none. When f places a gang only
// partly, the first such gang in batch order is left out (its requests
// reported Unplaced, NotNow) and f decides again on the batch without it;
// that repeats, one gang at a time, so a batch of G gangs costs at most
// G+1 calls of f (one when no gang is partial, and exactly f's own cost
// for a batch without gangs). Leaving out one gang at a time, never all
// partial ones at once, keeps a gang that fits only without an earlier,
// larger one from waiting behind it forever.
//
// f must follow policy.Func's contract; Place reads b without modifying
// it, and passes f a batch whose Requests are a subset of b's in order
// (with the same agents, roles and allocations), mapping its indices back.
func Place(b *policy.Batch, d *policy.Decision, f policy.Func) error {
	if !hasGangs(b) {
		return f(b, d)
	}
	out := []bool(nil) // requests of the gangs left out
	var idx []uint32   // sub-batch index → b index
	sub := *b
	for {
		if out != nil {
			sub.Requests, idx = sub.Requests[:0:0], idx[:0]
			for i := range b.Requests {
				if !out[i] {
					sub.Requests = append(sub.Requests, b.Requests[i])
					idx = append(idx, uint32(i))
				}
			}
		}
		d.Reset()
		if err := f(&sub, d); err != nil {
			return err
		}
		if idx != nil {
			for i := range d.Placements {
				d.Placements[i].Request = at(idx, d.Placements[i].Request)
			}
			for i := range d.Unplaced {
				d.Unplaced[i].Request = at(idx, d.Unplaced[i].Request)
			}
		}
		g, ok := firstPartial(b, d)
		if !ok {
			break
		}
		if out == nil {
			out = make([]bool, len(b.Requests))
		}
		for i := range b.Requests {
			if r := &b.Requests[i]; r.GangMin > 0 && r.Group == g {
				out[i] = true
			}
		}
	}
	for i := range out {
		if out[i] {
			d.Unplaced = append(d.Unplaced, policy.Unplaced{Request: uint32(i), Verdict: policy.NotNow})
		}
	}
	return nil
}

// at maps a sub-batch index back; an index out of range (a buggy policy)
// is passed on out of range, for the kernel to refuse.
func at(idx []uint32, i uint32) uint32 {
	if int(i) < len(idx) {
		return idx[i]
	}
	return ^uint32(0)
}

func hasGangs(b *policy.Batch) bool {
	for i := range b.Requests {
		if b.Requests[i].GangMin > 0 {
			return true
		}
	}
	return false
}

// firstPartial returns the group of the first gang, in batch order, that d
// places fewer than GangMin of but more than none.
func firstPartial(b *policy.Batch, d *policy.Decision) (group uint32, ok bool) {
	placed := map[uint32]uint32{}
	for _, p := range d.Placements {
		if int(p.Request) < len(b.Requests) {
			if r := &b.Requests[p.Request]; r.GangMin > 0 {
				placed[r.Group]++
			}
		}
	}
	if len(placed) == 0 {
		return 0, false
	}
	for i := range b.Requests {
		r := &b.Requests[i]
		if k := placed[r.Group]; r.GangMin > 0 && k > 0 && k < r.GangMin {
			return r.Group, true
		}
	}
	return 0, false
}
