package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/dcos-kernel/dcos/internal/clientconfig"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// testNow is the clock of runCtl.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type result struct {
	stdout, stderr string
	code           int
}

// isolate clears the environment dcosctl reads, so that no developer's
// config or variables leak into a test.
func isolate(t *testing.T) {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	for _, v := range []string{"DCOS_KERNEL", "DCOS_TOKEN", "DCOS_CONFIG", "DCOS_CA_FILE"} {
		t.Setenv(v, "")
	}
}

// runCtl runs dcosctl with args (without the program name) and stdin.
func runCtl(t *testing.T, ctx context.Context, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(ctx, append([]string{"dcosctl"}, args...),
		&env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, now: func() time.Time { return testNow }})
	if strings.Contains(errb.String(), "goroutine ") || strings.Contains(errb.String(), "panic") {
		t.Fatalf("panic trace on stderr:\n%s", errb.String())
	}
	return result{out.String(), errb.String(), code}
}

func assertProto(t *testing.T, got, want proto.Message) {
	t.Helper()
	if diff := cmpDiff(want, got); diff != "" {
		t.Errorf("request mismatch (-want +got):\n%s", diff)
	}
}

func TestRun_Help(t *testing.T) {
	isolate(t)
	cmds := []string{"", "agents", "allocs", "ps", "alloc", "launch", "run", "revoke", "watch", "logs", "exec", "syscall",
		"policy", "policy ls", "policy load", "policy test", "policy use", "policy rollback"}
	for _, cmd := range cmds {
		t.Run("cmd="+cmd, func(t *testing.T) {
			args := append(strings.Fields(cmd), "--help")
			r := runCtl(t, context.Background(), "", args...)
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			if !strings.Contains(r.stdout, "USAGE:") {
				t.Errorf("no usage in help:\n%s", r.stdout)
			}
		})
	}
}

func TestRun_UsageErrors(t *testing.T) {
	isolate(t)
	k := &fakeKernel{}
	url := k.serve(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"frob"}, `unknown command "frob"`},
		{"unknown flag", []string{"ps", "--bogus"}, "flag provided but not defined"},
		{"unknown help topic", []string{"help", "frob"}, "No help topic for 'frob'"},
		{"bad output", []string{"-o", "yaml", "ps"}, `"yaml" is not a format`},
		{"ps takes no args", []string{"ps", "x"}, "takes no arguments"},
		{"revoke wants an id", []string{"revoke"}, "want one ID"},
		{"launch wants a command", []string{"launch", "a-1"}, "no command"},
		{"bad --after", []string{"watch", "--after", "x"}, "invalid value"},
		{"bad --kind", []string{"watch", "--kind", "frob"}, `--kind "frob": want one of`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCtl(t, context.Background(), "", append([]string{"--kernel", url}, tt.args...)...)
			if r.code != exitUsageError {
				t.Errorf("exit %d, want %d; stderr %q", r.code, exitUsageError, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tt.want)
			}
		})
	}
	if m := k.methods(); len(m) != 0 {
		t.Errorf("usage errors sent calls: %v", m)
	}
}

func TestRun_Target(t *testing.T) {
	// Three kernels tell apart where a call went.
	cfgKernel, envKernel, flagKernel := &fakeKernel{}, &fakeKernel{}, &fakeKernel{}
	cfgURL, envURL, flagURL := cfgKernel.serve(t), envKernel.serve(t), flagKernel.serve(t)
	tlsKernel := &fakeKernel{}
	tlsURL, caFile, _ := tlsKernel.serveTLS(t)
	tests := []struct {
		name       string
		config     *clientconfig.Config // written to the config path when set
		env        map[string]string
		args       []string
		wantKernel *fakeKernel
		wantToken  string
		wantCode   int
		wantStderr string // when set, stderr contains it
	}{
		{
			name:       "config file only",
			config:     &clientconfig.Config{Kernel: cfgURL, Token: "cfg-token"},
			wantKernel: cfgKernel, wantToken: "Bearer cfg-token",
		},
		{
			name:       "env overrides config",
			config:     &clientconfig.Config{Kernel: cfgURL, Token: "cfg-token"},
			env:        map[string]string{"DCOS_KERNEL": envURL, "DCOS_TOKEN": "env-token"},
			wantKernel: envKernel, wantToken: "Bearer env-token",
		},
		{
			name:       "flag overrides env and config",
			config:     &clientconfig.Config{Kernel: cfgURL, Token: "cfg-token"},
			env:        map[string]string{"DCOS_KERNEL": envURL, "DCOS_TOKEN": "env-token"},
			args:       []string{"--kernel", flagURL, "--token", "flag-token"},
			wantKernel: flagKernel, wantToken: "Bearer flag-token",
		},
		{
			name:       "kernel flag, token from config",
			config:     &clientconfig.Config{Kernel: cfgURL, Token: "cfg-token"},
			args:       []string{"--kernel", flagURL},
			wantKernel: flagKernel, wantToken: "Bearer cfg-token",
		},
		{
			name:       "missing config is fine with --kernel",
			args:       []string{"--kernel", flagURL},
			wantKernel: flagKernel, wantToken: "",
		},
		{
			name:       "kernel without scheme is https",
			args:       []string{"--kernel", strings.TrimPrefix(tlsURL, "https://"), "--token", "t", "--ca-cert", caFile},
			wantKernel: tlsKernel, wantToken: "Bearer t",
		},
		{
			name: "CA from the config",
			// Checked against the cluster's bundle just now: no ClusterInfo
			// (cafollow_test.go covers the checks).
			config:     &clientconfig.Config{Kernel: tlsURL, Token: "cfg-token", CA: string(mustRead(t, caFile)), CACheckedAt: testNow},
			wantKernel: tlsKernel, wantToken: "Bearer cfg-token",
		},
		{
			name:       "kernel of another CA",
			args:       []string{"--kernel", tlsURL, "--token", "t"},
			wantCode:   exitCallError,
			wantStderr: "does not verify against the CA this client trusts",
		},
		{
			name:       "flags after the command",
			args:       []string{"--token", "t"},
			wantKernel: flagKernel, wantToken: "Bearer t",
		},
		{
			name:     "no kernel anywhere",
			wantCode: exitUsageError,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			path := filepath.Join(t.TempDir(), "config.json")
			t.Setenv("DCOS_CONFIG", path)
			if tt.config != nil {
				if err := clientconfig.Save(path, *tt.config); err != nil {
					t.Fatal(err)
				}
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := append(append([]string{}, tt.args...), "agents")
			if tt.name == "flags after the command" {
				args = []string{"agents", "--kernel", flagURL, "--token", "t"}
			}
			before := map[*fakeKernel]int{cfgKernel: len(cfgKernel.recorded()), envKernel: len(envKernel.recorded()), flagKernel: len(flagKernel.recorded()), tlsKernel: len(tlsKernel.recorded())}
			r := runCtl(t, context.Background(), "", args...)
			if r.code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %q", r.code, tt.wantCode, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.wantStderr) {
				t.Errorf("stderr %q does not say %q", r.stderr, tt.wantStderr)
			}
			for k, n := range before {
				calls := k.recorded()[n:]
				if k != tt.wantKernel {
					if len(calls) != 0 {
						t.Errorf("call reached the wrong kernel")
					}
					continue
				}
				if len(calls) != 1 {
					t.Fatalf("want 1 call on the expected kernel, got %d", len(calls))
				}
				if got := calls[0].header.Get("Authorization"); got != tt.wantToken {
					t.Errorf("Authorization = %q, want %q", got, tt.wantToken)
				}
			}
		})
	}
}

func TestRun_Token(t *testing.T) {
	isolate(t)
	k := (&fakeKernel{events: []*syscallsv1.Event{{Revision: 1}}}).
		replyWith("Allocate", &syscallsv1.AllocateResponse{Allocations: []*syscallsv1.Allocation{{Id: "a-1", State: syscallsv1.AllocationState_ALLOCATION_STATE_GRANTED}}}, nil)
	url := k.serve(t)
	for _, args := range [][]string{
		{"agents"},
		{"alloc", "--cpus", "1", "--mem", "1Mi"},
		{"watch"},
		{"syscall", "listtasks"},
		{"syscall", "watch"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			n := len(k.recorded())
			r := runCtl(t, context.Background(), "", append([]string{"--kernel", url, "--token", "s3cret"}, args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			calls := k.recorded()[n:]
			if len(calls) != 1 {
				t.Fatalf("want 1 call, got %d", len(calls))
			}
			if got := calls[0].header.Get("Authorization"); got != "Bearer s3cret" {
				t.Errorf("Authorization = %q", got)
			}
		})
	}
}

func TestRun_ServerError(t *testing.T) {
	isolate(t)
	k := (&fakeKernel{watchErr: connect.NewError(connect.CodeFailedPrecondition, errorString("compacted: resync"))}).
		replyWith("Allocate", nil, connect.NewError(connect.CodeInvalidArgument, errorString("resources.cpus: must be a finite number > 0, got -1"))).
		replyWith("Revoke", nil, connect.NewError(connect.CodeNotFound, errorString("a-9: no such allocation")))
	url := k.serve(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"raw", []string{"syscall", "allocate", `{"resources":{"cpus":-1}}`}, "Allocate: InvalidArgument: resources.cpus: must be a finite number > 0, got -1"},
		{"alloc", []string{"alloc", "--cpus", "-1", "--mem", "1Mi"}, "Allocate: InvalidArgument: resources.cpus: must be a finite number > 0, got -1"},
		{"run", []string{"run", "--cpus", "-1", "--mem", "1Mi", "--", "true"}, "Allocate: InvalidArgument: resources.cpus"},
		{"revoke", []string{"revoke", "a-9"}, "Revoke: NotFound: a-9: no such allocation"},
		{"watch", []string{"watch", "--after", "1"}, "Watch: FailedPrecondition: compacted: resync"},
		{"raw watch", []string{"syscall", "watch"}, "Watch: FailedPrecondition: compacted: resync"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCtl(t, context.Background(), "", append([]string{"--kernel", url}, tt.args...)...)
			if r.code != exitCallError {
				t.Errorf("exit %d, want %d", r.code, exitCallError)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tt.want)
			}
		})
	}
}

func TestRun_Unreachable(t *testing.T) {
	isolate(t)
	r := runCtl(t, context.Background(), "", "--kernel", "127.0.0.1:1", "ps")
	if r.code != exitCallError || !strings.Contains(r.stderr, "ListTasks: Unavailable") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestRun_OutputJSON(t *testing.T) {
	isolate(t)
	granted := &syscallsv1.Allocation{Id: "a-1", AgentId: "ag-1", State: syscallsv1.AllocationState_ALLOCATION_STATE_GRANTED}
	k := (&fakeKernel{events: []*syscallsv1.Event{{Revision: 3, Kind: syscallsv1.EventKind_EVENT_KIND_AGENT_LOST}, {Revision: 4}}}).
		replyWith("Allocate", &syscallsv1.AllocateResponse{Allocations: []*syscallsv1.Allocation{granted}, Revision: 2}, nil).
		replyWith("Launch", &syscallsv1.LaunchResponse{Task: &syscallsv1.Task{Id: "t-1"}}, nil).
		replyWith("ListAgents", &syscallsv1.ListAgentsResponse{Agents: []*syscallsv1.Agent{{Id: "ag-1"}}}, nil).
		replyWith("ListAllocations", &syscallsv1.ListAllocationsResponse{Allocations: []*syscallsv1.Allocation{granted}}, nil).
		replyWith("ListTasks", &syscallsv1.ListTasksResponse{Tasks: []*syscallsv1.Task{{Id: "t-1"}}}, nil).
		replyWith("PolicyList", &syscallsv1.PolicyListResponse{Policies: []*syscallsv1.PolicyInfo{{Name: "native-first-fit", Builtin: true, Active: true}}}, nil)
	url := k.serve(t)
	module := writeModule(t, "p.wasm", []byte("\x00asm"))
	tests := []struct {
		name  string
		args  []string
		lines bool // JSON lines rather than one document
	}{
		{"agents", []string{"agents"}, false},
		{"allocs", []string{"allocs"}, false},
		{"ps", []string{"ps"}, false},
		{"alloc", []string{"alloc", "--cpus", "1", "--mem", "1Gi"}, false},
		{"launch", []string{"launch", "a-1", "--", "true"}, false},
		{"run", []string{"run", "--detach", "--cpus", "1", "--mem", "1Gi", "--", "true"}, false},
		{"revoke", []string{"revoke", "a-1"}, false},
		{"syscall list", []string{"syscall", "--list"}, false},
		{"watch", []string{"watch"}, true},
		{"policy ls", []string{"policy", "ls"}, false},
		{"policy load", []string{"policy", "load", module}, false},
		{"policy test", []string{"policy", "test", "--name", "x"}, false},
		{"policy use", []string{"policy", "use", "x"}, false},
		{"policy rollback", []string{"policy", "rollback"}, false},
	}
	for _, tt := range tests {
		for _, pos := range []string{"global", "per command"} {
			t.Run(tt.name+"/"+pos, func(t *testing.T) {
				args := append([]string{"--kernel", url, "-o", "json"}, tt.args...)
				if pos == "per command" {
					args = append([]string{"--kernel", url, tt.args[0], "-o", "json"}, tt.args[1:]...)
				}
				r := runCtl(t, context.Background(), "", args...)
				if r.code != 0 {
					t.Fatalf("exit %d: %s", r.code, r.stderr)
				}
				docs := []string{r.stdout}
				if tt.lines {
					docs = strings.Split(strings.TrimSpace(r.stdout), "\n")
				}
				for _, d := range docs {
					var v any
					if err := json.Unmarshal([]byte(d), &v); err != nil {
						t.Errorf("not JSON: %v\n%s", err, d)
					}
				}
			})
		}
	}
}

func TestNormalizeArgs(t *testing.T) {
	app := newApp(&env{})
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"no command", "dcosctl --kernel x", "dcosctl --kernel x"},
		{"flags already first", "dcosctl ps --all", "dcosctl ps --all --"},
		{"flag after positional", "dcosctl revoke a-1 --reason r", "dcosctl revoke --reason r -- a-1"},
		{"global flag after command", "dcosctl ps -o json --kernel k", "dcosctl --output json --kernel k ps --"},
		{"command's own flag wins", "dcosctl syscall watch - --list", "dcosctl syscall --list -- watch -"},
		{"everything after -- is literal", "dcosctl launch a-1 --env A=1 -- ls -la --env", "dcosctl launch --env A=1 -- a-1 ls -la --env"},
		{"flag=value form", "dcosctl run --mem=1Gi -- x", "dcosctl run --mem=1Gi -- x"},
		{"bool flag takes no value", "dcosctl run --wait x", "dcosctl run --wait -- x"},
		{"unknown command untouched", "dcosctl frob --x y", "dcosctl frob --x y"},
		{"aliases spelled canonically", "dcosctl -o=json launch -e A=1 a-1 --env B=2 -w=/d", "dcosctl --output=json launch --env A=1 --env B=2 --workdir=/d -- a-1"},
		{"unknown flags kept", "dcosctl ps -x", "dcosctl ps -x --"},
		{"subcommand", "dcosctl policy ls", "dcosctl policy ls --"},
		{"subcommand flag after positional", "dcosctl policy load f.wasm --name n -o json", "dcosctl --output json policy load --name n -- f.wasm"},
		{"global flag between command words", "dcosctl policy -o json test --name=n", "dcosctl --output json policy test --name=n --"},
		{"parent alone", "dcosctl policy", "dcosctl policy --"},
		{"unknown subcommand is a positional", "dcosctl policy frob x", "dcosctl policy -- frob x"},
		{"help on parent", "dcosctl policy --help", "dcosctl policy --help --"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(normalizeArgs(app, strings.Fields(tt.in)), " ")
			if got != tt.want {
				t.Errorf("normalizeArgs(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCodeName(t *testing.T) {
	for code, want := range map[connect.Code]string{
		connect.CodeInvalidArgument:    "InvalidArgument",
		connect.CodeNotFound:           "NotFound",
		connect.CodeFailedPrecondition: "FailedPrecondition",
		connect.CodeUnauthenticated:    "Unauthenticated",
	} {
		if got := codeName(code); got != want {
			t.Errorf("codeName(%v) = %q, want %q", code, got, want)
		}
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

func cmpDiff(want, got proto.Message) string {
	return cmp.Diff(want, got, protocmp.Transform())
}
