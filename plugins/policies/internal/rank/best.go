package rank

// Best keeps the n agents with the least keys offered to it (ties by the
// smaller index), in O(log n) per offer that enters and O(1) per offer
// that does not. A policy placing a run of n identical instances only ever
// chooses among the n best agents of the run's start (the agents it has
// placed on plus untouched ones in their order), so it offers every agent
// once and builds its Heap from what Best kept, instead of heaping every
// agent.
//
// The zero value is not usable; make one with NewBest.
type Best struct {
	n     int
	items []int32 // a max-heap: items[0] is the worst kept
	key   []float64
}

// NewBest returns a Best reading keys from key (indexed by agent).
func NewBest(key []float64) *Best { return &Best{key: key} }

// Reset empties b and sets how many agents it keeps.
func (b *Best) Reset(n int) { b.n, b.items = n, b.items[:0] }

// Offer considers agent a, whose key must be set.
func (b *Best) Offer(a int32) {
	if len(b.items) < b.n {
		b.items = append(b.items, a)
		b.up(len(b.items) - 1)
		return
	}
	if b.n == 0 || !b.better(a, b.items[0]) {
		return
	}
	b.items[0] = a
	b.down(0)
}

// Wants reports whether Offer(a) would keep agent a (whose key must be
// set). It is small enough to be inlined: a policy offering every agent
// calls it first, so that the common refusal costs no call (a call is
// dear in a Go wasm guest).
func (b *Best) Wants(a int32) bool {
	if len(b.items) < b.n {
		return true
	}
	if b.n == 0 {
		return false
	}
	w := b.items[0]
	ka, kw := b.key[a], b.key[w]
	return ka < kw || ka == kw && a < w
}

// Agents returns the agents kept, in no particular order; the slice is
// valid until the next Reset.
func (b *Best) Agents() []int32 { return b.items }

// better reports whether a ranks before c.
func (b *Best) better(a, c int32) bool {
	if ka, kc := b.key[a], b.key[c]; ka != kc {
		return ka < kc
	}
	return a < c
}

func (b *Best) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !b.better(b.items[p], b.items[i]) {
			return
		}
		b.items[i], b.items[p] = b.items[p], b.items[i]
		i = p
	}
}

func (b *Best) down(i int) {
	n := len(b.items)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && b.better(b.items[l], b.items[r]) {
			m = r
		}
		if !b.better(b.items[i], b.items[m]) {
			return
		}
		b.items[i], b.items[m] = b.items[m], b.items[i]
		i = m
	}
}
