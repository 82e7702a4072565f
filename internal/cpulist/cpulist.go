package cpulist

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// MaxCPU is the highest CPU number a Set holds: Linux's largest NR_CPUS
// (8192 CPUs, 0..8191). Bigger numbers are an error.
const MaxCPU = 8191

// MaxLen bounds the length of a list Parse accepts (a list of every
// other CPU up to MaxCPU would be longer; nobody writes one by hand).
const MaxLen = 1024

// ErrSyntax is wrapped by every Parse error.
var ErrSyntax = errors.New("bad cpu list")

// Set is a set of CPU numbers. The zero value is the empty set. A Set is
// a value: methods never change their receiver's backing words in place
// except Add.
type Set struct {
	w []uint64 // bit n%64 of w[n/64] is CPU n; no trailing zero words
}

// Parse reads a CPU list: comma-separated CPU numbers and inclusive ranges
// "a-b" (a <= b), in any order, overlaps allowed, with optional spaces
// around items and a trailing newline as the kernel's files end with. ""
// (or only spaces) is the empty set. Numbers are decimal in [0, MaxCPU];
// the list is at most MaxLen bytes. The stride form "0-7:2/4" is not
// accepted. Errors wrap ErrSyntax and quote the bad item.
func Parse(s string) (Set, error) {
	if len(s) > MaxLen {
		return Set{}, fmt.Errorf("%w: longer than %d bytes", ErrSyntax, MaxLen)
	}
	var set Set
	s = strings.TrimSpace(s)
	if s == "" {
		return set, nil
	}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		lo, hi, isRange := strings.Cut(item, "-")
		a, err := parseCPU(lo)
		if err != nil {
			return Set{}, fmt.Errorf("%w: %q: %v", ErrSyntax, item, err)
		}
		b := a
		if isRange {
			if b, err = parseCPU(hi); err != nil {
				return Set{}, fmt.Errorf("%w: %q: %v", ErrSyntax, item, err)
			}
			if b < a {
				return Set{}, fmt.Errorf("%w: %q: range end below its start", ErrSyntax, item)
			}
		}
		for n := a; n <= b; n++ {
			set.Add(n)
		}
	}
	return set, nil
}

// parseCPU reads one CPU number: decimal digits only (no sign, no spaces
// inside), at most MaxCPU.
func parseCPU(s string) (int, error) {
	if s == "" {
		return 0, errors.New("empty cpu number")
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a cpu number", s)
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > MaxCPU {
		return 0, fmt.Errorf("cpu %s is above %d", s, MaxCPU)
	}
	return n, nil
}

// MustParse is Parse for constants; it panics on error.
func MustParse(s string) Set {
	set, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return set
}

// Add adds CPU n (0 <= n <= MaxCPU; others are ignored).
func (s *Set) Add(n int) {
	if n < 0 || n > MaxCPU {
		return
	}
	for len(s.w) <= n/64 {
		s.w = append(s.w, 0)
	}
	s.w[n/64] |= 1 << (n % 64)
}

// Has reports whether CPU n is in s.
func (s Set) Has(n int) bool {
	return n >= 0 && n/64 < len(s.w) && s.w[n/64]&(1<<(n%64)) != 0
}

// Len is the number of CPUs in s.
func (s Set) Len() int {
	n := 0
	for _, w := range s.w {
		n += bits.OnesCount64(w)
	}
	return n
}

// IsEmpty reports whether s holds no CPU.
func (s Set) IsEmpty() bool { return len(s.w) == 0 }

// Intersect returns the CPUs in both s and o, as a new Set.
func (s Set) Intersect(o Set) Set {
	n := min(len(s.w), len(o.w))
	out := Set{w: make([]uint64, n)}
	for i := range n {
		out.w[i] = s.w[i] & o.w[i]
	}
	out.trim()
	return out
}

// Equal reports whether s and o hold the same CPUs.
func (s Set) Equal(o Set) bool {
	if len(s.w) != len(o.w) {
		return false
	}
	for i := range s.w {
		if s.w[i] != o.w[i] {
			return false
		}
	}
	return true
}

// SubsetOf reports whether every CPU of s is in o.
func (s Set) SubsetOf(o Set) bool { return s.Intersect(o).Equal(s) }

func (s *Set) trim() {
	for len(s.w) > 0 && s.w[len(s.w)-1] == 0 {
		s.w = s.w[:len(s.w)-1]
	}
	if len(s.w) == 0 {
		s.w = nil
	}
}

// String renders s in the canonical list form the kernel writes: ascending,
// runs of three or more as ranges, runs of two as "a-b" too ("0-1,5"), ""
// for the empty set. Parse(s.String()) equals s.
func (s Set) String() string {
	var b strings.Builder
	limit := len(s.w) * 64
	for n := 0; n < limit; n++ {
		if !s.Has(n) {
			continue
		}
		end := n
		for end+1 < limit && s.Has(end+1) {
			end++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(n))
		if end > n {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(end))
		}
		n = end
	}
	return b.String()
}

// Canonical parses s and renders it canonically (see String): "3,1-2" is
// "1-3".
func Canonical(s string) (string, error) {
	set, err := Parse(s)
	if err != nil {
		return "", err
	}
	return set.String(), nil
}
