package ctl

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestJob_ApplyRefusesBadSpec(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "j.yaml")
	if err := os.WriteFile(p, []byte("name: j\ncommand: x\nresources: {cpus: 1}\nparallelism: 1\ngang: true\ngangMin: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"dcosctl", "--kernel", "http://127.0.0.1:1", "--token", "x", "job", "apply", "-f", p},
		&env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, now: time.Now})
	if code != exitCallError || !strings.Contains(errb.String(), "spec.gangMin: must be 1 to parallelism (1), got 2") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

func TestJob_Help(t *testing.T) {
	for _, sub := range []string{"apply", "run", "ls", "status", "history", "logs", "rm"} {
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"dcosctl", "job", sub, "--help"}, &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, now: time.Now})
		if code != 0 || !strings.Contains(out.String(), "dcosctl job "+sub) {
			t.Errorf("job %s --help: exit %d\n%s%s", sub, code, out.String(), errb.String())
		}
	}
}

func TestJob_UsageErrors(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"dcosctl", "--kernel", "http://127.0.0.1:1", "--token", "x", "job", "run"}, &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, now: time.Now})
	if code != exitUsageError || !strings.Contains(errb.String(), "job run: want one NAME") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}
