package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/frameworks/jobs"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// stateKernel is fakeKernel with a framework state to read (StateGet,
// StateList), for dcosctl job.
type stateKernel struct {
	*fakeKernel
	state map[string][]byte
}

func (k *stateKernel) StateGet(_ context.Context, r *connect.Request[syscallsv1.StateGetRequest]) (*connect.Response[syscallsv1.StateGetResponse], error) {
	v, ok := k.state[r.Msg.GetKey()]
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, nil)
	}
	return connect.NewResponse(&syscallsv1.StateGetResponse{Entry: &syscallsv1.StateEntry{Key: r.Msg.GetKey(), Value: v, Revision: 1}}), nil
}

func (k *stateKernel) StateList(_ context.Context, r *connect.Request[syscallsv1.StateListRequest]) (*connect.Response[syscallsv1.StateListResponse], error) {
	res := &syscallsv1.StateListResponse{}
	for key, v := range k.state {
		if strings.HasPrefix(key, r.Msg.GetPrefix()) {
			res.Entries = append(res.Entries, &syscallsv1.StateEntry{Key: key, Value: v, Revision: 1})
		}
	}
	sort.Slice(res.Entries, func(i, j int) bool { return res.Entries[i].Key < res.Entries[j].Key })
	return connect.NewResponse(res), nil
}

func (k *stateKernel) serve(t *testing.T) string {
	mux := http.NewServeMux()
	mux.Handle(syscallsv1connect.NewKernelHandler(k))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestJob_MPIStatusAndLogs: dcosctl job status shows an MPI run's rank
// hosts and its launcher; job logs reads the launcher's output unless
// --task names a rank host.
func TestJob_MPIStatusAndLogs(t *testing.T) {
	spec, err := jobs.ParseSpec([]byte("name: ring\nresources: {cpus: 1}\nmpi: {ranks: 4, slotsPerTask: 2, command: mpirun}\n"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	rec := jobs.Run{ID: "ring-1", Job: "ring", Seq: 1, Cause: jobs.CauseManual, Spec: spec, State: jobs.RunRunning, Created: now, Started: now,
		Tasks: []jobs.TaskRecord{{Index: 0, Allocation: "a-1", Agent: "agent-1", Task: "t-1", Attempts: 1}, {Index: 1, Allocation: "a-2", Agent: "agent-2", Task: "t-2", Attempts: 1}},
		MPI:   &jobs.MPIRun{Attempt: 2, Failures: 1, LastReason: "launcher exited 1", Launcher: jobs.TaskRecord{Index: -1, Allocation: "a-3", Agent: "agent-2", Task: "t-3", Attempts: 1}}}
	k := &stateKernel{fakeKernel: &fakeKernel{}, state: map[string][]byte{}}
	for key, v := range map[string]any{jobs.SpecKey("ring"): jobs.SpecRecord{Spec: *spec, Version: 1, Created: now, Applied: now}, jobs.RunKey("ring", 1): rec} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		k.state[key] = b
	}
	url := k.serve(t)
	ctl := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"dcosctl", "--kernel", url, "--token", "x", "job"}, args...),
			&env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, now: time.Now})
		if code != 0 {
			t.Fatalf("job %v: exit %d\n%s%s", args, code, out.String(), errb.String())
		}
		return out.String()
	}
	status := ctl("status", "ring")
	for _, want := range []string{"mpi: 4 ranks on 2 rank hosts (slotsPerTask 2)", "attempt 2", "last attempt failed: launcher exited 1",
		"host 0    agent-1  running t-1", "host 1    agent-2  running t-2", "launcher  agent-2  running t-3"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}
	ctl("logs", "ring")
	ctl("logs", "ring", "--task", "1")
	var got []string
	for _, c := range k.recorded() {
		if c.method == "Logs" {
			got = append(got, c.req.(*syscallsv1.LogsRequest).GetTaskId())
		}
	}
	if strings.Join(got, ",") != "t-3,t-2" {
		t.Fatalf("logs read tasks %v, want the launcher t-3, then rank host 1's t-2", got)
	}
}

func TestJob_ApplyRefusesBadMPISpec(t *testing.T) {
	p := t.TempDir() + "/j.yaml"
	if err := os.WriteFile(p, []byte("name: j\nresources: {cpus: 1}\nmpi: {ranks: 7, slotsPerTask: 2, command: mpirun}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"dcosctl", "--kernel", "http://127.0.0.1:1", "--token", "x", "job", "apply", "-f", p},
		&env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, now: time.Now})
	if code != exitCallError || !strings.Contains(errb.String(), "spec.mpi.ranks: must be a multiple of mpi.slotsPerTask (2), got 7") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}
