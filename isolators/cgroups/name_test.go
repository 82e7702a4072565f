package cgroups

import (
	"strings"
	"testing"
)

func TestCgroupName(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct{ id, want string }{
		{"web-1", "web-1"},
		{"", ""},
		{"web.1", "web_2e1"},
		{"a_b", "a_5fb"},
		{"a/b", "a_2fb"},
		{"..", "_2e_2e"},
		{"memory.max", "memory_2emax"},
		{"a\nb", "a_0ab"},
		{long, ""}, // checked below
	}
	seen := map[string]string{}
	for _, tt := range tests {
		got := cgroupName(tt.id)
		if tt.id == long {
			if !strings.HasPrefix(got, "h_") || len(got) != 2+64 {
				t.Errorf("cgroupName(long) = %q, want h_ and a SHA-256", got)
			}
		} else if got != tt.want {
			t.Errorf("cgroupName(%q) = %q, want %q", tt.id, got, tt.want)
		}
		if strings.ContainsAny(got, "./\x00\n") {
			t.Errorf("cgroupName(%q) = %q: not a dot-free path element", tt.id, got)
		}
		if prev, ok := seen[got]; ok && got != "" {
			t.Errorf("%q and %q both map to %q", prev, tt.id, got)
		}
		seen[got] = tt.id
	}
}

func FuzzCgroupName(f *testing.F) {
	f.Add("web-1", "web.1")
	f.Add("a_2eb", "a.b")
	f.Fuzz(func(t *testing.T, a, b string) {
		na, nb := cgroupName(a), cgroupName(b)
		if a != b && na == nb && na != "" {
			t.Errorf("%q and %q both map to %q", a, b, na)
		}
		if a != "" && (na == "" || len(na) > maxNameLen || strings.ContainsAny(na, "./\x00\n")) {
			t.Errorf("cgroupName(%q) = %q", a, na)
		}
	})
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{
		512:       "512 B",
		32 << 20:  "32.0 MiB",
		64 << 20:  "64.0 MiB",
		1536:      "1.5 KiB",
		3 << 30:   "3.0 GiB",
		100 << 20: "100.0 MiB",
	} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
