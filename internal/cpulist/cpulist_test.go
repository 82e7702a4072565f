package cpulist

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"spaces", "  \n", ""},
		{"single", "0", "0"},
		{"range", "1-3", "1-3"},
		{"pair", "0,1", "0-1"},
		{"mixed", "1-3,5", "1-3,5"},
		{"unordered overlap", "5,2-3,1-2", "1-3,5"},
		{"kernel newline", "0-1\n", "0-1"},
		{"item spaces", " 0 , 2 ", "0,2"},
		{"word boundary", "63-64", "63-64"},
		{"max", "8191", "8191"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if got := s.String(); got != tc.want {
				t.Fatalf("Parse(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestParse_Errors(t *testing.T) {
	long := make([]byte, MaxLen+1)
	for i := range long {
		long[i] = '0'
	}
	for _, in := range []string{"a", "1-", "-1", "3-1", "1,,2", "8192", "0-8192", "1:2", "0-7:2/4", "+1", "1 2", "99999999999999999999", string(long)} {
		t.Run(in, func(t *testing.T) {
			if _, err := Parse(in); !errors.Is(err, ErrSyntax) {
				t.Fatalf("Parse(%q) = %v, want ErrSyntax", in, err)
			}
		})
	}
}

func TestSet_Intersect(t *testing.T) {
	for _, tc := range []struct{ a, b, want string }{
		{"1-3", "0-1", "1"},
		{"1", "0", ""},
		{"0-127", "64-200", "64-127"},
		{"", "0-3", ""},
		{"100", "0-1", ""},
	} {
		got := MustParse(tc.a).Intersect(MustParse(tc.b))
		if got.String() != tc.want || got.IsEmpty() != (tc.want == "") {
			t.Errorf("%q ∩ %q = %q (empty %v), want %q", tc.a, tc.b, got, got.IsEmpty(), tc.want)
		}
	}
	if !MustParse("1").SubsetOf(MustParse("0-1")) || MustParse("2").SubsetOf(MustParse("0-1")) {
		t.Error("SubsetOf wrong")
	}
	if n := MustParse("0-3,64").Len(); n != 5 {
		t.Errorf("Len = %d, want 5", n)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "0", "1-3,5", "0-1\n", "3-1", "0-7:2/4", "8191", "a,b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrSyntax", s, err)
			}
			return
		}
		again, err := Parse(set.String())
		if err != nil || !again.Equal(set) {
			t.Fatalf("Parse(%q).String() = %q does not parse back to the same set: %v", s, set.String(), err)
		}
		if set.IsEmpty() != (set.Len() == 0) {
			t.Fatalf("IsEmpty and Len disagree for %q", s)
		}
	})
}
