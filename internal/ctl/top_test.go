package ctl

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

func topKernel() *fakeKernel {
	running := syscallsv1.TaskState_TASK_STATE_RUNNING
	return (&fakeKernel{}).replyWith("ListTasks", &syscallsv1.ListTasksResponse{Tasks: []*syscallsv1.Task{
		{Id: "t-1", AgentId: "ag-1", State: running, Command: "sleep", Args: []string{"60"},
			Usage: &syscallsv1.TaskUsage{CpuCores: 0.25, MemBytes: 64 << 20, MemPeakBytes: 80 << 20, Pids: 1, TxBytesPerSec: 2048, Sampled: timestamppb.New(testNow), CpuNs: 2_500_000_000}},
		{Id: "t-2", AgentId: "ag-1", State: running, Command: "web",
			Usage: &syscallsv1.TaskUsage{CpuCores: 1.5, MemBytes: 16 << 20, MemPeakBytes: 16 << 20, Pids: 3, RxBytesPerSec: 1 << 20, RxBytes: 1 << 30, RxPackets: 7}},
		{Id: "t-3", AgentId: "ag-2", State: running, Command: "new"},
		{Id: "t-4", AgentId: "ag-2", State: syscallsv1.TaskState_TASK_STATE_FINISHED, Command: "done"},
	}}, nil)
}

func TestRun_Top(t *testing.T) {
	isolate(t)
	url := topKernel().serve(t)
	header := []string{"TASK", "AGENT", "CPU%", "MEM", "PEAK", "RX/S", "TX/S", "PIDS", "COMMAND"}
	for _, tc := range []struct {
		args []string
		want [][]string
	}{
		{[]string{"top", "--once"}, [][]string{header,
			{"t-2", "ag-1", "150.0", "16Mi", "16Mi", "1Mi", "0", "3", "web"},
			{"t-1", "ag-1", "25.0", "64Mi", "80Mi", "0", "2Ki", "1", "sleep", "60"},
			{"t-3", "ag-2", "-", "-", "-", "-", "-", "-", "new"},
		}},
		{[]string{"top", "--once", "--sort", "mem", "-n", "1"}, [][]string{header,
			{"t-1", "ag-1", "25.0", "64Mi", "80Mi", "0", "2Ki", "1", "sleep", "60"},
		}},
	} {
		r := runCtl(t, context.Background(), "", append([]string{"--kernel", url}, tc.args...)...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, r.code, r.stderr)
		}
		if got := rows(r.stdout); !equalRows(got, tc.want) {
			t.Errorf("%v: got\n%s\nwant %q", tc.args, r.stdout, tc.want)
		}
	}
	if r := runCtl(t, context.Background(), "", "--kernel", url, "top", "--sort", "disk"); r.code != 2 || !strings.Contains(r.stderr, "--sort") {
		t.Errorf("bad --sort: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestRun_Usage(t *testing.T) {
	isolate(t)
	url := topKernel().serve(t)
	r := runCtl(t, context.Background(), "", "--kernel", url, "usage", "t-2")
	if r.code != 0 || !strings.Contains(r.stdout, "1Gi in 7 packets") || !strings.Contains(r.stdout, "150.0") {
		t.Errorf("usage t-2: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runCtl(t, context.Background(), "", "--kernel", url, "usage", "t-1", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"cpuCores": 0.25`) {
		t.Errorf("usage -o json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, tc := range []struct{ id, want string }{{"t-3", "no usage reported yet"}, {"t-9", `no task "t-9"`}} {
		if r := runCtl(t, context.Background(), "", "--kernel", url, "usage", tc.id); r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("usage %s: exit %d, stderr %q, want %q", tc.id, r.code, r.stderr, tc.want)
		}
	}
}
