package ctl

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

const testSHA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// writeModule writes b to name in a fresh directory and returns its path.
func writeModule(t *testing.T, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRun_PolicyLs(t *testing.T) {
	isolate(t)
	res := &syscallsv1.PolicyListResponse{Policies: []*syscallsv1.PolicyInfo{
		{Name: "native-first-fit", Builtin: true},
		{Name: "spread", Sha256: testSHA, SizeBytes: 3 << 20, Active: true, Loaded: timestamppb.New(testNow.Add(-5 * time.Minute))},
		{Name: "greedy", Sha256: "abc", SizeBytes: 512, Loaded: timestamppb.New(testNow.Add(-72 * time.Hour)), LastError: "deadline\nexceeded"},
	}}
	k := (&fakeKernel{}).replyWith("PolicyList", res, nil)
	url := k.serve(t)
	t.Run("table", func(t *testing.T) {
		r := runCtl(t, context.Background(), "", "--kernel", url, "policy", "ls")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		want := [][]string{
			{"NAME", "ACTIVE", "BUILTIN", "SIZE", "SHA256", "LOADED", "LAST", "ERROR"},
			{"native-first-fit", "-", "yes", "-", "-", "-", "-"},
			{"spread", "*", "-", "3Mi", "0123456789ab", "5m", "-"},
			{"greedy", "-", "-", "512", "abc", "3d", "deadline", "exceeded"},
		}
		if got := rows(r.stdout); !equalRows(got, want) {
			t.Errorf("got\n%s\nwant %q", r.stdout, want)
		}
		assertProto(t, k.last("PolicyList"), &syscallsv1.PolicyListRequest{})
	})
	t.Run("json", func(t *testing.T) {
		r := runCtl(t, context.Background(), "", "--kernel", url, "policy", "ls", "-o", "json")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		got := &syscallsv1.PolicyListResponse{}
		if err := protojson.Unmarshal([]byte(r.stdout), got); err != nil {
			t.Fatal(err)
		}
		assertProto(t, got, res)
	})
}

func TestRun_PolicyLoad(t *testing.T) {
	wasm := []byte("\x00asm\x01\x00\x00\x00 policy bytes")
	tests := []struct {
		name     string
		file     string // written with wasm, relative to a temp dir
		args     func(path string) []string
		wantName string
	}{
		{"name from the file", "spread.wasm", func(p string) []string { return []string{p} }, "spread"},
		{"nested path", "build/out/binpack-v2.wasm", func(p string) []string { return []string{p} }, "binpack-v2"},
		{"no .wasm suffix", "drf", func(p string) []string { return []string{p} }, "drf"},
		{"--name after the file", "spread.wasm", func(p string) []string { return []string{p, "--name", "spread-v3"} }, "spread-v3"},
		{"--name before the file", "spread.wasm", func(p string) []string { return []string{"--name=mine", p} }, "mine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			k := (&fakeKernel{}).reply("PolicyLoad", func(req proto.Message) (proto.Message, error) {
				n := req.(*syscallsv1.PolicyLoadRequest).GetName()
				return &syscallsv1.PolicyLoadResponse{
					Policy:   &syscallsv1.PolicyInfo{Name: n, Sha256: testSHA, SizeBytes: 1536, Active: true},
					Revision: 42,
				}, nil
			})
			url := k.serve(t)
			path := writeModule(t, tt.file, wasm)
			r := runCtl(t, context.Background(), "", append([]string{"--kernel", url, "policy", "load"}, tt.args(path)...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			assertProto(t, k.last("PolicyLoad"), &syscallsv1.PolicyLoadRequest{Name: tt.wantName, Wasm: wasm})
			want := "loaded " + tt.wantName + " (sha256 0123456789ab, 1.5Ki) and made it active at revision 42\n"
			if r.stdout != want {
				t.Errorf("stdout %q, want %q", r.stdout, want)
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		isolate(t)
		res := &syscallsv1.PolicyLoadResponse{Policy: &syscallsv1.PolicyInfo{Name: "spread", Sha256: testSHA, SizeBytes: 9, Active: true}, Revision: 7}
		k := (&fakeKernel{}).replyWith("PolicyLoad", res, nil)
		url := k.serve(t)
		r := runCtl(t, context.Background(), "", "--kernel", url, "-o", "json", "policy", "load", writeModule(t, "spread.wasm", wasm))
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		got := &syscallsv1.PolicyLoadResponse{}
		if err := protojson.Unmarshal([]byte(r.stdout), got); err != nil {
			t.Fatal(err)
		}
		assertProto(t, got, res)
	})
}

func TestRun_PolicyTest(t *testing.T) {
	wasm := []byte("\x00asm candidate")
	full := &syscallsv1.PolicyTestResponse{
		Pending: 5, ActivePlaced: 3, CandidatePlaced: 4, ActivePolicy: "native-first-fit",
		Diffs: []*syscallsv1.PlacementDiff{
			{AllocationId: "a-1", ActiveAgentId: "ag-1", CandidateAgentId: "ag-2"},
			{AllocationId: "a-2", CandidateAgentId: "ag-3"},
			{AllocationId: "a-3", ActiveAgentId: "ag-1"},
		},
		CandidatePreemptions: []string{"a-7", "a-8"},
		Rejected:             []string{"a-9: agent ag-4 lacks\n2 cpus"},
	}
	tests := []struct {
		name    string
		args    func(path string) []string
		res     *syscallsv1.PolicyTestResponse
		wantReq *syscallsv1.PolicyTestRequest
		want    string
	}{
		{
			name:    "file, differences",
			args:    func(p string) []string { return []string{p} },
			res:     full,
			wantReq: &syscallsv1.PolicyTestRequest{Wasm: wasm},
			want: `active native-first-fit placed 3 of 5 pending; candidate placed 4

ALLOCATION  ACTIVE AGENT  CANDIDATE AGENT
a-1         ag-1          ag-2
a-2         -             ag-3
a-3         ag-1          -

the candidate would preempt 2:
  a-7
  a-8

the kernel would refuse 1 of the candidate's answers:
  a-9: agent ag-4 lacks 2 cpus
`,
		},
		{
			name:    "loaded by name, no differences",
			args:    func(string) []string { return []string{"--name", "binpack"} },
			res:     &syscallsv1.PolicyTestResponse{Pending: 2, ActivePlaced: 2, CandidatePlaced: 2, ActivePolicy: "spread"},
			wantReq: &syscallsv1.PolicyTestRequest{Name: "binpack"},
			want:    "active spread placed 2 of 2 pending; candidate placed 2\nno placement differs\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			k := (&fakeKernel{}).replyWith("PolicyTest", tt.res, nil)
			url := k.serve(t)
			path := writeModule(t, "cand.wasm", wasm)
			r := runCtl(t, context.Background(), "", append([]string{"--kernel", url, "policy", "test"}, tt.args(path)...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			assertProto(t, k.last("PolicyTest"), tt.wantReq)
			if r.stdout != tt.want {
				t.Errorf("stdout\n%s\nwant\n%s", r.stdout, tt.want)
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		isolate(t)
		k := (&fakeKernel{}).replyWith("PolicyTest", full, nil)
		url := k.serve(t)
		r := runCtl(t, context.Background(), "", "--kernel", url, "policy", "test", "--name", "x", "-o", "json")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		got := &syscallsv1.PolicyTestResponse{}
		if err := protojson.Unmarshal([]byte(r.stdout), got); err != nil {
			t.Fatal(err)
		}
		assertProto(t, got, full)
	})
}

func TestRun_PolicySwitch(t *testing.T) {
	isolate(t)
	k := (&fakeKernel{}).
		replyWith("PolicyUse", &syscallsv1.PolicyUseResponse{Policy: &syscallsv1.PolicyInfo{Name: "binpack", Builtin: true, Active: true, Sha256: testSHA, SizeBytes: 2 << 20}, Revision: 9}, nil).
		replyWith("PolicyRollback", &syscallsv1.PolicyRollbackResponse{Policy: &syscallsv1.PolicyInfo{Name: "native-first-fit", Builtin: true, Active: true}, Revision: 10}, nil)
	url := k.serve(t)
	tests := []struct {
		name    string
		args    []string
		method  string
		wantReq proto.Message
		want    string
	}{
		{"use", []string{"use", "binpack"}, "PolicyUse", &syscallsv1.PolicyUseRequest{Name: "binpack"},
			"active policy is now binpack (sha256 0123456789ab, 2Mi) at revision 9\n"},
		{"rollback", []string{"rollback"}, "PolicyRollback", &syscallsv1.PolicyRollbackRequest{},
			"active policy is now native-first-fit (sha256 -, -) at revision 10\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCtl(t, context.Background(), "", append([]string{"--kernel", url, "policy"}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			assertProto(t, k.last(tt.method), tt.wantReq)
			if r.stdout != tt.want {
				t.Errorf("stdout %q, want %q", r.stdout, tt.want)
			}
		})
	}
}

func TestRun_PolicyUsageErrors(t *testing.T) {
	isolate(t)
	k := &fakeKernel{}
	url := k.serve(t)
	dir := t.TempDir()
	empty := writeModule(t, "empty.wasm", nil)
	ok := writeModule(t, "ok.wasm", []byte("\x00asm"))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown subcommand", []string{"policy", "frob"}, `unknown policy command "frob"`},
		{"load: missing file", []string{"policy", "load", filepath.Join(dir, "nope.wasm")}, "policy load: open " + filepath.Join(dir, "nope.wasm") + ": no such file"},
		{"load: directory", []string{"policy", "load", dir}, "is a directory"},
		{"load: empty file", []string{"policy", "load", empty}, "policy load: " + empty + " is empty"},
		{"load: no file", []string{"policy", "load"}, "want one FILE.wasm, got 0"},
		{"load: two files", []string{"policy", "load", ok, ok}, "want one FILE.wasm, got 2"},
		{"load: no name", []string{"policy", "load", writeModule(t, ".wasm", []byte("x"))}, "pass --name"},
		{"load: unknown flag", []string{"policy", "load", ok, "--bogus"}, `see "dcosctl policy load --help"`},
		{"test: missing file", []string{"policy", "test", filepath.Join(dir, "nope.wasm")}, "policy test: open"},
		{"test: neither", []string{"policy", "test"}, "want FILE.wasm or --name NAME"},
		{"test: both", []string{"policy", "test", ok, "--name", "x"}, "not both"},
		{"use: no name", []string{"policy", "use"}, "want one NAME"},
		{"rollback: argument", []string{"policy", "rollback", "x"}, "takes no arguments"},
		{"ls: bad output", []string{"policy", "ls", "-o", "yaml"}, `"yaml" is not a format`},
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

func TestRun_PolicyKernelErrors(t *testing.T) {
	isolate(t)
	k := (&fakeKernel{}).
		replyWith("PolicyLoad", nil, connect.NewError(connect.CodeInvalidArgument, errorString(`wasm: refused: missing export "dcos_place"`))).
		replyWith("PolicyTest", nil, connect.NewError(connect.CodePermissionDenied, errorString("operators only"))).
		replyWith("PolicyList", nil, connect.NewError(connect.CodeUnauthenticated, errorString("no token"))).
		replyWith("PolicyUse", nil, connect.NewError(connect.CodeNotFound, errorString(`policy "nope" is not loaded`))).
		replyWith("PolicyRollback", nil, connect.NewError(connect.CodeFailedPrecondition, errorString("nothing to roll back to")))
	url := k.serve(t)
	mod := writeModule(t, "bad.wasm", []byte("\x00asm"))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"load refused", []string{"load", mod}, `PolicyLoad: InvalidArgument: wasm: refused: missing export "dcos_place"`},
		{"test", []string{"test", mod}, "PolicyTest: PermissionDenied: operators only"},
		{"ls", []string{"ls"}, "PolicyList: Unauthenticated: no token"},
		{"use", []string{"use", "nope"}, `PolicyUse: NotFound: policy "nope" is not loaded`},
		{"rollback", []string{"rollback"}, "PolicyRollback: FailedPrecondition: nothing to roll back to"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCtl(t, context.Background(), "", append([]string{"--kernel", url, "policy"}, tt.args...)...)
			if r.code != exitCallError {
				t.Errorf("exit %d, want %d", r.code, exitCallError)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tt.want)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
}
