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

func TestNormalizeKernels(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"127.0.0.1:7070", "https://127.0.0.1:7070", false},
		{"10.0.0.1", "https://10.0.0.1:7070", false},
		{"http://k1:80/, k2:7071 ,https://k3", "http://k1:80,https://k2:7071,https://k3:7070", false},
		{"[::1]:9000,[::1]", "https://[::1]:9000,https://[::1]:7070", false},
		{"k1,k1:7070", "https://k1:7070", false},
		{"", "", true},
		{"k1,,k2", "", true},
		{"ftp://k1", "", true},
		{"http://k1/api", "", true},
		{"http://", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := NormalizeKernels(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("NormalizeKernels(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
