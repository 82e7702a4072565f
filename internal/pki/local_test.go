package pki

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/seal"
)

func TestLocal_CreateLoadAndForeignKEK(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	kr, _ := seal.NewKeyring(seal.GenerateKey())
	ca, bundle, created, err := LoadOrCreateLocal(dir, kr, time.Now())
	if err != nil || !created || len(bundle) != 1 {
		t.Fatalf("LoadOrCreateLocal = %v %v %v", created, len(bundle), err)
	}
	key, _ := os.ReadFile(filepath.Join(dir, SealedKeyFile))
	if strings.Contains(string(key), "PRIVATE KEY") || !seal.IsSealed(key) {
		t.Fatal("the CA key is stored in the clear")
	}
	again, _, created, err := LoadOrCreateLocal(dir, kr, time.Now())
	if err != nil || created || again.ID() != ca.ID() {
		t.Fatalf("second LoadOrCreateLocal = %v %v", created, err)
	}
	other, _ := seal.NewKeyring(seal.GenerateKey())
	if _, _, err := LoadLocal(dir, other); err == nil || !strings.Contains(err.Error(), "--kek-file") {
		t.Errorf("a foreign KEK opened the CA: %v", err)
	}
}
