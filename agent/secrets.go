package agent

import (
	"context"
	"fmt"
	"maps"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/plugins/contract"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// secretsStage gives a task with a secret environment (Task.secret_env:
// names only, as every kernel answer shows them) its values: it asks the
// kernel (TaskSecrets, which answers only the agent the task is placed
// on) just before the driver starts the task, and adds them to the
// driver's view of the task (r.cfg.Env) — after the network stage, so
// that no net driver sees them. The values live in the agent's memory
// for the start only: the checkpointed handle keeps the names out
// (checkpointHandle), the agent logs neither the environment nor the
// task config, and a failed call fails the start with the kernel's
// error, which names no value.
//
// Health and readiness checks do not get the secrets: a command check
// runs with the task's env alone (health.go), so a secret reaches the
// task's process and nothing else the agent runs (docs/security.md).
type secretsStage struct{}

func (secretsStage) name() string { return "secrets" }

func (secretsStage) setup(ctx context.Context, r *taskRun) error {
	if r.spec == nil || len(r.spec.GetSecretEnv()) == 0 {
		return nil
	}
	resp, err := r.a.client.TaskSecrets(ctx, connect.NewRequest(&syscallsv1.TaskSecretsRequest{TaskId: r.spec.GetId()}))
	if err != nil {
		return fmt.Errorf("secret_env: %w", err)
	}
	env := resp.Msg.GetEnv()
	for name := range r.spec.GetSecretEnv() {
		v, ok := env[name]
		if !ok {
			return fmt.Errorf("secret_env: the kernel's answer lacks %q", name)
		}
		if r.cfg.Env == nil {
			r.cfg.Env = map[string]string{}
		}
		r.cfg.Env[name] = v
	}
	return nil
}

func (secretsStage) teardown(context.Context, *taskRun) error { return nil }

// checkpointHandle returns h as the agent may write it to its checkpoint:
// without the values of spec's secret environment in the handle's task
// config (a shallow copy; h is not changed). A driver that recovers the
// task after an agent restart gets its config without them: the process
// already has its environment.
func checkpointHandle(h *contract.TaskHandle, spec *syscallsv1.Task) *contract.TaskHandle {
	if h == nil || h.Config == nil || len(spec.GetSecretEnv()) == 0 {
		return h
	}
	cfg := *h.Config
	cfg.Env = maps.Clone(cfg.Env)
	for name := range spec.GetSecretEnv() {
		delete(cfg.Env, name)
	}
	out := *h
	out.Config = &cfg
	return &out
}
