package clientconfig

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestSaveLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "config.json")
	want := Config{Kernel: "http://127.0.0.1:7070", Token: "secret"}
	if err := Save(p, want); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v err %v, want 0600", st.Mode(), err)
	}
	got, err := Load(p)
	if err != nil || got != want {
		t.Fatalf("Load = %+v, %v; want %+v", got, err, want)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	os.WriteFile(p, []byte("{"), 0o600)
	if _, err := Load(p); err == nil {
		t.Fatal("malformed file: want error")
	}
}
