package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestHandler_Metrics runs a task through the syscalls as a framework and
// an agent would, reports its usage with a heartbeat, and reads GET
// /metrics without a token: the task's series are there with its labels,
// and gone once its allocation is revoked.
func TestHandler_Metrics(t *testing.T) {
	t.Parallel()
	url, _ := serve(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fw, ag := kclient.New(url, kerneltest.FrameworkToken), kclient.New(url, kerneltest.AgentToken)
	reg, err := ag.RegisterAgent(ctx, connect.NewRequest(&pb.RegisterAgentRequest{Hostname: "n1", Resources: &pb.Resources{Cpus: 4, MemBytes: 1 << 30}}))
	if err != nil {
		t.Fatal(err)
	}
	agentID := reg.Msg.GetAgentId()
	al, err := fw.Allocate(ctx, connect.NewRequest(&pb.AllocateRequest{Role: "web", Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}}))
	if err != nil {
		t.Fatal(err)
	}
	allocID := al.Msg.GetAllocations()[0].GetId()
	l, err := fw.Launch(ctx, connect.NewRequest(&pb.LaunchRequest{AllocationId: allocID, Command: "/bin/true"}))
	if err != nil {
		t.Fatal(err)
	}
	taskID := l.Msg.GetTask().GetId()
	if _, err := ag.ReportTaskStatus(ctx, connect.NewRequest(&pb.ReportTaskStatusRequest{AgentId: agentID, TaskId: taskID, State: pb.TaskState_TASK_STATE_RUNNING, Pid: 42})); err != nil {
		t.Fatal(err)
	}
	if _, err := ag.Heartbeat(ctx, connect.NewRequest(&pb.HeartbeatRequest{AgentId: agentID, Usage: []*pb.TaskUsage{{
		TaskId: taskID, Sampled: timestamppb.Now(), CpuNs: 1_500_000_000, MemBytes: 8 << 20, MemPeakBytes: 9 << 20, Pids: 2,
	}}})); err != nil {
		t.Fatal(err)
	}

	body := scrape(t, url)
	labels := `{agent="` + agentID + `",allocation="` + allocID + `",owner="fw-a",role="web",task="` + taskID + `"}`
	for _, want := range []string{
		"dcos_task_cpu_seconds_total" + labels + " 1.5\n",
		"dcos_task_memory_bytes" + labels + " 8.388608e+06\n",
		"dcos_task_memory_peak_bytes" + labels + " 9.437184e+06\n",
		"dcos_task_pids" + labels + " 2\n",
		"dcos_task_oom_kills_total" + labels + " 0\n",
		`dcos_kernel_agents{state="up"} 1` + "\n",
		`dcos_kernel_allocations{state="granted"} 1` + "\n",
		`dcos_kernel_tasks{state="running"} 1` + "\n",
		`dcos_kernel_policy_active{policy="first-fit"} 1` + "\n",
		"dcos_kernel_allocation_cycle_duration_seconds_count ",
		"go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET /metrics lacks %q", want)
		}
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint() // promtool's checks, in process
	if err != nil || len(problems) > 0 {
		t.Errorf("lint GET /metrics: %v %v", err, problems)
	}
	t.Run("promtool check metrics", func(t *testing.T) { promtoolCheck(t, body) })

	if _, err := fw.Revoke(ctx, connect.NewRequest(&pb.RevokeRequest{Id: allocID})); err != nil {
		t.Fatal(err)
	}
	body = scrape(t, url)
	if strings.Contains(body, taskID) {
		t.Errorf("GET /metrics after the allocation was revoked still has task %s:\n%s", taskID, grep(body, taskID))
	}
	if !strings.Contains(body, `dcos_kernel_tasks{state="running"} 0`) {
		t.Errorf("GET /metrics after revoke: %s", grep(body, "dcos_kernel_tasks"))
	}
}

// scrape GETs url's /metrics without a token.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s %v\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), err, b)
	}
	return string(b)
}

// promtoolCheck runs `promtool check metrics` on an exposition. .ci/run
// installs promtool; elsewhere the check is skipped when it is missing.
func promtoolCheck(t *testing.T, exposition string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed: .ci/run installs it (the binary from Debian's prometheus package)")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(exposition)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out.String())
	}
}

func grep(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
