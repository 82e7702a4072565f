// Package rank holds the ranking and selection structures the built-in
// policies share: an indexed min-heap of agents by score, and a first-fit
// search that remembers where it stopped. They work on agent indices and a
// caller-owned free-resources slice, allocate nothing per step, and order
// ties by agent index so that decisions are deterministic.
//
// It is not for feasibility (package feasible) nor for a policy's own
// rules (which score, which agent set).
package rank

// Heap is an indexed binary min-heap of agent indices ordered by Key[a],
// ties by the smaller index. The caller sets Key[a] before Push or Fix.
// Several heaps may share Key and the position table when each agent is
// in at most one of them (see NewHeaps).
//
// The zero value is not usable; make one with NewHeap or NewHeaps.
type Heap struct {
	items []int32
	key   []float64
	pos   []int32 // agent → index in items + 1; 0 when absent
}

// NewHeap returns an empty heap over agents 0..n-1 with its own key table,
// which it returns.
func NewHeap(n int) (*Heap, []float64) {
	key := make([]float64, n)
	return &Heap{key: key, pos: make([]int32, n)}, key
}

// NewHeaps returns k empty heaps over agents 0..n-1 sharing one key table
// (returned) and one position table: an agent may be in one of them at a
// time.
func NewHeaps(k, n int) ([]Heap, []float64) {
	key, pos := make([]float64, n), make([]int32, n)
	hs := make([]Heap, k)
	for i := range hs {
		hs[i] = Heap{key: key, pos: pos}
	}
	return hs, key
}

// Len returns the number of agents in h.
func (h *Heap) Len() int { return len(h.items) }

// Top returns the agent with the least key; h must not be empty.
func (h *Heap) Top() int32 { return h.items[0] }

// Contains reports whether agent a is in h (or in a heap sharing its
// position table).
func (h *Heap) Contains(a int32) bool { return h.pos[a] != 0 }

// Reset empties h in O(Len).
func (h *Heap) Reset() {
	for _, a := range h.items {
		h.pos[a] = 0
	}
	h.items = h.items[:0]
}

// Append adds agent a without restoring the heap order; call Init after a
// series of Appends. a must not be in h.
func (h *Heap) Append(a int32) {
	h.items = append(h.items, a)
	h.pos[a] = int32(len(h.items))
}

// Init restores the heap order in O(Len).
func (h *Heap) Init() {
	for i := len(h.items)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

// Push adds agent a (not in h) in O(log Len).
func (h *Heap) Push(a int32) {
	h.Append(a)
	h.up(len(h.items) - 1)
}

// Fix restores the order after Key[a] changed; a must be in h.
func (h *Heap) Fix(a int32) {
	i := int(h.pos[a] - 1)
	if !h.down(i) {
		h.up(i)
	}
}

// Remove takes agent a (in h) out of h.
func (h *Heap) Remove(a int32) {
	i := int(h.pos[a] - 1)
	last := len(h.items) - 1
	if i != last {
		h.swap(i, last)
	}
	h.items = h.items[:last]
	h.pos[a] = 0
	if i != last {
		if !h.down(i) {
			h.up(i)
		}
	}
}

func (h *Heap) less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	if ka, kb := h.key[a], h.key[b]; ka != kb {
		return ka < kb
	}
	return a < b
}

func (h *Heap) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.pos[h.items[i]] = int32(i + 1)
	h.pos[h.items[j]] = int32(j + 1)
}

func (h *Heap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

// down sifts item i down and reports whether it moved.
func (h *Heap) down(i int) bool {
	start, n := i, len(h.items)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			break
		}
		h.swap(i, m)
		i = m
	}
	return i > start
}
