package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/dcos-kernel/dcos/internal/seal"
	"github.com/dcos-kernel/dcos/internal/store"
)

// TestCheckKEK: the first kernel's KEK seals the cluster's canary; a
// kernel with the same file checks quietly, one with another file is
// logged as an error naming the file.
func TestCheckKEK(t *testing.T) {
	e, err := store.StartEmbedded(store.EmbeddedConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	ctx := context.Background()
	raw := seal.GenerateKey()
	first, _ := seal.NewKeyring(raw)
	same, _ := seal.NewKeyring(raw)
	other, _ := seal.NewKeyring(seal.GenerateKey())
	check := func(kek *seal.Keyring, path string) string {
		var buf bytes.Buffer
		checkKEK(ctx, slog.New(slog.NewTextHandler(&buf, nil)), e.Client(), "/dcos/", path, kek)
		return buf.String()
	}
	if out := check(first, "/first/kek"); out != "" {
		t.Errorf("first kernel logged %q", out)
	}
	if out := check(same, "/same/kek"); out != "" {
		t.Errorf("a kernel with the cluster's KEK logged %q", out)
	}
	if out := check(other, "/other/kek"); !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "/other/kek") || !strings.Contains(out, "not this cluster's key-encryption key") {
		t.Errorf("a kernel with another KEK logged %q; want an error naming its file", out)
	}
}
