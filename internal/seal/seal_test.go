package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSeal_RoundTripAndBinding(t *testing.T) {
	r, err := NewKeyring(GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("hunter2-the-password")
	s, err := r.Seal(secret, []byte("tasks/t-1/DB_PASSWORD"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(s, secret) || !IsSealed(s) {
		t.Fatalf("sealed value shows its plaintext or lacks the magic: %q", s)
	}
	got, err := r.Open(s, []byte("tasks/t-1/DB_PASSWORD"))
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := r.Open(s, []byte("tasks/t-2/DB_PASSWORD")); !errors.Is(err, ErrTampered) {
		t.Errorf("Open with another aad: %v, want ErrTampered", err)
	}
	bad := bytes.Clone(s)
	bad[len(bad)-1] ^= 1
	if _, err := r.Open(bad, []byte("tasks/t-1/DB_PASSWORD")); !errors.Is(err, ErrTampered) {
		t.Errorf("Open of an altered value: %v, want ErrTampered", err)
	}
	if _, err := r.Open(secret, nil); !errors.Is(err, ErrNotSealed) {
		t.Errorf("Open of plaintext: %v, want ErrNotSealed", err)
	}
	// Two seals of one value differ (random nonces).
	s2, _ := r.Seal(secret, nil)
	s3, _ := r.Seal(secret, nil)
	if bytes.Equal(s2, s3) {
		t.Error("two seals of one value are equal")
	}
}

func TestSeal_OtherKeyAndRotation(t *testing.T) {
	oldKey, newKey := GenerateKey(), GenerateKey()
	old, _ := NewKeyring(oldKey)
	s, err := old.Seal([]byte("v"), nil)
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := NewKeyring(GenerateKey())
	if _, err := foreign.Open(s, nil); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("a foreign keyring opened it: %v, want ErrUnknownKey", err)
	}
	// Rotation: the new key is primary, the old one still opens.
	rotated, _ := NewKeyring(newKey, oldKey)
	if got, err := rotated.Open(s, nil); err != nil || string(got) != "v" {
		t.Fatalf("rotated keyring: %q, %v", got, err)
	}
	s2, _ := rotated.Seal([]byte("w"), nil)
	if _, err := old.Open(s2, nil); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("the old keyring opened a value of the new primary: %v", err)
	}
	if rotated.Primary().ID() == old.Primary().ID() {
		t.Error("two keys share an id")
	}
}

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek")
	r, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("LoadOrCreate = %v, %v", created, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	s, _ := r.Seal([]byte("x"), nil)
	r2, created, err := LoadOrCreate(path)
	if err != nil || created {
		t.Fatalf("second LoadOrCreate = %v, %v", created, err)
	}
	if got, err := r2.Open(s, nil); err != nil || string(got) != "x" {
		t.Fatalf("reloaded keyring: %q, %v", got, err)
	}
	os.Chmod(path, 0o644)
	if _, err := LoadKeyring(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a world-readable KEK file was accepted: %v", err)
	}
	os.Chmod(path, 0o600)
	os.WriteFile(path, []byte("kek1:notbase64!!\n"), 0o600)
	if _, err := LoadKeyring(path); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a bad key line: %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	r, _ := NewKeyring(GenerateKey())
	s, _ := r.Seal([]byte("value"), []byte("aad"))
	f.Add(s)
	f.Add([]byte("dcs1"))
	f.Add([]byte("dcs1\x10abc"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pt, err := r.Open(b, []byte("aad"))
		if err == nil && !bytes.Equal(b, s) && string(pt) != "value" {
			t.Fatalf("opened a value nobody sealed: %q", pt)
		}
	})
}
