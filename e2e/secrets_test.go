package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestSecrets_EndToEnd runs a real dcosd dev: a framework launches a task
// with dcosctl run --secret-env NAME=@FILE; the task sees the value (it
// writes it into its sandbox), while the value is in none of etcd's data
// files, in no ps -o json answer but its owner's --reveal-secrets (not
// another framework's, not the operator's without asking), in no event of
// dcosctl watch, and in no line dcosd logged. The plain env value of the
// same task is the control that each place shown to be clean does hold
// what the task was launched with.
func TestSecrets_EndToEnd(t *testing.T) {
	e := newEnv(t)
	dev := e.startDev("--init=false", "--jobs=false")
	secret := "e2e-secret-" + newToken()[:12]
	plain := "e2e-plain-" + newToken()[:12]
	file := e.path("db-password")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fwA := strings.TrimSpace(e.mustCtl("token", "create", "--role", "framework", "--name", "fw-secrets-a"))
	fwB := strings.TrimSpace(e.mustCtl("token", "create", "--role", "framework", "--name", "fw-secrets-b"))
	as := func(token string, args ...string) string {
		t.Helper()
		return e.mustCtl(append([]string{"--kernel", e.url, "--token", token}, args...)...)
	}
	eventually(t, "the framework tokens work", func() (bool, string) {
		_, err := e.client(fwA).ListTasks(ctx(t), connect.NewRequest(&pb.ListTasksRequest{}))
		_, errB := e.client(fwB).ListTasks(ctx(t), connect.NewRequest(&pb.ListTasksRequest{}))
		return err == nil && errB == nil, sprint(err, errB)
	})
	before, err := e.op().ListTasks(ctx(t), connect.NewRequest(&pb.ListTasksRequest{}))
	if err != nil {
		t.Fatal(err)
	}

	out := as(fwA, "run", "--cpus", "0.1", "--mem", "32Mi", "-e", "PLAIN="+plain, "--secret-env", "DB_PASSWORD=@"+file,
		"--", "sh", "-c", `printf %s "$DB_PASSWORD" > seen; exec sleep 300`)
	if strings.Contains(out, secret) {
		t.Errorf("dcosctl run printed the secret:\n%s", out)
	}
	var task *pb.Task
	e.eventually("the task running", func() (bool, string) {
		res, err := e.client(fwA).ListTasks(ctx(t), connect.NewRequest(&pb.ListTasksRequest{}))
		if err != nil || len(res.Msg.GetTasks()) != 1 {
			return false, sprint(err, res)
		}
		task = res.Msg.GetTasks()[0]
		return task.GetState() == pb.TaskState_TASK_STATE_RUNNING, sprint(task)
	})
	e.notePID(task.GetPid())
	e.eventually("the task to write what it sees", func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(task.GetSandbox(), "seen"))
		return string(b) == secret, sprint(string(b), err)
	})

	t.Run("ps", func(t *testing.T) {
		e := e.in(t)
		for _, tc := range []struct {
			name, token string
			args        []string
			want        string // must be in the output
			wantSecret  bool
		}{
			{"owner", fwA, nil, `"DB_PASSWORD": "<redacted>"`, false},
			{"owner reveal", fwA, []string{"--reveal-secrets"}, `"DB_PASSWORD": "` + secret + `"`, true},
			{"operator", e.opToken, nil, `"DB_PASSWORD": "<redacted>"`, false},
			{"other framework reveal", fwB, []string{"--reveal-secrets"}, "", false},
		} {
			out := e.mustCtl(append([]string{"--kernel", e.url, "--token", tc.token, "ps", "-o", "json"}, tc.args...)...)
			if !strings.Contains(out, tc.want) || strings.Contains(out, secret) != tc.wantSecret {
				t.Errorf("%s: ps -o json %v shows the secret %v, want %v; want %q in:\n%s", tc.name, tc.args, strings.Contains(out, secret), tc.wantSecret, tc.want, out)
			}
			if tc.token == fwB && strings.Contains(out, task.GetId()) {
				t.Errorf("another framework sees task %s:\n%s", task.GetId(), out)
			}
		}
	})

	t.Run("watch", func(t *testing.T) {
		e := e.in(t)
		wctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		cmd := e.ctlCmd(wctx, "watch", "--after", strconv.FormatInt(before.Msg.GetRevision(), 10), "-o", "json")
		var o bytes.Buffer
		cmd.Stdout = &o
		_ = cmd.Run() // ended by the timeout
		if !strings.Contains(o.String(), task.GetId()) || !strings.Contains(o.String(), plain) {
			t.Fatalf("control: dcosctl watch shows neither task %s nor its plain env:\n%s", task.GetId(), tail(o.String(), 40))
		}
		if strings.Contains(o.String(), secret) {
			t.Errorf("dcosctl watch shows the secret:\n%s", o.String())
		}
		// Nor the ciphertext: the events carry names with empty values.
		for _, line := range strings.Split(strings.TrimSpace(o.String()), "\n") {
			var ev struct {
				Task struct {
					SecretEnv map[string]string `json:"secretEnv"`
				} `json:"task"`
			}
			if json.Unmarshal([]byte(line), &ev) == nil {
				if v, ok := ev.Task.SecretEnv["DB_PASSWORD"]; ok && v != "" {
					t.Errorf("an event carries a secret value (ciphertext %d bytes)", len(v))
				}
			}
		}
	})

	t.Run("etcd data files", func(t *testing.T) {
		dir := e.path("data", "etcd")
		var sawPlain bool
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("etcd file %s holds the secret", path)
			}
			sawPlain = sawPlain || bytes.Contains(b, []byte(plain))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !sawPlain {
			t.Errorf("control: the plain env value is in none of etcd's files under %s", dir)
		}
	})

	t.Run("logs", func(t *testing.T) {
		logs := dev.stdout.String() + dev.stderr.String()
		if !strings.Contains(logs, "kernel serving") {
			t.Fatalf("control: dcosd logged nothing we know:\n%s", tail(logs, 20))
		}
		if strings.Contains(logs, secret) {
			t.Errorf("dcosd logged the secret")
		}
	})
}
