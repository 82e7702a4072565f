package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// mpiJobSpec is an MPI job of 8 ranks, one per rank host of 0.2 cpus (so
// that the gang spans three agents of 0.6 cpus: 3+3+2), whose launcher
// runs mpirun over the hosts the framework hands it in DCOS_JOB_HOSTS,
// with testdata/engines/dcos-rsh as its remote-shell agent (dcosctl exec
// into each rank host, with the framework's DCOS_KERNEL and DCOS_TOKEN).
// %[1]s is the scripts' directory, %[2]s dcosctl's path.
//
// mpirun's options are those of docs/big-data.md, "MPI": every daemon is
// started by mpirun itself (no tree spawn: the rank hosts have no token),
// ranks talk TCP over loopback (all agents of the test are this machine;
// tasks have their own IPC namespaces, so no shared memory between them).
const mpiJobSpec = `name: ring
resources: {cpus: 0.2, mem: 64Mi}
env:
  DCOSCTL: %[2]s
  OMPI_ALLOW_RUN_AS_ROOT: "1"
  OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1"
backoffLimit: 0
mpi:
  ranks: 8
  resources: {cpus: 0.1, mem: 256Mi}
  command: /bin/sh
  args:
  - -c
  - >-
    TMPDIR=$PWD exec mpirun -np "$DCOS_JOB_RANKS" --host "$DCOS_JOB_HOSTS"
    --mca plm_rsh_agent %[1]s/dcos-rsh --mca plm_rsh_no_tree_spawn 1
    --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo
    --mca pml ob1 %[1]s/ring
`

// TestJobs_MPI: dcosd kernel, three agents of 0.6 cpus each and the jobs
// framework (dcosd jobs). An MPI job (mpiJobSpec) applied and run with
// dcosctl job: the framework grants 8 rank hosts as one gang, then starts
// the launcher, whose mpirun runs ring.c's 8 ranks through dcos-rsh.
// dcosctl job status shows the rank hosts and the launcher while it runs;
// dcosctl job logs (the launcher's output) has the right allreduce and
// ring sums; each rank ran in a different rank host, in its pid and
// cgroup namespaces at the root of its cgroup; history shows the run
// succeeded with its hosts and launcher; and no allocation of the job
// remains afterwards.
func TestJobs_MPI(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"mpirun", "mpicc", "orted"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v (scripts/test installs openmpi-bin and libopenmpi-dev)", tool, err)
		}
	}
	e := newEnv(t)
	scripts := engineScripts(t)
	if out, err := exec.Command("mpicc", "-O2", "-o", filepath.Join(scripts, "ring"), filepath.Join(scripts, "ring.c")).CombinedOutput(); err != nil {
		t.Fatalf("mpicc ring.c: %v\n%s", err, out)
	}

	opTok, jobsTok := newToken(), newToken()
	entries := []tokenEntry{{Token: opTok, Name: "ops", Role: "operator"}, {Token: jobsTok, Name: "jobs", Role: "framework"}}
	agentToks := make([]string, 3)
	for i := range agentToks {
		agentToks[i] = newToken()
		entries = append(entries, tokenEntry{Token: agentToks[i], Name: fmt.Sprintf("agent-%d", i), Role: "agent"})
	}
	e.startKernel(e.writeTokens(e.path("tokens.json"), entries...), opTok, "--rate-limit", "framework:jobs=unlimited")
	for i := range agentToks {
		e.startAgent(fmt.Sprintf("mpi%d", i), agentToks[i], "--resources", "cpus=0.6,mem=1Gi", "--host-ports", "none")
	}
	e.start("dcosd jobs", "dcos jobs: started against ", "jobs", "--kernel", e.url, "--token", jobsTok)
	ctl := []string{"--kernel", e.url, "--token", opTok}

	spec := e.path("ring.yaml")
	if err := os.WriteFile(spec, []byte(fmt.Sprintf(mpiJobSpec, scripts, bin.dcosctl)), 0o644); err != nil {
		t.Fatal(err)
	}
	e.mustCtl(append(ctl, "job", "apply", "-f", spec)...)

	// dcosctl job run waits for the run to end; meanwhile status shows
	// the rank hosts and the launcher.
	started := time.Now()
	type result struct {
		out, errOut string
		err         error
	}
	done := make(chan result, 1)
	rctx, rcancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer rcancel()
	go func() {
		cmd := e.ctlCmd(rctx, append(ctl, "job", "run", "ring")...)
		var o, s bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &s
		err := cmd.Run()
		done <- result{o.String(), s.String(), err}
	}()
	type nsOf struct{ pid, cgroup string }
	hostNS := map[string]nsOf{} // rank host task id -> its namespaces
	var status string
	e.eventually("job status shows 8 rank hosts and the launcher running", func() (bool, string) {
		for _, tk := range listTasks(t, e.op()).GetTasks() {
			e.notePID(tk.GetPid())
			if tk.GetLabels()["dcos.job.mpi"] == "host" && tk.GetState() == pb.TaskState_TASK_STATE_RUNNING && tk.GetPid() > 0 {
				if _, ok := hostNS[tk.GetId()]; !ok {
					pidNS, err1 := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", tk.GetPid()))
					cgNS, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/cgroup", tk.GetPid()))
					if err1 == nil && err2 == nil {
						hostNS[tk.GetId()] = nsOf{pidNS, cgNS}
					}
				}
			}
		}
		status, _, _ = e.ctl(append(ctl, "job", "status", "ring")...)
		hosts := regexp.MustCompile(`(?m)^host \d+ .*running t-`).FindAllString(status, -1)
		ok := len(hosts) == 8 && len(hostNS) == 8 && regexp.MustCompile(`(?m)^launcher .*running t-`).MatchString(status)
		return ok, fmt.Sprintf("%d rank hosts' namespaces read; status:\n%s", len(hostNS), status)
	})
	t.Logf("job status while running:\n%s", status)
	var res result
	select {
	case res = <-done:
	case <-rctx.Done():
		t.Fatal("dcosctl job run ring: did not end in 3 minutes")
	}
	t.Logf("the MPI run took %v", time.Since(started).Round(time.Millisecond))
	logs, _, _ := e.ctl(append(ctl, "job", "logs", "ring")...)
	if res.err != nil || strings.TrimSpace(res.out) != "ring-1" {
		errs, _, _ := e.ctl(append(ctl, "job", "logs", "ring", "--stderr")...)
		t.Fatalf("dcosctl job run ring: %v\nstdout %q\nstderr %s\nlauncher stdout:\n%s\nlauncher stderr:\n%s", res.err, res.out, res.errOut, logs, tail(errs, 40))
	}
	if !strings.Contains(logs, "allreduce=36 ring=28 size=8") {
		t.Fatalf("the launcher's output lacks \"allreduce=36 ring=28 size=8\":\n%s", logs)
	}

	var hist []struct {
		ID, State string
		Tasks     []struct{ Task, Agent, Allocation string }
		MPI       struct {
			Attempt  int
			Launcher struct{ Task, Allocation string }
		}
	}
	out := e.mustCtl(append(ctl, "job", "history", "ring", "-o", "json")...)
	if err := json.Unmarshal([]byte(out), &hist); err != nil {
		t.Fatalf("job history -o json: %v\n%s", err, out)
	}
	if len(hist) != 1 || hist[0].ID != "ring-1" || hist[0].State != "succeeded" || hist[0].MPI.Attempt != 1 || hist[0].MPI.Launcher.Task == "" {
		t.Fatalf("history: %s", out)
	}
	var hostTasks []string
	agents := map[string]int{}
	for _, h := range hist[0].Tasks {
		hostTasks = append(hostTasks, h.Task)
		agents[h.Agent]++
	}
	if len(hostTasks) != 8 || len(agents) != 3 {
		t.Fatalf("history: %d rank hosts on agents %v, want 8 on 3 agents", len(hostTasks), agents)
	}

	// Each rank ran inside a different rank host: in the pid and cgroup
	// namespaces of its process, at the root of its cgroup namespace
	// (the rank host's cgroup), never in the launcher.
	rankTask := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^rank (\d+) of 8: task (\S+) pidns (\S+) cgroupns (\S+) cgroup (\S+)$`).FindAllStringSubmatch(logs, -1) {
		rankTask[m[1]] = m[2]
		ns, ok := hostNS[m[2]]
		if !ok {
			t.Errorf("rank %s ran in task %s, not a rank host seen running (%v)", m[1], m[2], hostTasks)
			continue
		}
		if m[3] != ns.pid || m[4] != ns.cgroup {
			t.Errorf("rank %s: pidns %s cgroupns %s, want rank host %s's %s %s", m[1], m[3], m[4], m[2], ns.pid, ns.cgroup)
		}
		if m[5] != "0::/" {
			t.Errorf("rank %s: cgroup %s, want the root of task %s's cgroup namespace (0::/)", m[1], m[5], m[2])
		}
	}
	var ran []string
	for _, task := range rankTask {
		ran = append(ran, task)
	}
	slices.Sort(ran)
	if want := slices.Sorted(slices.Values(hostTasks)); !slices.Equal(ran, want) {
		t.Fatalf("ranks ran in tasks %v, want one rank in each rank host %v:\n%s", rankTask, want, logs)
	}

	e.eventually("no allocation of the job left", func() (bool, string) {
		al, err := e.op().ListAllocations(ctx(t), connect.NewRequest(&pb.ListAllocationsRequest{}))
		if err != nil {
			return false, err.Error()
		}
		var left []string
		for _, a := range al.Msg.GetAllocations() {
			if a.GetLabels()["dcos.job"] == "ring" {
				left = append(left, a.GetId()+" "+a.GetState().String())
			}
		}
		return len(left) == 0, strings.Join(left, ", ")
	})
}
