package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestDev_Metrics runs a task on dcosd dev and scrapes the kernel's
// /metrics without a token: the kernel's per-task usage series (with the
// task's allocation, agent, owner and role) and the local agent's
// (dcos_agent_*, same registry) appear once the agent reported a sample,
// the output passes promtool, and both series go once the task ended.
func TestDev_Metrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startDev("--usage-interval", "200ms")
	task := runTask(e, "--cpus", "0.1", "--mem", "64Mi", "--", "sleep", "300")
	id, alloc := task.GetId(), task.GetAllocationId()
	kernelLabels := `{agent="` + task.GetAgentId() + `",allocation="` + alloc + `",owner="operator",role="",task="` + id + `"}`
	agentLabels := `{allocation="` + alloc + `",task="` + id + `"}`

	var body string
	e.eventually("usage series of "+id, func() (bool, string) {
		body = scrapeMetrics(e.t, e.url+"/metrics")
		return hasPositive(body, "dcos_task_memory_bytes"+kernelLabels) && hasPositive(body, "dcos_agent_task_memory_bytes"+agentLabels),
			grepLines(body, id)
	})
	for _, want := range []string{
		"dcos_task_cpu_seconds_total" + kernelLabels, "dcos_task_pids" + kernelLabels, "dcos_task_oom_kills_total" + kernelLabels,
		"dcos_agent_task_cpu_seconds_total" + agentLabels,
		`dcos_kernel_agents{state="up"} 1`, `dcos_kernel_tasks{state="running"} 1`, `dcos_kernel_policy_active{policy="drf"} 1`,
		`dcos_agent_tasks{phase="running"} 1`, "dcos_agent_task_starts_total 1", `dcos_agent_plugin_up{kind="driver",plugin="exec"} 1`,
		"dcos_kernel_allocation_cycle_duration_seconds_count ", "dcos_agent_last_heartbeat_success_timestamp_seconds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	lintMetrics(t, body)
	t.Run("promtool check metrics", func(t *testing.T) { promtoolCheckMetrics(t, body) })

	if _, err := e.op().Revoke(context.Background(), connect.NewRequest(&pb.RevokeRequest{Id: alloc})); err != nil {
		t.Fatal(err)
	}
	e.eventually("series of "+id+" gone", func() (bool, string) {
		body = scrapeMetrics(e.t, e.url+"/metrics")
		return !strings.Contains(body, `task="`+id+`"`) && strings.Contains(body, `dcos_agent_tasks_ended_total{state="killed"} 1`),
			grepLines(body, id) + grepLines(body, "dcos_agent_tasks")
	})
}

// TestAgent_MetricsListen starts `dcosd agent --metrics-listen
// 127.0.0.1:0`: the agent logs the address it chose and serves its own
// metrics there, the Go runtime's included.
func TestAgent_MetricsListen(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opTok, agentTok := newToken(), newToken()
	tokens := e.writeTokens(e.path("tokens.json"),
		tokenEntry{Token: opTok, Name: "ops", Role: "operator"},
		tokenEntry{Token: agentTok, Name: "agents", Role: "agent"},
	)
	e.startKernel(tokens, opTok)
	ag, agentID := e.startAgent("m", agentTok, "--resources", "cpus=1,mem=1Gi", "--metrics-listen", "127.0.0.1:0", "--usage-interval", "200ms")
	re := regexp.MustCompile(`msg="agent metrics serving" url=(http://127\.0\.0\.1:[0-9]+/metrics)`)
	var url string
	e.eventually("the agent logs its metrics address", func() (bool, string) {
		m := re.FindStringSubmatch(ag.stderr.String())
		if m != nil {
			url = m[1]
		}
		return m != nil, tail(ag.stderr.String(), 5)
	})
	ctx := context.Background()
	al, err := e.op().Allocate(ctx, connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: 64 << 20}}))
	if err != nil {
		t.Fatal(err)
	}
	alloc := al.Msg.GetAllocations()[0].GetId()
	l, err := e.op().Launch(ctx, connect.NewRequest(&pb.LaunchRequest{AllocationId: alloc, Command: "sleep", Args: []string{"300"}}))
	if err != nil {
		t.Fatal(err)
	}
	id := l.Msg.GetTask().GetId()
	var body string
	e.eventually("usage series of "+id, func() (bool, string) {
		body = scrapeMetrics(e.t, url)
		return hasPositive(body, `dcos_agent_task_memory_bytes{allocation="`+alloc+`",task="`+id+`"}`), grepLines(body, "dcos_agent")
	})
	for _, want := range []string{`dcos_agent_info{agent="` + agentID + `"} 1`, "go_goroutines ", "process_resident_memory_bytes "} {
		if !strings.Contains(body, want) {
			t.Errorf("agent /metrics lacks %q", want)
		}
	}
	if strings.Contains(body, "dcos_kernel_") {
		t.Errorf("agent /metrics has kernel metrics:\n%s", grepLines(body, "dcos_kernel_"))
	}
	lintMetrics(t, body)
	t.Run("promtool check metrics", func(t *testing.T) { promtoolCheckMetrics(t, body) })
	if _, err := e.op().Revoke(ctx, connect.NewRequest(&pb.RevokeRequest{Id: alloc})); err != nil {
		t.Fatal(err)
	}
}

// scrapeMetrics GETs url without a token.
func scrapeMetrics(t testing.TB, url string) string {
	t.Helper()
	resp, err := kernelHTTP.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v\n%s", url, resp.StatusCode, err, b)
	}
	return string(b)
}

// hasPositive reports whether exposition has series with a value > 0.
func hasPositive(exposition, series string) bool {
	for _, l := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v != "0"
		}
	}
	return false
}

func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n") + "\n"
}

// lintMetrics checks an exposition against Prometheus' conventions with
// client_golang's promlint (what promtool check metrics runs).
func lintMetrics(t *testing.T, exposition string) {
	t.Helper()
	problems, err := promlint.New(strings.NewReader(exposition)).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("lint /metrics: %v %v", err, problems)
	}
}

// promtoolCheckMetrics runs `promtool check metrics` on an exposition.
// .ci/run installs promtool; elsewhere the check is skipped when it is
// missing.
func promtoolCheckMetrics(t *testing.T, exposition string) {
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
