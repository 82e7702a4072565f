package contract

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// fakeExecDriver echoes stdin to stdout,
// writes big to stderr, reports the first resize on stdout and exits 5;
// command "block" waits for its context instead and reports the end on
// ended.
type fakeExecDriver struct {
	fakeDriver
	big     []byte
	started chan struct{}
	ended   chan error
}

func (d *fakeExecDriver) ExecTask(ctx context.Context, o *ExecOptions, eio ExecIO) (*ExitResult, error) {
	if o.TaskID != "t" {
		return nil, fmt.Errorf("task %q: %w", o.TaskID, ErrTaskNotFound)
	}
	if o.Command == "block" {
		close(d.started)
		<-ctx.Done()
		d.ended <- ctx.Err()
		return nil, ctx.Err()
	}
	fmt.Fprintf(eio.Stdout, "%s %v tty=%v %dx%d env=%s\n", o.Command, o.Args, o.TTY, o.Size.Rows, o.Size.Cols, o.Env["K"])
	if o.Stdin {
		if _, err := io.Copy(eio.Stdout, eio.Stdin); err != nil {
			return nil, err
		}
	}
	eio.Stderr.Write(d.big)
	if o.TTY {
		sz := <-eio.Resize
		fmt.Fprintf(eio.Stdout, "resized %dx%d\n", sz.Rows, sz.Cols)
	}
	return &ExitResult{ExitCode: 5}, nil
}

func TestDriverClient_ExecTask(t *testing.T) {
	impl := &fakeExecDriver{fakeDriver: fakeDriver{tasks: map[string]*TaskConfig{}}, big: bytes.Repeat([]byte("e"), 200<<10),
		started: make(chan struct{}), ended: make(chan error, 1)}
	d := dispense(t, KindDriver, &DriverPlugin{Impl: impl}).(ExecDriver)
	ctx := context.Background()
	caps, err := d.Capabilities(ctx)
	if err != nil || !caps.Exec {
		t.Fatalf("capabilities %+v %v: want Exec from the type assertion", caps, err)
	}

	var out, errb bytes.Buffer
	resize := make(chan TermSize, 1)
	resize <- TermSize{Rows: 50, Cols: 132}
	r, err := d.ExecTask(ctx, &ExecOptions{TaskID: "t", Command: "sh", Args: []string{"-i"}, Env: map[string]string{"K": "v"},
		TTY: true, Size: TermSize{Rows: 24, Cols: 80}, Stdin: true},
		ExecIO{Stdin: strings.NewReader("typed\n"), Stdout: &out, Stderr: &errb, Resize: resize})
	if err != nil || r.ExitCode != 5 {
		t.Fatalf("exec: %+v %v", r, err)
	}
	if want := "sh [-i] tty=true 24x80 env=v\ntyped\nresized 50x132\n"; out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}
	if !bytes.Equal(errb.Bytes(), impl.big) {
		t.Errorf("stderr: %d bytes, want %d", errb.Len(), len(impl.big))
	}

	if _, err := d.ExecTask(ctx, &ExecOptions{TaskID: "nope", Command: "x"}, ExecIO{Stdout: io.Discard, Stderr: io.Discard}); !errors.Is(err, ErrTaskNotFound) {
		t.Errorf("exec unknown task: %v, want ErrTaskNotFound", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	res := make(chan error, 1)
	go func() {
		_, err := d.ExecTask(cctx, &ExecOptions{TaskID: "t", Command: "block"}, ExecIO{Stdout: io.Discard, Stderr: io.Discard})
		res <- err
	}()
	<-impl.started
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled exec: %v, want context.Canceled", err)
	}
	if err := <-impl.ended; err == nil {
		t.Error("the plugin's exec context did not end")
	}
}

func TestDriverClient_ExecTaskNotSupported(t *testing.T) {
	d := dispense(t, KindDriver, &DriverPlugin{Impl: &fakeDriver{tasks: map[string]*TaskConfig{}}}).(ExecDriver)
	_, err := d.ExecTask(context.Background(), &ExecOptions{TaskID: "t", Command: "x"}, ExecIO{Stdout: io.Discard, Stderr: io.Discard})
	if !errors.Is(err, ErrNotSupported) {
		t.Fatalf("exec on a driver without exec: %v, want ErrNotSupported", err)
	}
}
