package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestJobs_GangAndRetries runs the jobs framework (dcosd jobs) against a
// kernel and three real agents: `dcosctl job run` of a 20-task gang is
// granted at one revision and completes, its history shows the run; a job
// whose command exits 3 is retried backoffLimit times and reported failed
// with the last exit. (Cron fires on an injected clock and concurrency
// policies are tested against a real kernel in frameworks/jobs,
// TestServe_Cron: a process cannot be handed a fake clock.)
func TestJobs_GangAndRetries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opTok, jobsTok := newToken(), newToken()
	entries := []tokenEntry{{Token: opTok, Name: "ops", Role: "operator"}, {Token: jobsTok, Name: "jobs", Role: "framework"}}
	agentToks := make([]string, 3)
	for i := range agentToks {
		agentToks[i] = newToken()
		entries = append(entries, tokenEntry{Token: agentToks[i], Name: fmt.Sprintf("agent-%d", i), Role: "agent"})
	}
	e.startKernel(e.writeTokens(e.path("tokens.json"), entries...), opTok,
		"--heartbeat-timeout", "3s", "--heartbeat-interval", "200ms", "--rate-limit", "framework:jobs=unlimited")
	for i := range agentToks {
		e.startAgent(fmt.Sprintf("j%d", i), agentToks[i], "--resources", "cpus=8,mem=2Gi", "--host-ports", "none")
	}
	e.start("dcosd jobs", "dcos jobs: started against ", "jobs", "--kernel", e.url, "--token", jobsTok, "--jobs-ttl", "3s")
	ctl := []string{"--kernel", e.url, "--token", opTok}

	res, err := e.op().ListAgents(context.Background(), connect.NewRequest(&pb.ListAgentsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	w := e.watch(e.op(), res.Msg.GetRevision())

	spec := e.path("gang.yaml")
	if err := os.WriteFile(spec, []byte(`name: gang
command: sh
args: ["-c", "echo task $DCOS_JOB_TASK; exit 0"]
resources: {cpus: 1, mem: 16Mi}
parallelism: 20
gang: true
`), 0o644); err != nil {
		t.Fatal(err)
	}
	e.mustCtl(append(ctl, "job", "apply", "-f", spec)...)
	out, errOut, code := e.ctl(append(ctl, "job", "run", "gang")...)
	if code != 0 {
		t.Fatalf("job run gang: exit %d\n%s%s", code, out, errOut)
	}
	runID := strings.TrimSpace(out)
	if runID != "gang-1" {
		t.Fatalf("run id %q, want gang-1", runID)
	}
	revs := map[int64]int{}
	for _, ev := range w.snapshot() {
		if ev.GetKind() == pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED && ev.GetAllocation().GetLabels()["dcos.job.run"] == runID {
			revs[ev.GetRevision()]++
		}
	}
	if len(revs) != 1 {
		t.Fatalf("gang granted at revisions %v, want all 20 at one", revs)
	}
	for rev, n := range revs {
		if n != 20 {
			t.Fatalf("%d granted at revision %d, want 20", n, rev)
		}
	}
	var hist []struct {
		ID, State string
		Succeeded int
	}
	if err := json.Unmarshal([]byte(e.mustCtl(append(ctl, "job", "history", "gang", "-o", "json")...)), &hist); err != nil {
		t.Fatal(err)
	}
	if len(hist) != 1 || hist[0].ID != runID || hist[0].State != "succeeded" || hist[0].Succeeded != 20 {
		t.Fatalf("history %+v", hist)
	}
	if out := e.mustCtl(append(ctl, "job", "logs", "gang", "--task", "3")...); out != "task 3\n" {
		t.Fatalf("job logs: %q", out)
	}

	bad := e.path("bad.yaml")
	if err := os.WriteFile(bad, []byte(`name: bad
command: sh
args: ["-c", "exit 3"]
resources: {cpus: 0.1, mem: 16Mi}
backoffLimit: 2
backoff: {initial: 100ms, max: 200ms}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	e.mustCtl(append(ctl, "job", "apply", "-f", bad)...)
	out, errOut, code = e.ctl(append(ctl, "job", "run", "bad")...)
	if code != 1 || !strings.Contains(errOut, "run bad-1 failed: task 0 exited 3 after 3 attempts") {
		t.Fatalf("job run bad: exit %d, stdout %q stderr %q", code, out, errOut)
	}
}

// TestJobs_Dev: dcosd dev runs the jobs framework in-process (principal
// "jobs", its token in dev's tokens file): a job applied with dcosctl's
// default config runs to completion.
func TestJobs_Dev(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startDev("--resources", "cpus=2,mem=1Gi")
	spec := e.path("hello.yaml")
	if err := os.WriteFile(spec, []byte("name: hello\ncommand: sh\nargs: [\"-c\", \"echo hello from $DCOS_JOB_RUN\"]\nresources: {cpus: 0.1, mem: 16Mi}\ncompletions: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.mustCtl("job", "apply", "-f", spec)
	if out := e.mustCtl("job", "run", "hello"); strings.TrimSpace(out) != "hello-1" {
		t.Fatalf("job run: %q", out)
	}
	if out := e.mustCtl("job", "logs", "hello"); out != "hello from hello-1\n" {
		t.Fatalf("job logs: %q", out)
	}
	if out := e.mustCtl("job", "ls"); !strings.Contains(out, "hello-1") || !strings.Contains(out, "succeeded") {
		t.Fatalf("job ls:\n%s", out)
	}
	if out := e.mustCtl("job", "status", "hello"); !strings.Contains(out, "no run going") {
		t.Fatalf("job status:\n%s", out)
	}
	e.mustCtl("job", "rm", "hello")
	e.eventually("hello's runs deleted", func() (bool, string) {
		out := e.mustCtl("job", "history", "hello", "-o", "json")
		return strings.TrimSpace(out) == "[]", out
	})
}
