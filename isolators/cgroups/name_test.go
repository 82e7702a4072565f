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

// TestV2Parent covers the pure v2 layouts of internal/cgroups/testdata
// (unified.cgroup: a systemd service) and an agent that already moved
// itself into its leaf.
func TestV2Parent(t *testing.T) {
	tests := []struct {
		name, self, parent string
		own, abs           string
	}{
		{"service", "/system.slice/dcosd.service", "dcos-tasks", "/system.slice/dcosd.service", "/system.slice/dcosd.service/dcos-tasks"},
		{"already in the leaf", "/system.slice/dcosd.service/dcos-agent", "dcos-tasks", "/system.slice/dcosd.service", "/system.slice/dcosd.service/dcos-tasks"},
		{"root", "/", "dcos-tasks", "/", "/dcos-tasks"},
		{"nested parent", "/a", "x/y", "/a", "/a/x/y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			own, abs := v2Parent(tt.self, tt.parent)
			if own != tt.own || abs != tt.abs {
				t.Errorf("v2Parent(%q, %q) = %q, %q; want %q, %q", tt.self, tt.parent, own, abs, tt.own, tt.abs)
			}
		})
	}
}
