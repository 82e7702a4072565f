package logfile

import (
	"strings"
	"testing"
)

func TestParseCursor(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Cursor
		err  string
	}{
		{"1:0", Cursor{Gen: 1}, ""},
		{"0:0", Cursor{}, ""},
		{"1234567:89", Cursor{Gen: 1234567, Off: 89}, ""},
		{"18446744073709551615:9223372036854775807", Cursor{Gen: 1<<64 - 1, Off: 1<<63 - 1}, ""},
		{"", Cursor{}, "GEN:OFF"},
		{"12", Cursor{}, "GEN:OFF"},
		{":1", Cursor{}, "generation"},
		{"1:", Cursor{}, "offset"},
		{"1:-1", Cursor{}, "offset"},
		{"+1:1", Cursor{}, "generation"},
		{"1: 1", Cursor{}, "offset"},
		{"1:2:3", Cursor{}, "offset"},
		{"18446744073709551616:0", Cursor{}, "generation"},
		{"1:9223372036854775808", Cursor{}, "offset"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseCursor(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseCursor(%q) = %s, %v; want error naming %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseCursor(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
			}
		})
	}
}

func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"1:0", "0:0", "999999:10485760", "", ":", "1:-1", "+1:2", "18446744073709551616:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			return
		}
		if c.Off < 0 {
			t.Fatalf("ParseCursor(%q) = %s: negative offset", s, c)
		}
		back, err := ParseCursor(c.String())
		if err != nil || back != c {
			t.Fatalf("round trip of %q: %s -> %s, %v", s, c, back, err)
		}
	})
}
