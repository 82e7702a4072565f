//go:build linux

package storage

import (
	"slices"
	"strings"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	tests := []struct {
		line string
		want mountEntry
		ok   bool
	}{
		{`36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`,
			mountEntry{Root: "/mnt1", Point: "/mnt2", FSType: "ext3", Source: "/dev/root"}, true},
		{`40 36 7:0 / /var/lib/dcos/sandboxes/a\040b rw,nosuid,nodev - ext4 /dev/loop0 rw`,
			mountEntry{Root: "/", Point: "/var/lib/dcos/sandboxes/a b", FSType: "ext4", Source: "/dev/loop0"}, true},
		{`41 36 0:5 / /x rw - tmpfs`, mountEntry{}, false},
		{`garbage`, mountEntry{}, false},
		{`1 2 3 4 5 6 - a b`, mountEntry{Root: "4", Point: "5", FSType: "a", Source: "b"}, true},
	}
	for _, tt := range tests {
		got, ok := parseMountinfo(tt.line)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseMountinfo(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add(`36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`)
	f.Add(`40 36 7:0 / /a\040b\134 rw - ext4 /dev/loop0 rw`)
	f.Fuzz(func(t *testing.T, line string) {
		m, ok := parseMountinfo(line)
		if ok && (m.FSType == "" || strings.ContainsAny(m.FSType, " \t")) {
			t.Fatalf("parseMountinfo(%q) = %+v", line, m)
		}
	})
}

func TestMountsUnder(t *testing.T) {
	all := []mountEntry{
		{Point: "/s"}, {Point: "/s/a"}, {Point: "/s/a/b"}, {Point: "/sx"}, {Point: "/s/c"}, {Point: "/s/a"}, {Point: "/t"},
	}
	got := mountsUnder(all, "/s")
	// Deepest first; the later of two stacked mounts at /s/a first (both
	// are unmounted); /sx is not beneath /s.
	want := []string{"/s/a/b", "/s/a", "/s/c", "/s/a", "/s"}
	if !slices.Equal(got, want) {
		t.Errorf("mountsUnder = %v, want %v", got, want)
	}
}
