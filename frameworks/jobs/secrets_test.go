package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/sdk/framework"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestParseSpec_SecretEnv(t *testing.T) {
	j, err := ParseSpec([]byte("name: j\ncommand: x\nresources: {cpus: 1}\nenv: {USER: app}\nsecretEnv: {DB_PASS: hunter2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	l := j.launchRequest("a-1", "j-1", 0, 1)
	if l.GetSecretEnv()["DB_PASS"] != "hunter2" || l.GetEnv()["USER"] != "app" || l.GetEnv()["DB_PASS"] != "" {
		t.Errorf("launch env %v, secret_env %v", l.GetEnv(), l.GetSecretEnv())
	}
	m, err := ParseSpec([]byte("name: m\nresources: {cpus: 1}\nsecretEnv: {DB_PASS: hunter2, DCOS_TOKEN: mine}\nmpi: {ranks: 2, command: mpirun}\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := &Run{ID: "m-1", Spec: m, Tasks: []TaskRecord{{Task: "t-1"}, {Task: "t-2"}}, MPI: &MPIRun{Attempt: 1}}
	for _, part := range []string{MPIHost, MPILauncher} {
		req := r.launchRequest(part, 0, "a-1", 1)
		if req.GetSecretEnv()["DB_PASS"] != "hunter2" {
			t.Errorf("%s secret_env = %v", part, req.GetSecretEnv())
		}
	}
	// The launcher's DCOS_TOKEN is the spec's secret one, not also in env.
	c := &Controller{KernelURL: "http://k", Token: "fw-token"}
	req := r.launchRequest(MPILauncher, 0, "a-1", 1)
	c.kernelEnv(req)
	if _, inEnv := req.GetEnv()[EnvToken]; inEnv || req.GetEnv()[EnvKernel] != "http://k" {
		t.Errorf("launcher env = %v", req.GetEnv())
	}
}

func TestParseSpec_SecretEnvErrors(t *testing.T) {
	base := "name: j\ncommand: x\nresources: {cpus: 1}\n"
	tests := []struct{ name, in, want string }{
		{"in both", base + "env: {DB_PASS: a}\nsecretEnv: {DB_PASS: hunter2}\n", "spec.secretEnv.DB_PASS: also in env (a name is in one of them)"},
		{"bad name", base + "secretEnv: {'A=B': hunter2}\n", `spec.secretEnv: invalid variable name "A=B" (want no '=' or NUL, not empty)`},
		{"reserved", base + "secretEnv: {DCOS_JOB_RUN: hunter2}\n", "spec.secretEnv.DCOS_JOB_RUN: the DCOS_JOB names are the framework's"},
		{"NUL", `{"name":"j","command":"x","resources":{"cpus":1},"secretEnv":{"DB_PASS":"hun\u0000ter2"}}`, "spec.secretEnv.DB_PASS: the value contains a NUL byte"},
		{"too big", base + "secretEnv: {BIG: " + strings.Repeat("v", framework.MaxSecretEnvBytes) + "}\n", "spec.secretEnv: names and values total 65539 bytes, more than 65536"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSpec([]byte(tt.in))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("ParseSpec: %v, want %q", err, tt.want)
			}
		})
	}
}

func TestRun_Redacted(t *testing.T) {
	j, err := ParseSpec([]byte("name: j\ncommand: x\nresources: {cpus: 1}\nsecretEnv: {DB_PASS: hunter2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := &Run{ID: "j-1", Spec: j}
	for _, v := range []any{r.Redacted(), SpecRecord{Spec: *j}.Redacted()} {
		b, _ := json.Marshal(v)
		if strings.Contains(string(b), "hunter2") || !strings.Contains(string(b), `"DB_PASS":"\u003credacted\u003e"`) {
			t.Errorf("redacted = %s", b)
		}
	}
	if j.SecretEnv["DB_PASS"] != "hunter2" || (&Run{}).Redacted().Spec != nil {
		t.Error("Redacted changed what it copied, or made a spec")
	}
}

// TestServe_SecretEnv runs a job with a secretEnv on a real kernel: the
// task's agent gets the value, ListTasks shows its name only, the spec
// and the run record (which copies the spec) are secret entries, and
// etcd's files never hold the value.
func TestServe_SecretEnv(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := startCluster(t)
	c.addAgent(ctx, 0)
	c.serve(ctx, time.Now)
	c.apply(ctx, "name: backup\ncommand: fake\nargs: [hold]\nresources: {cpus: 1}\nenv: {USER: app}\nsecretEnv: {DB_PASS: hunter2-job}\n", time.Now())
	run, err := c.operator().StartRun(ctx, "backup", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var tk *pb.Task
	for tk == nil && ctx.Err() == nil {
		l, err := c.op.ListTasks(ctx, &pb.ListTasksRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range l.GetTasks() {
			if x.GetLabels()[LabelRun] == run.ID && x.GetState() == pb.TaskState_TASK_STATE_RUNNING {
				tk = x
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if tk == nil {
		t.Fatal("the run's task never ran")
	}
	res, err := c.srv.Kernel.TaskSecrets(ctx, kernel.Principal{Name: "agent-0", Role: kernel.RoleAgent}, &pb.TaskSecretsRequest{TaskId: tk.GetId()})
	if err != nil || res.GetEnv()["DB_PASS"] != "hunter2-job" {
		t.Errorf("TaskSecrets: %v, %v", res.GetEnv(), err)
	}
	if v, named := tk.GetSecretEnv()["DB_PASS"]; !named || len(v) != 0 || tk.GetEnv()["DB_PASS"] != "" || tk.GetEnv()["USER"] != "app" {
		t.Errorf("ListTasks shows env %v, secret_env %v: want the name only", tk.GetEnv(), tk.GetSecretEnv())
	}
	c.released.Store(true)
	c.waitRun(ctx, "backup", run.ID, ended)
	for _, key := range []string{SpecKey("backup"), RunKey("backup", run.Seq)} {
		e, err := c.op.StateGet(ctx, &pb.StateGetRequest{Key: key, Owner: "jobs"})
		if err != nil {
			t.Fatal(err)
		}
		if !e.GetEntry().GetSecret() {
			t.Errorf("%s: not a secret entry", key)
		}
	}
	err = filepath.WalkDir(c.srv.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte("hunter2")) {
			t.Errorf("%s holds the secret in clear", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
