package host

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// TestDriverProxy_ExecTask: the host's driver is always an ExecDriver (the
// agent type-asserts it); a plugin that cannot exec answers
// ErrNotSupported through it, from its real process.
func TestDriverProxy_ExecTask(t *testing.T) {
	e := newEnv(t)
	e.install("dcos-driver-good", true)
	h := e.start(e.config())
	d, err := h.Driver("good")
	if err != nil {
		t.Fatal(err)
	}
	ed, ok := d.(contract.ExecDriver)
	if !ok {
		t.Fatalf("the host's driver %T is not a contract.ExecDriver", d)
	}
	_, err = ed.ExecTask(context.Background(), &contract.ExecOptions{TaskID: "t", Command: "true"},
		contract.ExecIO{Stdout: io.Discard, Stderr: io.Discard})
	if !errors.Is(err, contract.ErrNotSupported) {
		t.Fatalf("ExecTask on a plugin without exec: %v, want ErrNotSupported", err)
	}
}
