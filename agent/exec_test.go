package agent

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dcos-kernel/dcos/agent/internal/hostos"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestTaskEnv(t *testing.T) {
	t.Parallel()
	task := &syscallsv1.Task{Id: "t-1", AllocationId: "a-1", Env: map[string]string{"B": "2", "A": "1", "PATH": "/opt/bin"}}
	got := taskEnv(task, "/sb", "")
	want := []string{"HOME=/sb", "DCOS_TASK_ID=t-1", "DCOS_ALLOCATION_ID=a-1", "DCOS_SANDBOX=/sb", "A=1", "B=2", "PATH=/opt/bin"}
	if !slices.Equal(got, want) {
		t.Errorf("taskEnv = %q, want %q", got, want)
	}
	if got := envValue(taskEnv(&syscallsv1.Task{}, "/sb", ""), "PATH"); got != defaultPath {
		t.Errorf("default PATH = %q, want %q", got, defaultPath)
	}
}

func TestLookPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"tool": 0o755, "data": 0o644} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, command, path, want string
		wantErr                   error
	}{
		{name: "in PATH", command: "tool", path: "/nonexistent:" + bin, want: filepath.Join(bin, "tool")},
		{name: "not executable", command: "data", path: bin, wantErr: exec.ErrNotFound},
		{name: "missing", command: "nope", path: bin, wantErr: exec.ErrNotFound},
		{name: "relative PATH entry ignored", command: "tool", path: "bin", wantErr: exec.ErrNotFound},
		{name: "relative to dir", command: "bin/tool", path: "", want: "bin/tool"},
		{name: "absolute", command: filepath.Join(bin, "tool"), want: filepath.Join(bin, "tool")},
		{name: "absolute missing", command: filepath.Join(bin, "nope"), wantErr: os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := lookPath(tt.command, tt.path, dir)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("lookPath = %q, %v; want %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("lookPath = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		exit   hostos.Exit
		kill   string
		state  syscallsv1.TaskState
		reason string
		code   int32
	}{
		{"exit 0", hostos.Exit{Known: true}, "", finished, "exit code 0", 0},
		{"exit 3", hostos.Exit{Known: true, Code: 3}, "", failed, "exit code 3", 3},
		{"signal", hostos.Exit{Known: true, Code: -1, Signal: 15}, "", failed, "killed by signal SIGTERM", -1},
		{"unknown", hostos.Exit{Code: -1}, "", failed, reasonUnknownExit, -1},
		{"killed", hostos.Exit{Known: true, Code: -1, Signal: 15}, "revoked", killed, "revoked", -1},
		{"killed, unknown status", hostos.Exit{Code: -1}, "revoked", killed, "revoked", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, reason, code := classify(tt.exit, tt.kill)
			if state != tt.state || reason != tt.reason || code != tt.code {
				t.Errorf("classify = %v %q %d, want %v %q %d", state, reason, code, tt.state, tt.reason, tt.code)
			}
		})
	}
}
