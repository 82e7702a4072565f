package ctl

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	dinit "github.com/dcos-kernel/dcos/frameworks/init"
	"github.com/dcos-kernel/dcos/frameworks/jobs"
	"github.com/dcos-kernel/dcos/sdk/framework"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// isSecret reports whether owner's key is a secret state entry.
func (k *svcKernel) isSecret(owner, key string) bool {
	k.t.Helper()
	res, err := k.op.StateGet(context.Background(), connect.NewRequest(&syscallsv1.StateGetRequest{Key: key, Owner: owner}))
	if err != nil {
		k.t.Fatalf("%s: %v", key, err)
	}
	return res.Msg.GetEntry().GetSecret()
}

// noSecret fails the test when out shows the secret value.
func noSecret(t *testing.T, what, out string) {
	t.Helper()
	if strings.Contains(out, "hunter2") {
		t.Errorf("%s shows the secret:\n%s", what, out)
	}
}

// TestSvc_SecretEnv: svc apply stores a spec with secretEnv in secret
// entries; no svc output shows a value (get shows "<redacted>"); a new
// value is an update (a rolling restart); a name in env and secretEnv is
// refused, naming the field.
func TestSvc_SecretEnv(t *testing.T) {
	isolate(t)
	k := startSvcKernel(t)
	const spec = "name: db\ncommand: sleep\nresources: {cpus: 0.1}\nenv: {USER: app}\nsecretEnv: {DB_PASS: %s}\n"

	bad := writeSpec(t, "name: db\ncommand: sleep\nresources: {cpus: 0.1}\nenv: {DB_PASS: x}\nsecretEnv: {DB_PASS: hunter2}\n")
	if r := k.svc("apply", "-f", bad); r.code == 0 || !strings.Contains(r.stderr, "services[0].secretEnv.DB_PASS: also in env") {
		t.Fatalf("env and secretEnv: exit %d, stderr %q", r.code, r.stderr)
	} else {
		noSecret(t, "the refusal", r.stderr)
	}

	first := writeSpec(t, strings.Replace(spec, "%s", "hunter2-first", 1))
	r := k.must("apply", "-f", first, "-o", "json")
	noSecret(t, "apply -o json", r.stdout)
	if !k.isSecret("init", dinit.SpecKey("db")) || !k.isSecret("init", dinit.HistoryKey("db", 1)) {
		t.Fatal("the spec's entries are not secret")
	}
	if rec := k.recordOf("init", "db"); rec.Spec.SecretEnv["DB_PASS"] != "hunter2-first" {
		t.Fatalf("stored secretEnv = %v", rec.Spec.SecretEnv)
	}

	second := writeSpec(t, strings.Replace(spec, "%s", "hunter2-second", 1))
	if r := k.must("apply", "-f", second, "--dry-run"); !strings.Contains(r.stdout, "db: would apply (dry run) version 2 (update)") {
		t.Errorf("a new secret value: %q, want an update", r.stdout)
	}
	k.must("apply", "-f", second)
	if rec := k.recordOf("init", "db"); rec.TemplateVersion != 2 {
		t.Errorf("a new secret value kept template version %d", rec.TemplateVersion)
	}

	get := k.must("get", "db")
	if !strings.Contains(get.stdout, "DB_PASS: <redacted>") || !strings.Contains(get.stdout, "USER: app") || !strings.Contains(get.stdout, "# db: version 2") {
		t.Errorf("svc get:\n%s", get.stdout)
	}
	getJSON := k.must("get", "db", "-o", "json")
	var shown dinit.Record
	if err := json.Unmarshal([]byte(getJSON.stdout), &shown); err != nil || shown.Spec.SecretEnv["DB_PASS"] != framework.Redacted || shown.Version != 2 {
		t.Errorf("svc get -o json: %v\n%s", err, getJSON.stdout)
	}
	for _, args := range [][]string{{"get", "db"}, {"get", "db", "-o", "json"}, {"history", "db"}, {"history", "db", "-o", "json"},
		{"ls"}, {"ls", "-o", "json"}, {"status", "db"}, {"status", "db", "-o", "json"}} {
		noSecret(t, "svc "+strings.Join(args, " "), k.must(args...).stdout)
	}
	if h := k.must("history", "db", "-o", "json").stdout; strings.Count(h, `"DB_PASS": "\u003credacted\u003e"`)+strings.Count(h, `"DB_PASS": "<redacted>"`) != 2 {
		t.Errorf("svc history -o json: want both versions' DB_PASS redacted:\n%s", h)
	}
	if r := k.svc("get", "nope"); r.code == 0 || !strings.Contains(r.stderr, `service "nope": not found`) {
		t.Errorf("get of an unknown service: exit %d %q", r.code, r.stderr)
	}
}

// TestJob_SecretEnv: job apply stores a spec with secretEnv in a secret
// entry; job ls, status and history never show a value, also of a run
// record that copies the spec.
func TestJob_SecretEnv(t *testing.T) {
	isolate(t)
	k := startSvcKernel(t)
	job := func(args ...string) result {
		t.Helper()
		r := runCtl(t, context.Background(), "", append([]string{"--kernel", k.url, "--token", svcOpToken, "job"}, args...)...)
		if r.code != 0 {
			t.Fatalf("job %v: exit %d: %s", args, r.code, r.stderr)
		}
		return r
	}
	p := writeSpec(t, "name: backup\ncommand: x\nresources: {cpus: 1}\nsecretEnv: {DB_PASS: hunter2}\n")
	noSecret(t, "job apply", job("apply", "-f", p).stdout)
	if !k.isSecret("jobs", jobs.SpecKey("backup")) {
		t.Fatal("the job's spec entry is not secret")
	}
	// A run record as the framework writes it: with the spec, secret.
	rec, err := jobs.Operator{Store: jobStore{k.op}, Owner: "jobs"}.Spec(context.Background(), "backup")
	if err != nil {
		t.Fatal(err)
	}
	run := jobs.Run{ID: "backup-1", Job: "backup", Seq: 1, Cause: jobs.CauseManual, State: jobs.RunRunning, Spec: &rec.Spec, Created: time.Now(),
		Tasks: []jobs.TaskRecord{{Index: 0}}}
	b, _ := json.Marshal(run)
	if _, err := k.op.StatePut(context.Background(), connect.NewRequest(&syscallsv1.StatePutRequest{Key: jobs.RunKey("backup", 1), Value: b, Owner: "jobs", Secret: true})); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"ls"}, {"ls", "-o", "json"}, {"status", "backup"}, {"status", "backup", "-o", "json"},
		{"history", "backup"}, {"history", "backup", "-o", "json"}} {
		out := job(args...).stdout
		noSecret(t, "job "+strings.Join(args, " "), out)
		if args[len(args)-1] == "json" && !strings.Contains(out, `"DB_PASS": "\u003credacted\u003e"`) && !strings.Contains(out, `"DB_PASS": "<redacted>"`) {
			t.Errorf("job %v: want DB_PASS shown as <redacted>:\n%s", args, out)
		}
	}
}
