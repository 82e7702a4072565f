package framework

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// rotatingKernel is kerneltest.Rotating with this test's rotate and
// writeBundle.
type rotatingKernel struct{ *kerneltest.Rotating }

func startRotatingKernel(t *testing.T) rotatingKernel {
	return rotatingKernel{kerneltest.StartRotating(t, nil)}
}

// rotate rotates the CA with the shortest overlap a kernel accepts.
func (rk rotatingKernel) rotate(t *testing.T) {
	t.Helper()
	if _, err := rk.Auth.Rotate(context.Background(), api.MinCAOverlap, 0); err != nil {
		t.Fatal(err)
	}
}

// writeBundle replaces path with the authority's bundle by rename, as
// the agent rewrites a task's $DCOS_CA_FILE.
func (rk rotatingKernel) writeBundle(t *testing.T, path string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, rk.Auth.State().Bundle.PEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestClient_FollowsCAFileThroughRotation: a client built from
// $DCOS_CA_FILE keeps calling a kernel across a CA rotation and the
// previous CA's retirement, because it verifies each new connection
// against the file the agent rewrote (every call here makes a new
// connection: a kept-alive one would hide the verification);
// a client that read the same file once at start (CACert, what New did
// with $DCOS_CA_FILE before) fails once the previous CA retired.
func TestClient_FollowsCAFileThroughRotation(t *testing.T) {
	rk := startRotatingKernel(t)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	rk.writeBundle(t, caFile)
	t.Setenv(EnvCAFile, caFile)
	ctx := testCtx(t)

	following, err := New(Config{Endpoints: []string{rk.Addr}, Token: fwToken})
	if err != nil {
		t.Fatal(err)
	}
	readOnce, err := New(Config{Endpoints: []string{rk.Addr}, Token: fwToken, CACert: mustReadFile(t, caFile), Retry: Backoff{Attempts: 2}})
	if err != nil {
		t.Fatal(err)
	}
	call := func(c *Client) error {
		// A new connection for every call: what is checked is the
		// verification of a handshake, not a kept-alive connection.
		c.closeIdle()
		_, err := c.ListAllocations(ctx, &pb.ListAllocationsRequest{})
		return err
	}
	for name, c := range map[string]*Client{"following": following, "read once": readOnce} {
		if err := call(c); err != nil {
			t.Fatalf("%s, before the rotation: %v", name, err)
		}
	}

	rk.rotate(t)
	// During the overlap the kernel's chain carries the cross-certificate:
	// both still verify, the agent rewrites the file.
	for name, c := range map[string]*Client{"following": following, "read once": readOnce} {
		if err := call(c); err != nil {
			t.Fatalf("%s, during the overlap: %v", name, err)
		}
	}
	rk.writeBundle(t, caFile)

	rk.Retire(t)
	rk.writeBundle(t, caFile)
	if err := call(following); err != nil {
		t.Errorf("the client following $%s, after the retirement: %v", EnvCAFile, err)
	}
	if err := call(readOnce); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("the client that read the bundle once, after the retirement: %v, want a certificate error", err)
	}
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
