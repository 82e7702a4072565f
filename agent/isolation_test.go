package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestParseUIDRange(t *testing.T) {
	for _, tt := range []struct {
		in          string
		first, last uint32
		ok          bool
	}{
		{in: DefaultTaskUIDs, first: 1900000000, last: 1900999999, ok: true},
		{in: "5-5", first: 5, last: 5, ok: true},
		{in: "0-10"}, {in: "10-5"}, {in: "5"}, {in: "a-b"}, {in: "1-2147483648"},
	} {
		f, l, err := ParseUIDRange(tt.in)
		if (err == nil) != tt.ok || f != tt.first || l != tt.last {
			t.Errorf("ParseUIDRange(%q) = %d, %d, %v", tt.in, f, l, err)
		}
	}
}

// TestUIDTable_UIDOf: an owner keeps its uid across reloads, two owners
// never share one, a shrunk range reassigns, a full one refuses.
func TestUIDTable_UIDOf(t *testing.T) {
	path := filepath.Join(t.TempDir(), uidsFile)
	u, err := loadUIDs(path, 100, 102)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := u.uidOf("fw-a")
	b, _ := u.uidOf("fw-b")
	if a2, _ := u.uidOf("fw-a"); a != 100 || b != 101 || a2 != a {
		t.Fatalf("uids a=%d b=%d a again=%d, want 100 101 100", a, b, a2)
	}
	u, err = loadUIDs(path, 100, 102) // a restart
	if err != nil {
		t.Fatal(err)
	}
	if a2, _ := u.uidOf("fw-a"); a2 != a {
		t.Errorf("after reload fw-a = %d, want %d", a2, a)
	}
	if c, _ := u.uidOf("fw-c"); c != 102 {
		t.Errorf("fw-c = %d, want 102", c)
	}
	if _, err := u.uidOf("fw-d"); err == nil || !strings.Contains(err.Error(), "taken") {
		t.Errorf("fourth owner in a range of 3: %v, want an error", err)
	}
	u, err = loadUIDs(path, 101, 110) // the range moved: fw-a's 100 is out
	if err != nil {
		t.Fatal(err)
	}
	if a2, _ := u.uidOf("fw-a"); a2 == 100 || a2 == 101 || a2 == 102 {
		t.Errorf("fw-a after the range moved = %d, want a new uid not held by fw-b or fw-c", a2)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm()&0o077 != 0 {
		t.Errorf("%s: %v, %v; want private", path, st.Mode(), err)
	}
}

func TestAgent_TaskIsolation(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	u, _ := loadUIDs(filepath.Join(dir, uidsFile), 1900000000, 1900000009)
	a := &Agent{uids: u, hidden: []string{dir}}
	iso, err := a.taskIsolation(&syscallsv1.Task{Owner: "fw-a"}, "/sb")
	if err != nil || iso.UID != 1900000000 || iso.GID != iso.UID || len(iso.Groups) != 0 || iso.Sandbox != "/sb" || iso.HiddenPaths[0] != dir {
		t.Errorf("default user: %+v, %v", iso, err)
	}
	if iso, err := a.taskIsolation(&syscallsv1.Task{Owner: "fw-a", User: "root"}, "/sb"); err != nil || iso.UID != 0 || iso.GID != 0 {
		t.Errorf("root: %+v, %v", iso, err)
	}
	if iso, err := a.taskIsolation(&syscallsv1.Task{Owner: "fw-a", User: "nobody"}, "/sb"); err != nil || iso.UID != 65534 {
		t.Errorf("nobody: %+v, %v", iso, err)
	}
	if _, err := a.taskIsolation(&syscallsv1.Task{Owner: "fw-a", User: "no-such-user-xyz"}, "/sb"); err == nil {
		t.Error("unknown user: no error")
	}
	if _, err := (&Agent{}).taskIsolation(&syscallsv1.Task{Owner: "fw-a", User: "root"}, "/sb"); err == nil {
		t.Error("a user on an agent without isolation: no error")
	}
}
