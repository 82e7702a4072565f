package taskinit

import (
	"slices"
	"testing"
)

func TestArgs(t *testing.T) {
	got := Args(&Spec{UID: 7, GID: 8, Groups: []uint32{9, 10}, PIDNamespace: true, Hidden: []string{"/a", "/b"}, Sandbox: "/a/sb"},
		"/bin/sh", []string{"sh", "-c", "x"})
	want := []string{"dcos-init", "-uid", "7", "-gid", "8", "-groups", "9,10", "-pidns", "-hide", "/a", "-hide", "/b",
		"-sandbox", "/a/sb", "--", "/bin/sh", "sh", "-c", "x"}
	if !slices.Equal(got, want) {
		t.Errorf("Args = %q\nwant %q", got, want)
	}
	got = Args(&Spec{KeepCaps: true}, "/bin/true", []string{"true"})
	want = []string{"dcos-init", "-uid", "0", "-gid", "0", "-groups", "", "-keepcaps", "--", "/bin/true", "true"}
	if !slices.Equal(got, want) {
		t.Errorf("Args = %q\nwant %q", got, want)
	}
}

func TestParseStatus(t *testing.T) {
	for _, tt := range []struct {
		in      string
		started bool
		err     string
		sig     int
	}{
		{in: ""},
		{in: "ok\n", started: true},
		{in: "ok\nsignal 15\n", started: true, sig: 15},
		{in: "err exec /x: permission denied\n", err: "exec /x: permission denied"},
		{in: "o"}, // a partial line
	} {
		started, err, sig := ParseStatus([]byte(tt.in))
		if started != tt.started || err != tt.err || sig != tt.sig {
			t.Errorf("ParseStatus(%q) = %v, %q, %d", tt.in, started, err, sig)
		}
	}
}

func TestEnterArgs(t *testing.T) {
	got := EnterArgs(&EnterSpec{PID: 42, Credentials: &Spec{UID: 7, GID: 8, Groups: []uint32{9}}, Cgroups: []string{"/cg"}, Dir: "/sb"},
		"check", []string{"check", "-v"})
	want := []string{"dcos-init", "-enter", "42", "-uid", "7", "-gid", "8", "-groups", "9", "-cgroup", "/cg", "-sandbox", "/sb", "--", "check", "check", "-v"}
	if !slices.Equal(got, want) {
		t.Errorf("EnterArgs = %q\nwant %q", got, want)
	}
	got = EnterArgs(&EnterSpec{PID: 1, KeepCaps: true}, "/bin/true", []string{"true"})
	want = []string{"dcos-init", "-enter", "1", "-keepcaps", "--", "/bin/true", "true"}
	if !slices.Equal(got, want) {
		t.Errorf("EnterArgs = %q\nwant %q", got, want)
	}
	// A container's root: its capabilities instead of KeepCaps.
	got = EnterArgs(&EnterSpec{PID: 1, KeepCaps: true, Caps: []string{"CAP_KILL", "CAP_CHOWN"}}, "ls", []string{"ls"})
	want = []string{"dcos-init", "-enter", "1", "-caps", "5,0", "--", "ls", "ls"}
	if !slices.Equal(got, want) {
		t.Errorf("EnterArgs = %q\nwant %q", got, want)
	}
}

func TestArgs_Container(t *testing.T) {
	got := Args(&Spec{UID: 0, GID: 0, PIDNamespace: true, KeepCaps: true, Hidden: []string{"/h"}, Sandbox: "/sb", Hostname: "web-1",
		RootFS: "/r", ReadOnlyRoot: true, Dir: "/app", Cgroups: []string{"/cg"},
		Binds: []Bind{{Source: "/sb", Target: "/dcos/sandbox"}, {Source: "/h/hosts", Target: "/etc/hosts", ReadOnly: true}}},
		"nginx", []string{"nginx", "-g", "daemon off;"})
	want := []string{"dcos-init", "-uid", "0", "-gid", "0", "-groups", "", "-pidns", "-hostname", "web-1", "-rootfs", "/r",
		"-bind", "/sb", "/dcos/sandbox", "-robind", "/h/hosts", "/etc/hosts", "-readonly", "-dir", "/app",
		"-caps", "0,1,3,4,5,6,7,8,10,18,31", "-cgroup", "/cg", "--", "nginx", "nginx", "-g", "daemon off;"}
	if !slices.Equal(got, want) {
		t.Errorf("Args = %q\nwant %q", got, want)
	}
	// Not root: no capabilities to keep.
	got = Args(&Spec{UID: 33, GID: 33, PIDNamespace: true, RootFS: "/r", Caps: []string{"CAP_KILL"}}, "sh", []string{"sh"})
	want = []string{"dcos-init", "-uid", "33", "-gid", "33", "-groups", "", "-pidns", "-rootfs", "/r", "--", "sh", "sh"}
	if !slices.Equal(got, want) {
		t.Errorf("Args = %q\nwant %q", got, want)
	}
	got = Args(&Spec{PIDNamespace: true, RootFS: "/r", Caps: []string{}}, "sh", []string{"sh"})
	if i := slices.Index(got, "-caps"); i < 0 || got[i+1] != "" {
		t.Errorf("Args with no capabilities = %q, want -caps \"\"", got)
	}
}

func TestCapNumber(t *testing.T) {
	for _, tt := range []struct {
		in string
		n  int
		ok bool
	}{
		{"CAP_CHOWN", 0, true}, {"chown", 0, true}, {"cap_setfcap", 31, true},
		{"CAP_CHECKPOINT_RESTORE", 40, true}, {"CAP_FLY", 0, false}, {"", 0, false},
	} {
		if n, ok := CapNumber(tt.in); n != tt.n || ok != tt.ok {
			t.Errorf("CapNumber(%q) = %d, %v", tt.in, n, ok)
		}
	}
}
