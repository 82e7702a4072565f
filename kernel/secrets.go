package kernel

import (
	"context"
	"maps"
	"strings"

	"google.golang.org/protobuf/proto"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Secrets (issue 17; docs/security.md, "Secrets"). A task's secret
// environment (LaunchRequest.secret_env) is sealed by Table.Launch,
// before it enters the table: the table, the store, the event log and
// every Watch stream carry ciphertext only, so nothing needs redacting
// on the way out but the ciphertext itself, which every answer that
// leaves the kernel strips to empty values (names stay visible, as
// kubectl describe shows a pod's secret references). The values are
// opened only for the task's agent (TaskSecrets) and for the task's owner
// or an operator who asks (ListTasksRequest.reveal_secrets).

// Sealer encrypts values at rest: *seal.Keyring (internal/seal)
// satisfies it. Seal binds plaintext to aad; Open fails unless given the
// same aad. Both must be safe for concurrent use.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}

// Limits of a task's secret environment.
const (
	MaxSecretEnv      = 64       // secret_env entries per task
	MaxSecretEnvBytes = 64 << 10 // bytes of secret_env names and values in all
)

// errNoKEK is the answer to secrets on a kernel without a key.
func errNoKEK(field string) error {
	return errorf(FailedPrecondition, "%s: this kernel has no key-encryption key (--kek-file)", field)
}

// validateSecretEnv checks r.secret_env: env's name rules, no name also
// in env, MaxSecretEnv and MaxSecretEnvBytes. Errors name the entry but
// never quote a value.
func validateSecretEnv(r *pb.LaunchRequest) error {
	se := r.GetSecretEnv()
	if len(se) > MaxSecretEnv {
		return fieldError("secret_env", "at most %d entries, got %d", MaxSecretEnv, len(se))
	}
	size := 0
	for name, v := range se {
		if name == "" || strings.ContainsAny(name, "=\x00") {
			return fieldError("secret_env", "invalid variable name %q", clip(name))
		}
		if _, dup := r.GetEnv()[name]; dup {
			return fieldError("secret_env["+clip(name)+"]", "also in env")
		}
		if strings.ContainsRune(v, 0) {
			return fieldError("secret_env["+clip(name)+"]", "contains a NUL byte")
		}
		size += len(name) + len(v)
	}
	if size > MaxSecretEnvBytes {
		return fieldError("secret_env", "names and values total %d bytes, more than %d", size, MaxSecretEnvBytes)
	}
	return nil
}

// secretAAD is what a task's secret value is bound to: it opens only as
// the value of that name of that task.
func secretAAD(taskID, name string) []byte { return []byte(taskID + "/" + name) }

// SetSealer gives the table the key Launch seals secret_env with (nil:
// a Launch with secret_env is FailedPrecondition).
func (t *Table) SetSealer(s Sealer) { t.sealer = s }

// sealSecrets seals env, the secret environment of task id.
func (t *Table) sealSecrets(id string, env map[string]string) (map[string][]byte, error) {
	if len(env) == 0 {
		return nil, nil
	}
	if t.sealer == nil {
		return nil, errNoKEK("secret_env")
	}
	out := make(map[string][]byte, len(env))
	for name, v := range env {
		b, err := t.sealer.Seal([]byte(v), secretAAD(id, name))
		if err != nil {
			return nil, errorf(Internal, "secret_env: seal: %v", err)
		}
		out[name] = b
	}
	return out, nil
}

// hasSecretValues reports whether k carries a non-empty secret value.
func hasSecretValues(k *pb.Task) bool {
	for _, v := range k.GetSecretEnv() {
		if len(v) > 0 {
			return true
		}
	}
	return false
}

// stripSecrets empties k's secret values in place (k must be the
// caller's own copy), keeping the names, and drops any revealed ones.
func stripSecrets(k *pb.Task) {
	for name := range k.GetSecretEnv() {
		k.SecretEnv[name] = nil
	}
	k.RevealedSecretEnv = nil
}

// strippedEvent returns e, or a clone of it whose task carries no secret
// values (events are shared by every watcher: they are never changed).
func strippedEvent(e *pb.Event) *pb.Event {
	if k := e.GetTask(); k != nil && (hasSecretValues(k) || len(k.GetRevealedSecretEnv()) > 0) {
		cl := proto.Clone(e).(*pb.Event)
		stripSecrets(cl.Task)
		return cl
	}
	return e
}

// openSecrets opens k's secret environment.
func (k *Kernel) openSecrets(task *pb.Task) (map[string]string, error) {
	if len(task.GetSecretEnv()) == 0 {
		return nil, nil
	}
	if k.cfg.Sealer == nil {
		return nil, errNoKEK("secret_env")
	}
	out := make(map[string]string, len(task.GetSecretEnv()))
	for name, sealed := range task.GetSecretEnv() {
		b, err := k.cfg.Sealer.Open(sealed, secretAAD(task.GetId(), name))
		if err != nil {
			return nil, errorf(Internal, "secret_env[%s] of task %s: open: %v", clip(name), task.GetId(), err)
		}
		out[name] = string(b)
	}
	return out, nil
}

// revealOrStrip prepares tasks (the caller's own clones) for an answer
// to p: every task loses its secret values; with reveal, the tasks p
// owns (an operator: all) get them in clear in revealed_secret_env. A
// value that fails to open (the KEK file lacks its key) is left out and
// logged, by name only.
func (k *Kernel) revealOrStrip(p Principal, tasks []*pb.Task, reveal bool) {
	for _, task := range tasks {
		var clear map[string]string
		if reveal && p.owns(task.GetOwner()) && len(task.GetSecretEnv()) > 0 {
			var err error
			if clear, err = k.openSecrets(task); err != nil {
				k.log.Warn("reveal secrets", "task", task.GetId(), "err", err)
				clear = nil
			}
		}
		stripSecrets(task)
		task.RevealedSecretEnv = clear
	}
}

// TaskSecrets answers the agent task req.task_id is placed on with the
// task's secret environment in clear: only an agent token bound to that
// agent (identity.go) may ask; any other principal is PermissionDenied,
// and an unknown or ended task is NotFound.
func (k *Kernel) TaskSecrets(_ context.Context, p Principal, req *pb.TaskSecretsRequest) (*pb.TaskSecretsResponse, error) {
	if req.GetTaskId() == "" {
		return nil, fieldError("task_id", "required")
	}
	var task *pb.Task
	var mine string
	k.view.read(func(t *Table) {
		mine = t.boundAgent(p)
		if x := t.tasks[req.GetTaskId()]; x != nil && !terminal(x.GetState()) {
			task = &pb.Task{Id: x.GetId(), AgentId: x.GetAgentId(), SecretEnv: maps.Clone(x.GetSecretEnv())}
		}
	})
	if p.Role != RoleAgent {
		return nil, errorf(PermissionDenied, "task_id: only the agent a task is placed on reads its secrets")
	}
	if task == nil {
		return nil, errorf(NotFound, "task_id: no live task %q", clip(req.GetTaskId()))
	}
	if mine == "" || task.GetAgentId() != mine {
		return nil, errorf(PermissionDenied, "task_id: task %q is not placed on the agent of token %q", task.GetId(), p.Name)
	}
	env, err := k.openSecrets(task)
	if err != nil {
		return nil, err
	}
	return &pb.TaskSecretsResponse{Env: env}, nil
}
