package agent

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// TestAgent_GiveCABundle: a task gets the cluster's bundle in its
// sandbox, readable by all, named by DCOS_CA_FILE, unless it sets the
// variable itself or the agent has no bundle.
func TestAgent_GiveCABundle(t *testing.T) {
	bundle := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	tests := []struct {
		name   string
		bundle []byte
		env    map[string]string
		want   string // DCOS_CA_FILE afterwards; "sandbox": the sandbox's file
	}{
		{"bundle", bundle, map[string]string{"A": "1"}, "sandbox"},
		{"no env map", bundle, nil, "sandbox"},
		{"task sets its own", bundle, map[string]string{EnvCAFile: "/etc/mine.pem"}, "/etc/mine.pem"},
		{"no bundle", nil, map[string]string{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sandbox := t.TempDir()
			a := &Agent{caBundle: tt.bundle}
			cfg := &contract.TaskConfig{Env: tt.env}
			if err := a.giveCABundle(cfg, sandbox); err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want == "sandbox" {
				want = filepath.Join(sandbox, caFileName)
				b, err := os.ReadFile(want)
				if err != nil || string(b) != string(bundle) {
					t.Errorf("bundle file: %q, %v", b, err)
				}
				if fi, err := os.Stat(want); err != nil || fi.Mode().Perm() != 0o644 {
					t.Errorf("bundle file mode: %v, %v; want 0644", fi, err)
				}
			}
			if got := cfg.Env[EnvCAFile]; got != want {
				t.Errorf("%s = %q, want %q", EnvCAFile, got, want)
			}
		})
	}
}

// TestAgent_SetCABundle: after a CA rotation every running task the
// agent gave a bundle file gets the new bundle in it (by a rename, so a
// task that made the file a symlink cannot have the agent write through
// it), tasks that named their own bundle or removed the file get none,
// and tasks launched afterwards get the new bundle.
func TestAgent_SetCABundle(t *testing.T) {
	oldB := []byte("-----BEGIN CERTIFICATE-----\nOLD\n-----END CERTIFICATE-----\n")
	newB := []byte("-----BEGIN CERTIFICATE-----\nOLD\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nNEW\n-----END CERTIFICATE-----\n")
	a := &Agent{caBundle: oldB, tasks: map[string]*task{}, log: slog.New(slog.DiscardHandler)}
	start := func(id string) string {
		sb := t.TempDir()
		cfg := &contract.TaskConfig{}
		if err := a.giveCABundle(cfg, sb); err != nil {
			t.Fatal(err)
		}
		a.tasks[id] = &task{id: id, sandbox: sb}
		return sb
	}
	given := start("given")
	removed := start("removed")
	if err := os.Remove(filepath.Join(removed, caFileName)); err != nil {
		t.Fatal(err)
	}
	linked := start("linked")
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(linked, caFileName))
	if err := os.Symlink(victim, filepath.Join(linked, caFileName)); err != nil {
		t.Fatal(err)
	}

	a.SetCABundle(newB)

	if b, err := os.ReadFile(filepath.Join(given, caFileName)); err != nil || string(b) != string(newB) {
		t.Errorf("a running task's bundle file: %q, %v; want the new bundle", b, err)
	}
	if fi, err := os.Stat(filepath.Join(given, caFileName)); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("the replaced file's mode: %v, %v; want 0644", fi, err)
	}
	if _, err := os.Lstat(filepath.Join(removed, caFileName)); !os.IsNotExist(err) {
		t.Errorf("a task that removed its bundle file got one back: %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious" {
		t.Errorf("the agent wrote through a task's symlink: the target now holds %q", b)
	}
	if ents, _ := os.ReadDir(given); len(ents) != 1 {
		t.Errorf("the sandbox holds %d entries after the replacement, want only the bundle (no temporary file left)", len(ents))
	}
	later := start("later")
	if b, err := os.ReadFile(filepath.Join(later, caFileName)); err != nil || string(b) != string(newB) {
		t.Errorf("a task launched after the rotation: %q, %v; want the new bundle", b, err)
	}
}
