package ctl

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestRun_SecretEnv against a real kernel: run --secret-env NAME=VALUE
// and NAME=@FILE launch a task whose secrets ps -o json shows as
// <redacted> names, its owner sees with --reveal-secrets, and another
// framework does not see at all; bad flags are usage errors that quote
// no value.
func TestRun_SecretEnv(t *testing.T) {
	isolate(t)
	const (
		inline = "inline-secret-3e9d"
		inFile = "file-secret-71ab"
	)
	srv := kerneltest.Start(t, kerneltest.Options{})
	ctx := context.Background()
	if _, err := kclient.New(srv.URL, kerneltest.AgentToken).RegisterAgent(ctx, connect.NewRequest(&syscallsv1.RegisterAgentRequest{
		Hostname: "h", Resources: &syscallsv1.Resources{Cpus: 4, MemBytes: 4 << 30}})); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(file, []byte(inFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	as := func(token string, args ...string) result {
		return runCtl(t, ctx, "", append([]string{"--kernel", srv.URL, "--token", token}, args...)...)
	}
	r := as(kerneltest.FrameworkToken, "run", "--detach", "--cpus", "0.1", "--mem", "1Mi", "-e", "PLAIN=1",
		"--secret-env", "API_KEY="+inline, "--secret-env", "DB_PASSWORD=@"+file, "--", "/bin/true")
	if r.code != 0 {
		t.Fatalf("run: exit %d: %s", r.code, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, inline) || strings.Contains(r.stdout+r.stderr, inFile) {
		t.Errorf("run printed a secret:\n%s%s", r.stdout, r.stderr)
	}

	r = as(kerneltest.FrameworkToken, "ps", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"API_KEY": "<redacted>"`) || !strings.Contains(r.stdout, `"DB_PASSWORD": "<redacted>"`) ||
		strings.Contains(r.stdout, inline) || strings.Contains(r.stdout, inFile) {
		t.Errorf("ps -o json: exit %d, want the names <redacted> and no value:\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = as(kerneltest.FrameworkToken, "ps", "-o", "json", "--reveal-secrets")
	if r.code != 0 || !strings.Contains(r.stdout, `"API_KEY": "`+inline+`"`) || !strings.Contains(r.stdout, `"DB_PASSWORD": "`+inFile+`"`) {
		t.Errorf("ps -o json --reveal-secrets as the owner: exit %d, want both values (the file's without its newline):\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = as(kerneltest.FrameworkBToken, "ps", "-o", "json", "--reveal-secrets")
	if r.code != 0 || strings.Contains(r.stdout, inline) || strings.Contains(r.stdout, "API_KEY") {
		t.Errorf("ps as another framework: exit %d, want no trace of the task:\n%s%s", r.code, r.stdout, r.stderr)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"reveal without json", []string{"ps", "--reveal-secrets"}, "--reveal-secrets goes with -o json"},
		{"no =", []string{"run", "--detach", "--cpus", "0.1", "--mem", "1Mi", "--secret-env", "NOVALUE", "--", "/bin/true"}, "want NAME=VALUE or NAME=@FILE"},
		{"missing file", []string{"run", "--detach", "--cpus", "0.1", "--mem", "1Mi", "--secret-env", "A=@/nonexistent/" + inline, "--", "/bin/true"}, "--secret-env A:"},
		{"also in env", []string{"run", "--detach", "--cpus", "0.1", "--mem", "1Mi", "-e", "A=1", "--secret-env", "A=" + inline, "--", "/bin/true"}, "--secret-env A: also given with --env"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := as(kerneltest.FrameworkToken, tc.args...)
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want an error with %q", r.code, r.stderr, tc.want)
			}
			if tc.name != "missing file" && strings.Contains(r.stderr, inline) {
				t.Errorf("the error quotes the secret: %q", r.stderr)
			}
		})
	}
}
