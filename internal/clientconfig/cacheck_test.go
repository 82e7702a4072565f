package clientconfig

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConfig_CACheck: the fingerprint is the hex SHA-256 of the CA as
// the kernels compute the bundle's; a check is due when never made,
// CACheckInterval after the last, or when the clock went back; the time
// of the last check survives Save and Load, and a config that never
// checked carries no field.
func TestConfig_CACheck(t *testing.T) {
	sum := sha256.Sum256([]byte("PEM"))
	if got := (Config{CA: "PEM"}).CAFingerprint(); got != hex.EncodeToString(sum[:]) {
		t.Errorf("CAFingerprint = %s", got)
	}
	if got := (Config{}).CAFingerprint(); got != "" {
		t.Errorf("CAFingerprint without a CA = %q, want empty", got)
	}
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name    string
		checked time.Time
		now     time.Time
		due     bool
	}{
		{"never checked", time.Time{}, at, true},
		{"just checked", at, at, false},
		{"within the interval", at, at.Add(CACheckInterval - time.Second), false},
		{"interval passed", at, at.Add(CACheckInterval), true},
		{"clock set back", at, at.Add(-time.Minute), true},
	} {
		if got := (Config{CACheckedAt: tt.checked}).CACheckDue(tt.now); got != tt.due {
			t.Errorf("%s: CACheckDue = %v, want %v", tt.name, got, tt.due)
		}
	}
	path := filepath.Join(t.TempDir(), "config.json")
	if err := Save(path, Config{Kernel: "https://k:7070", CA: "PEM"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); strings.Contains(string(b), "ca_checked_at") {
		t.Errorf("a config never checked carries ca_checked_at:\n%s", b)
	}
	if err := Save(path, Config{Kernel: "https://k:7070", CA: "PEM", CACheckedAt: at}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !c.CACheckedAt.Equal(at) {
		t.Errorf("CACheckedAt after Save and Load = %v, want %v", c.CACheckedAt, at)
	}
}
