package kernel_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/dcos-kernel/dcos/internal/seal"
	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

var (
	agentOne = kernel.Principal{Name: "agent-one", Role: kernel.RoleAgent}
	agentTwo = kernel.Principal{Name: "agent-two", Role: kernel.RoleAgent}
)

const (
	secretValue = "s3cr3t-hunter2-value"
	plainValue  = "plain-visible-value"
)

// sealedEnv is an env whose store and kernel seal with one new KEK.
func sealedEnv(t testing.TB) (*env, kernel.Sealer) {
	t.Helper()
	kek, err := seal.NewKeyring(seal.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.store.WithSealer(kek)
	return e, kek
}

// registerAs registers a new agent as p (binding p to it).
func registerAs(t testing.TB, k *kernel.Kernel, p kernel.Principal) string {
	t.Helper()
	r, err := k.RegisterAgent(context.Background(), p, &pb.RegisterAgentRequest{Hostname: p.Name, Labels: map[string]string{"node": p.Name}, Resources: &pb.Resources{Cpus: 64, MemBytes: 64 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	return r.GetAgentId()
}

// launchOn allocates on the agent registered by node (registerAs) and launches a task there with env and
// secrets, as p.
func launchOn(t testing.TB, k *kernel.Kernel, p kernel.Principal, node string, env, secrets map[string]string) *pb.LaunchResponse {
	t.Helper()
	ctx := context.Background()
	a, err := k.Allocate(ctx, p, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: 1 << 20},
		Constraints: []*pb.Constraint{{Label: "node", Op: pb.Constraint_OP_EQUALS, Values: []string{node}}}})
	if err != nil {
		t.Fatal(err)
	}
	lr, err := k.Launch(ctx, p, &pb.LaunchRequest{AllocationId: a.GetAllocations()[0].GetId(), Command: "/bin/true", Env: env, SecretEnv: secrets})
	if err != nil {
		t.Fatal(err)
	}
	return lr
}

// leaks reports whether m, marshalled, holds secret's bytes.
func leaks(m proto.Message, secret string) bool {
	b, _ := proto.Marshal(m)
	return bytes.Contains(b, []byte(secret))
}

// checkStripped fails unless k shows name with an empty value and
// nothing revealed.
func checkStripped(t *testing.T, where string, k *pb.Task, name string) {
	t.Helper()
	v, ok := k.GetSecretEnv()[name]
	if !ok || len(v) != 0 || len(k.GetRevealedSecretEnv()) != 0 {
		t.Errorf("%s: secret_env %q revealed %v; want name %s with an empty value, nothing revealed", where, k.GetSecretEnv(), k.GetRevealedSecretEnv(), name)
	}
	if leaks(k, secretValue) {
		t.Errorf("%s: the task holds the secret value", where)
	}
}

// TestKernel_SecretEnv: a task's secret env is sealed in the store and
// in the event log, shows names only in Launch, ListTasks and Watch,
// is revealed to its owner and operators who ask, and is opened for the
// agent the task is placed on alone — also after a restart.
func TestKernel_SecretEnv(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, kek := sealedEnv(t)
	k, stop := e.startWith(t, kernel.Config{Sealer: kek})
	one := registerAs(t, k, agentOne)
	registerAs(t, k, agentTwo)
	before := k.Revision()
	lr := launchOn(t, k, fwA, agentOne.Name, map[string]string{"PLAIN": plainValue}, map[string]string{"DB_PASSWORD": secretValue})
	task := lr.GetTask()
	checkStripped(t, "Launch answer", task, "DB_PASSWORD")

	// The store: the task's key holds ciphertext that opens under its aad.
	get, err := e.etcd.Client().Get(ctx, "/dcos/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var sawPlain, sawTask bool
	for _, kv := range get.Kvs {
		if bytes.Contains(kv.Value, []byte(secretValue)) {
			t.Errorf("etcd key %s holds the secret value in clear", kv.Key)
		}
		sawPlain = sawPlain || bytes.Contains(kv.Value, []byte(plainValue))
		if string(kv.Key) == "/dcos/tasks/"+task.GetId() {
			sawTask = true
			var stored pb.Task
			if err := proto.Unmarshal(kv.Value, &stored); err != nil {
				t.Fatal(err)
			}
			sealed := stored.GetSecretEnv()["DB_PASSWORD"]
			if !seal.IsSealed(sealed) {
				t.Errorf("stored secret_env value %q is not sealed", sealed)
			}
			if pt, err := kek.Open(sealed, []byte(task.GetId()+"/DB_PASSWORD")); err != nil || string(pt) != secretValue {
				t.Errorf("stored value opens to %q, %v", pt, err)
			}
			if _, err := kek.Open(sealed, []byte(task.GetId()+"/OTHER")); err == nil {
				t.Error("the sealed value opens under another name's aad")
			}
		}
	}
	if !sawPlain || !sawTask {
		t.Fatalf("control: etcd shows the plain env value %v, the task key %v; want both", sawPlain, sawTask)
	}

	// Events, replayed from the store's event log.
	for _, ev := range collect(t, k, ops, &pb.WatchRequest{AfterRevision: before, Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_TASK_STATE}}, 1) {
		checkStripped(t, "TASK_STATE event", ev.GetTask(), "DB_PASSWORD")
	}

	list := func(p kernel.Principal, reveal bool) []*pb.Task {
		return k.ListTasks(ctx, p, &pb.ListTasksRequest{RevealSecrets: reveal}).GetTasks()
	}
	for _, tc := range []struct {
		name   string
		p      kernel.Principal
		reveal bool
		want   string // "stripped", "revealed", "absent"
	}{
		{"owner", fwA, false, "stripped"},
		{"owner reveal", fwA, true, "revealed"},
		{"operator", ops, false, "stripped"},
		{"operator reveal", ops, true, "revealed"},
		{"other framework reveal", fwB, true, "absent"},
		{"its agent reveal", agentOne, true, "stripped"},
		{"other agent reveal", agentTwo, true, "absent"},
	} {
		t.Run("ListTasks/"+tc.name, func(t *testing.T) {
			tasks := list(tc.p, tc.reveal)
			if tc.want == "absent" {
				for _, x := range tasks {
					if x.GetId() == task.GetId() || leaks(x, secretValue) {
						t.Errorf("%v sees task %s", tc.p, x.GetId())
					}
				}
				return
			}
			if len(tasks) != 1 {
				t.Fatalf("%d tasks, want 1", len(tasks))
			}
			x := tasks[0]
			if tc.want == "stripped" {
				checkStripped(t, tc.name, x, "DB_PASSWORD")
				return
			}
			if got := x.GetRevealedSecretEnv()["DB_PASSWORD"]; got != secretValue || len(x.GetSecretEnv()["DB_PASSWORD"]) != 0 {
				t.Errorf("revealed %q, sealed %q; want the value revealed and the ciphertext stripped", got, x.GetSecretEnv()["DB_PASSWORD"])
			}
		})
	}

	// TaskSecrets: the placed agent alone.
	secrets := func(k *kernel.Kernel, p kernel.Principal, id string) (map[string]string, error) {
		r, err := k.TaskSecrets(ctx, p, &pb.TaskSecretsRequest{TaskId: id})
		return r.GetEnv(), err
	}
	for _, tc := range []struct {
		name string
		p    kernel.Principal
		id   string
		code kernel.Code
	}{
		{"other agent", agentTwo, task.GetId(), kernel.PermissionDenied},
		{"owner", fwA, task.GetId(), kernel.PermissionDenied},
		{"operator", ops, task.GetId(), kernel.PermissionDenied},
		{"unknown task", agentOne, "t-999999", kernel.NotFound},
		{"no task id", agentOne, "", kernel.InvalidArgument},
	} {
		t.Run("TaskSecrets/"+tc.name, func(t *testing.T) {
			env, err := secrets(k, tc.p, tc.id)
			if kernel.CodeOf(err) != tc.code || env != nil {
				t.Errorf("got %v, %v; want %v", env, err, tc.code)
			}
		})
	}
	if env, err := secrets(k, agentOne, task.GetId()); err != nil || env["DB_PASSWORD"] != secretValue || len(env) != 1 {
		t.Errorf("TaskSecrets for its agent: %v, %v; want DB_PASSWORD=%s", env, err, secretValue)
	}
	reg, err := k.RegisterAgent(ctx, agentOne, &pb.RegisterAgentRequest{AgentId: one, Hostname: "again", Labels: map[string]string{"node": agentOne.Name}, Resources: &pb.Resources{Cpus: 64, MemBytes: 64 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range reg.GetTasks() {
		checkStripped(t, "RegisterAgent answer", x, "DB_PASSWORD")
	}

	// After a restart the table holds what the store did: ciphertext.
	stop()
	k2, _ := e.startWith(t, kernel.Config{Sealer: kek})
	if env, err := secrets(k2, agentOne, task.GetId()); err != nil || env["DB_PASSWORD"] != secretValue {
		t.Errorf("TaskSecrets after a restart: %v, %v", env, err)
	}
}

// TestKernel_SecretEnvRefused: bad secret_env is InvalidArgument naming
// the field, and a kernel without a KEK refuses secrets.
func TestKernel_SecretEnvRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, kek := sealedEnv(t)
	k, _ := e.startWith(t, kernel.Config{Sealer: kek})
	registerAs(t, k, agentOne)
	node := agentOne.Name
	a, err := k.Allocate(ctx, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: 1 << 20},
		Constraints: []*pb.Constraint{{Label: "node", Op: pb.Constraint_OP_EQUALS, Values: []string{node}}}})
	if err != nil {
		t.Fatal(err)
	}
	many := map[string]string{}
	for i := range kernel.MaxSecretEnv + 1 {
		many["S"+strings.Repeat("x", i)] = "v"
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		secrets map[string]string
		want    string
	}{
		{"also in env", map[string]string{"A": "1"}, map[string]string{"A": secretValue}, "secret_env[A]: also in env"},
		{"bad name", nil, map[string]string{"A=B": secretValue}, "secret_env: invalid variable name"},
		{"empty name", nil, map[string]string{"": secretValue}, "secret_env: invalid variable name"},
		{"NUL", nil, map[string]string{"A": "x\x00y"}, "secret_env[A]: contains a NUL byte"},
		{"too many", nil, many, "secret_env: at most 64 entries"},
		{"too big", nil, map[string]string{"A": strings.Repeat("x", kernel.MaxSecretEnvBytes)}, "secret_env: names and values total"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := k.Launch(ctx, fwA, &pb.LaunchRequest{AllocationId: a.GetAllocations()[0].GetId(), Command: "x", Env: tc.env, SecretEnv: tc.secrets})
			if kernel.CodeOf(err) != kernel.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v; want InvalidArgument %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), secretValue) {
				t.Errorf("the error quotes the secret value: %v", err)
			}
		})
	}

	e2 := newEnv(t)
	plain, _ := e2.start(t)
	register(t, plain, 8, 8<<30)
	a2, err := plain.Allocate(ctx, fwA, alloc(1, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	_, err = plain.Launch(ctx, fwA, &pb.LaunchRequest{AllocationId: a2.GetAllocations()[0].GetId(), Command: "x", SecretEnv: map[string]string{"A": "b"}})
	if kernel.CodeOf(err) != kernel.FailedPrecondition || !strings.Contains(err.Error(), "no key-encryption key (--kek-file)") {
		t.Errorf("Launch with secrets on a kernel without a KEK: %v; want FailedPrecondition naming --kek-file", err)
	}
	_, err = plain.StatePut(ctx, fwA, &pb.StatePutRequest{Key: "k", Value: []byte("v"), Secret: true})
	if kernel.CodeOf(err) != kernel.FailedPrecondition {
		t.Errorf("secret StatePut on a kernel without a KEK: %v; want FailedPrecondition", err)
	}
}

// TestKernel_SecretState: a secret state value is ciphertext in etcd,
// clear to its owner (also after a restart), and STATE_CHANGED carries
// no value.
func TestKernel_SecretState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e, kek := sealedEnv(t)
	k, stop := e.startWith(t, kernel.Config{Sealer: kek})
	before := k.Revision()
	if _, err := k.StatePut(ctx, fwA, &pb.StatePutRequest{Key: "db/password", Value: []byte(secretValue), Secret: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.StatePut(ctx, fwA, &pb.StatePutRequest{Key: "db/host", Value: []byte(plainValue)}); err != nil {
		t.Fatal(err)
	}
	get, err := e.etcd.Client().Get(ctx, "/dcos/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var sawPlain bool
	for _, kv := range get.Kvs {
		if bytes.Contains(kv.Value, []byte(secretValue)) {
			t.Errorf("etcd key %s holds the secret state value in clear", kv.Key)
		}
		sawPlain = sawPlain || bytes.Contains(kv.Value, []byte(plainValue))
	}
	if !sawPlain {
		t.Fatal("control: the plain state value is not in etcd either")
	}
	for _, ev := range collect(t, k, fwA, &pb.WatchRequest{AfterRevision: before}, 2) {
		if leaks(ev, secretValue) {
			t.Errorf("event %v holds the secret value", ev.GetKind())
		}
	}
	check := func(when string, k *kernel.Kernel) {
		t.Helper()
		g, err := k.StateGet(ctx, fwA, &pb.StateGetRequest{Key: "db/password"})
		if err != nil || string(g.GetEntry().GetValue()) != secretValue || !g.GetEntry().GetSecret() {
			t.Errorf("%s: StateGet %v, %v; want the value in clear, marked secret", when, g.GetEntry(), err)
		}
	}
	check("live", k)
	stop()
	k2, _ := e.startWith(t, kernel.Config{Sealer: kek})
	check("after a restart", k2)
}
