package jobs

import (
	"encoding/json"
	"strings"
	"testing"
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
		{"too big", base + "secretEnv: {BIG: " + strings.Repeat("v", MaxSecretEnvBytes) + "}\n", "spec.secretEnv: names and values total 65539 bytes, more than 65536"},
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
		if strings.Contains(string(b), "hunter2") || !strings.Contains(string(b), `"DB_PASS":"\u003csecret\u003e"`) {
			t.Errorf("redacted = %s", b)
		}
	}
	if j.SecretEnv["DB_PASS"] != "hunter2" || (&Run{}).Redacted().Spec != nil {
		t.Error("Redacted changed what it copied, or made a spec")
	}
}
