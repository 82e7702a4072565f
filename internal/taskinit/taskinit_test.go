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
}
