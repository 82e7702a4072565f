package agent

import (
	"slices"
	"testing"

	"github.com/dcos-kernel/dcos/plugins/contract"
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
	if got := taskEnv(&syscallsv1.Task{}, "/sb", ""); got[0] != "PATH="+defaultPath {
		t.Errorf("default PATH: env = %q, want PATH=%s first", got, defaultPath)
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	const oom = "OOM: killed for exceeding its memory limit of 67108864 bytes"
	tests := []struct {
		name   string
		exit   contract.ExitResult
		kill   string
		oom    string
		state  syscallsv1.TaskState
		reason string
		code   int32
	}{
		{"exit 0", contract.ExitResult{}, "", "", finished, "exit code 0", 0},
		{"exit 3", contract.ExitResult{ExitCode: 3}, "", "", failed, "exit code 3", 3},
		{"signal", contract.ExitResult{ExitCode: -1, Signal: 15}, "", "", failed, "killed by signal SIGTERM", -1},
		{"unknown", contract.ExitResult{ExitCode: -1, Err: reasonUnknownExit}, "", "", failed, reasonUnknownExit, -1},
		{"oom", contract.ExitResult{ExitCode: -1, Signal: 9}, "", oom, failed, oom, -1},
		{"oom by driver", contract.ExitResult{ExitCode: -1, Signal: 9, OOMKilled: true}, "", "", failed, "OOM: killed for exceeding its memory limit", -1},
		{"killed", contract.ExitResult{ExitCode: -1, Signal: 15}, "revoked", "", killed, "revoked", -1},
		{"killed wins over oom", contract.ExitResult{ExitCode: -1, Signal: 9}, "revoked", oom, killed, "revoked", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, reason, code := classify(&tt.exit, tt.kill, tt.oom)
			if state != tt.state || reason != tt.reason || code != tt.code {
				t.Errorf("classify = %v %q %d, want %v %q %d", state, reason, code, tt.state, tt.reason, tt.code)
			}
		})
	}
}
