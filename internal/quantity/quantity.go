// Package quantity parses and formats byte sizes and resource lists as
// operators write them: "64Mi", "18Gi", "512M", "1.5G", and
// "cpus=9,mem=18Gi,disk=100Gi".
//
// It is not a general units library: bytes only, plus the resource list
// syntax shared by dcosd and dcosctl flags.
package quantity

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrSyntax is wrapped by every parse error of this package.
var ErrSyntax = errors.New("invalid quantity")

var suffixes = []struct {
	s string
	m float64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"Pi", 1 << 50},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15},
	{"k", 1e3}, {"B", 1},
}

// ParseBytes parses a byte size: a non-negative number with an optional
// binary (Ki, Mi, Gi, Ti, Pi) or decimal (K, M, G, T, P) suffix. The result
// must fit in an int64; fractions of a byte are rounded down.
func ParseBytes(s string) (int64, error) {
	in := strings.TrimSpace(s)
	mult := 1.0
	for _, sf := range suffixes {
		if strings.HasSuffix(in, sf.s) {
			in, mult = strings.TrimSuffix(in, sf.s), sf.m
			break
		}
	}
	f, err := strconv.ParseFloat(in, 64)
	if err != nil || in == "" || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%w: %q is not a size (e.g. 64Mi, 2Gi, 1000000)", ErrSyntax, s)
	}
	if f < 0 {
		return 0, fmt.Errorf("%w: %q is negative", ErrSyntax, s)
	}
	v := f * mult
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("%w: %q is too large", ErrSyntax, s)
	}
	return int64(v), nil
}

// FormatBytes formats n with the largest binary suffix that keeps at most
// one decimal: 67108864 → "64Mi", 1610612736 → "1.5Gi", 1000 → "1000".
func FormatBytes(n int64) string {
	units := []string{"", "Ki", "Mi", "Gi", "Ti", "Pi"}
	f, i := float64(n), 0
	for i < len(units)-1 && math.Abs(f) >= 1024 {
		f /= 1024
		i++
	}
	if i == 0 {
		return strconv.FormatInt(n, 10)
	}
	return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64) + units[i]
}

// Resources is a parsed resource list. A field is nil when the list does
// not name it.
type Resources struct {
	CPUs      *float64
	MemBytes  *int64
	DiskBytes *int64
}

// ParseResources parses "cpus=9,mem=18Gi,disk=100Gi" (any subset, any
// order). Unknown keys, repeated keys and bad values are errors naming the key.
func ParseResources(s string) (Resources, error) {
	var r Resources
	if strings.TrimSpace(s) == "" {
		return r, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return r, fmt.Errorf("%w: %q: want key=value", ErrSyntax, kv)
		}
		switch k {
		case "cpus":
			if r.CPUs != nil {
				return r, fmt.Errorf("%w: cpus given twice", ErrSyntax)
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
				return r, fmt.Errorf("%w: cpus: %q is not a non-negative number", ErrSyntax, v)
			}
			r.CPUs = &f
		case "mem", "disk":
			if (k == "mem" && r.MemBytes != nil) || (k == "disk" && r.DiskBytes != nil) {
				return r, fmt.Errorf("%w: %s given twice", ErrSyntax, k)
			}
			n, err := ParseBytes(v)
			if err != nil {
				return r, fmt.Errorf("%s: %w", k, err)
			}
			if k == "mem" {
				r.MemBytes = &n
			} else {
				r.DiskBytes = &n
			}
		default:
			return r, fmt.Errorf("%w: unknown resource %q (want cpus, mem, disk)", ErrSyntax, k)
		}
	}
	return r, nil
}
