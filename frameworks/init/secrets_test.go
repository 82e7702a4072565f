package dinit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/sdk/framework"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestParse_SecretEnv(t *testing.T) {
	svcs, err := Parse([]byte("name: db\ncommand: x\nresources: {cpus: 1}\nenv: {USER: app}\nsecretEnv: {DB_PASS: hunter2, API_KEY: k}\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := svcs[0]
	if !s.HasSecrets() || s.SecretEnv["DB_PASS"] != "hunter2" {
		t.Fatalf("secretEnv = %v", s.SecretEnv)
	}
	l := s.launchRequest("a-1", 1, 0)
	if l.GetSecretEnv()["DB_PASS"] != "hunter2" || l.GetSecretEnv()["API_KEY"] != "k" {
		t.Errorf("launch secret_env = %v", l.GetSecretEnv())
	}
	if _, inEnv := l.GetEnv()["DB_PASS"]; inEnv || l.GetEnv()["USER"] != "app" {
		t.Errorf("launch env = %v, want the secret out of it", l.GetEnv())
	}
	plain, err := Parse([]byte("name: db\ncommand: x\nresources: {cpus: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if plain[0].HasSecrets() {
		t.Error("a spec without secretEnv has secrets")
	}
}

func TestParse_SecretEnvErrors(t *testing.T) {
	base := "name: db\ncommand: x\nresources: {cpus: 1}\n"
	many := make([]string, framework.MaxSecretEnv+1)
	for i := range many {
		many[i] = "S" + strings.Repeat("x", i) + ": v"
	}
	big := strings.Repeat("v", framework.MaxSecretEnvBytes)
	tests := []struct{ name, in, want string }{
		{"in both", base + "env: {DB_PASS: a}\nsecretEnv: {DB_PASS: hunter2}\n", "services[0].secretEnv.DB_PASS: also in env"},
		{"bad name", base + "secretEnv: {'A=B': hunter2}\n", `services[0].secretEnv: invalid variable name "A=B"`},
		{"empty name", `{"name":"db","command":"x","resources":{"cpus":1},"secretEnv":{"":"hunter2"}}`, `services[0].secretEnv: invalid variable name ""`},
		{"NUL", `{"name":"db","command":"x","resources":{"cpus":1},"secretEnv":{"DB_PASS":"hun\u0000ter2"}}`, "services[0].secretEnv.DB_PASS: the value contains a NUL byte"},
		{"too many", base + "secretEnv: {" + strings.Join(many, ", ") + "}\n", "services[0].secretEnv: at most 64 entries, got 65"},
		{"too big", base + "secretEnv: {BIG: " + big + "}\n", "services[0].secretEnv: names and values total 65539 bytes, more than 65536"},
		{"not a string", base + "secretEnv: {DB_PASS: [1]}\n", "secretEnv"},
		{"bad env name", base + "env: {'A=B': x}\n", `services[0].env: invalid variable name "A=B"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse: %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "hun\x00ter2") {
				t.Errorf("the error quotes the secret: %q", err)
			}
		})
	}
}

func TestService_RedactedAndTemplate(t *testing.T) {
	svcs, err := Parse([]byte("name: db\ncommand: x\nresources: {cpus: 1}\nsecretEnv: {DB_PASS: hunter2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := svcs[0]
	rec := Record{Spec: s, Version: 3}
	b, err := json.Marshal(rec.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "hunter2") || !strings.Contains(string(b), `"secretEnv":{"DB_PASS":"\u003credacted\u003e"}`) {
		t.Errorf("redacted record = %s", b)
	}
	if s.SecretEnv["DB_PASS"] != "hunter2" {
		t.Error("Redacted changed the spec it copied")
	}
	// A new secret value is a new template (a rolling restart).
	c := s
	c.SecretEnv = map[string]string{"DB_PASS": "changed"}
	r1 := Next(nil, s, "apply", false, time.Unix(0, 0))
	r2 := Next(r1, c, "apply", false, time.Unix(1, 0))
	if r2.TemplateVersion != 2 {
		t.Errorf("a secretEnv change kept template version %d", r2.TemplateVersion)
	}
}

// TestRun_SecretEnv runs a service with a secretEnv on a real kernel: the
// task's agent gets the value (as the task's environment), ListTasks and
// events show its name only, the spec's state entries are secret, etcd's
// files never hold the value, and a new value replaces the instance.
func TestRun_SecretEnv(t *testing.T) {
	c := startCluster(t, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	a := c.addAgent(ctx, 0)
	defer a.stop()

	// Every event until the end, to check none carries the value.
	var (
		evMu   sync.Mutex
		events []*pb.Event
	)
	wctx, wcancel := context.WithCancel(ctx)
	watchDone := make(chan error, 1)
	go func() {
		watchDone <- c.op.Watch(wctx, &pb.WatchRequest{}, func(ev *pb.Event) error {
			evMu.Lock()
			events = append(events, ev)
			evMu.Unlock()
			return nil
		})
	}()

	const spec = "name: db\ncommand: sleep\nargs: ['1000']\nresources: {cpus: 0.1, mem: 16Mi}\nenv: {USER: app}\nsecretEnv: {DB_PASS: %s}\nbackoff: {seconds: 0.05, factor: 2, maxLaunchDelaySeconds: 1}\n"
	r := c.startInit(ctx, "init-0")
	defer r.stop(t)
	c.apply(ctx, fmt.Sprintf(spec, "hunter2-first"), false)

	running := func(version string) *pb.Task {
		for _, tk := range c.view(ctx, "db").running {
			if tk.GetLabels()[LabelVersion] == version {
				return tk
			}
		}
		return nil
	}
	secretsOf := func(tk *pb.Task) map[string]string {
		t.Helper()
		res, err := c.srv.Kernel.TaskSecrets(ctx, kernel.Principal{Name: "agent-0", Role: kernel.RoleAgent}, &pb.TaskSecretsRequest{TaskId: tk.GetId()})
		if err != nil {
			t.Fatalf("TaskSecrets: %v", err)
		}
		return res.GetEnv()
	}
	var tk *pb.Task
	eventually(t, "the instance running", func() bool { tk = running("1"); return tk != nil })
	if got := secretsOf(tk)["DB_PASS"]; got != "hunter2-first" {
		t.Errorf("the task's agent got DB_PASS %q", got)
	}
	if v, named := tk.GetSecretEnv()["DB_PASS"]; !named || len(v) != 0 || tk.GetEnv()["DB_PASS"] != "" || tk.GetEnv()["USER"] != "app" {
		t.Errorf("ListTasks shows env %v, secret_env %v: want the name only", tk.GetEnv(), tk.GetSecretEnv())
	}

	// The spec's entries are secret; the init's own entries are not.
	for _, key := range []string{SpecKey("db"), HistoryKey("db", 1)} {
		res, err := c.op.StateGet(ctx, &pb.StateGetRequest{Key: key, Owner: "init"})
		if err != nil {
			t.Fatal(err)
		}
		if !res.GetEntry().GetSecret() {
			t.Errorf("%s: not a secret entry", key)
		}
	}

	// A new value is a new template: the instance is replaced.
	c.apply(ctx, fmt.Sprintf(spec, "hunter2-second"), false)
	eventually(t, "the instance replaced", func() bool {
		tk = running("2")
		v := c.view(ctx, "db")
		return tk != nil && len(v.running) == 1
	})
	if got := secretsOf(tk)["DB_PASS"]; got != "hunter2-second" {
		t.Errorf("the new task's agent got DB_PASS %q", got)
	}

	wcancel()
	<-watchDone
	evMu.Lock()
	defer evMu.Unlock()
	if len(events) == 0 {
		t.Fatal("the watch saw no event")
	}
	for _, ev := range events {
		b, _ := protojson.Marshal(ev)
		if strings.Contains(string(b), "hunter2") {
			t.Fatalf("an event carries the secret: %s", b)
		}
	}
	// At rest: no file of etcd holds a value in clear.
	err := filepath.WalkDir(c.srv.Dir, func(path string, d fs.DirEntry, err error) error {
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
