package ctl

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/sdk/framework"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Secrets in dcosctl (docs/security.md, "Secrets"): run and launch take
// --secret-env, sealed by the kernel and handed to the task alone; ps
// shows a task's secret names with <redacted> values, and its owner's
// values with --reveal-secrets.

// redacted is what ps -o json shows for a secret value it was not given
// (the SDK's marker, which svc and job outputs show too).
const redacted = framework.Redacted

// secretEnvFlag is run's and launch's --secret-env.
func secretEnvFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "secret-env", Usage: "secret environment variable `NAME=VALUE` of the task, or NAME=@FILE to read the value from FILE " +
		"(one trailing newline dropped) so that it stays out of your shell history; repeatable. The kernel seals it in etcd " +
		"and shows it to no one but the task (ps shows the name; its owner sees the value with ps --reveal-secrets -o json)"}
}

// addSecretEnv fills req.secret_env from --secret-env. A value is never
// quoted in an error.
func addSecretEnv(c *cli.Context, req *syscallsv1.LaunchRequest) error {
	for _, kv := range c.StringSlice("secret-env") {
		name, v, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return usagef("--secret-env %q: want NAME=VALUE or NAME=@FILE", name)
		}
		if path, file := strings.CutPrefix(v, "@"); file {
			b, err := os.ReadFile(path)
			if err != nil {
				return usagef("--secret-env %s: %v", name, err)
			}
			v = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		}
		if _, dup := req.GetEnv()[name]; dup {
			return usagef("--secret-env %s: also given with --env", name)
		}
		if req.SecretEnv == nil {
			req.SecretEnv = map[string]string{}
		}
		req.SecretEnv[name] = v
	}
	return nil
}

// revealSecretsFlag is ps's --reveal-secrets.
var revealSecretsFlag = &cli.BoolFlag{Name: "reveal-secrets", Usage: "with -o json: show the secret env values of your own tasks (an operator: every task's) in revealedSecretEnv", DisableDefaultText: true}

// writeTasksJSON prints a ListTasks answer as ps -o json does, each
// task's secret_env values (empty: the kernel never hands them out) shown
// as <redacted>. Without secrets it prints as writeJSON does.
func writeTasksJSON(w io.Writer, res *syscallsv1.ListTasksResponse) error {
	if !slices.ContainsFunc(res.GetTasks(), func(t *syscallsv1.Task) bool { return len(t.GetSecretEnv()) > 0 }) {
		return writeJSON(w, res)
	}
	b, err := marshalCompact(res)
	if err != nil {
		return err
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		return err
	}
	var tasks []map[string]json.RawMessage
	if err := json.Unmarshal(doc["tasks"], &tasks); err != nil {
		return err
	}
	for _, t := range tasks {
		raw, ok := t["secretEnv"]
		if !ok {
			continue
		}
		var names map[string]string
		if err := json.Unmarshal(raw, &names); err != nil {
			return err
		}
		for n := range names {
			names[n] = redacted
		}
		if t["secretEnv"], err = marshalRaw(names); err != nil {
			return err
		}
	}
	if doc["tasks"], err = marshalRaw(tasks); err != nil {
		return err
	}
	if b, err = marshalRaw(doc); err != nil {
		return err
	}
	return writeIndented(w, b)
}

// marshalRaw is json.Marshal without escaping "<" and ">".
func marshalRaw(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
