package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dcos-kernel/dcos/internal/clientconfig"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// The token syscalls of the fake kernel.

func (k *fakeKernel) TokenCreate(_ context.Context, r *connect.Request[syscallsv1.TokenCreateRequest]) (*connect.Response[syscallsv1.TokenCreateResponse], error) {
	return unary[syscallsv1.TokenCreateRequest, syscallsv1.TokenCreateResponse](k, "TokenCreate", r)
}

func (k *fakeKernel) TokenList(_ context.Context, r *connect.Request[syscallsv1.TokenListRequest]) (*connect.Response[syscallsv1.TokenListResponse], error) {
	return unary[syscallsv1.TokenListRequest, syscallsv1.TokenListResponse](k, "TokenList", r)
}

func (k *fakeKernel) TokenRevoke(_ context.Context, r *connect.Request[syscallsv1.TokenRevokeRequest]) (*connect.Response[syscallsv1.TokenRevokeResponse], error) {
	return unary[syscallsv1.TokenRevokeRequest, syscallsv1.TokenRevokeResponse](k, "TokenRevoke", r)
}

const testSecret = "f00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeed"

func TestRun_TokenCreate(t *testing.T) {
	isolate(t)
	res := &syscallsv1.TokenCreateResponse{Token: testSecret, Info: &syscallsv1.TokenInfo{Id: "3f2a9c0b81de", Name: "spark", Role: "framework",
		Created: timestamppb.New(testNow), Expires: timestamppb.New(testNow.Add(24 * time.Hour)), CreatedBy: "admin"}}
	k := (&fakeKernel{}).replyWith("TokenCreate", res, nil)
	url := k.serve(t)
	t.Run("table", func(t *testing.T) {
		r := runCtl(t, context.Background(), "", "--kernel", url, "token", "create", "--role", "framework", "--name", "spark", "--ttl", "24h")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if r.stdout != testSecret+"\n" {
			t.Errorf("stdout = %q, want the secret alone", r.stdout)
		}
		if !strings.Contains(r.stderr, "3f2a9c0b81de") || !strings.Contains(r.stderr, "shown this once") {
			t.Errorf("stderr = %q, want the id and that the secret is shown once", r.stderr)
		}
		assertProto(t, k.last("TokenCreate"), &syscallsv1.TokenCreateRequest{Role: "framework", Name: "spark", Ttl: durationpb.New(24 * time.Hour)})
	})
	t.Run("json", func(t *testing.T) {
		r := runCtl(t, context.Background(), "", "--kernel", url, "token", "create", "--role", "agent-join", "--name", "rack-7", "-o", "json")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var got struct {
			Token string
			Info  struct{ ID string }
		}
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Token != testSecret || got.Info.ID != "3f2a9c0b81de" {
			t.Errorf("stdout = %q (%v)", r.stdout, err)
		}
		assertProto(t, k.last("TokenCreate"), &syscallsv1.TokenCreateRequest{Role: "agent-join", Name: "rack-7"})
	})
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"token", "create", "--name", "x"},
			{"token", "create", "--role", "framework"},
			{"token", "create", "--role", "framework", "--name", "x", "--ttl", "-1h"},
			{"token", "create", "--role", "framework", "--name", "x", "extra"},
		} {
			if r := runCtl(t, context.Background(), "", append([]string{"--kernel", url}, args...)...); r.code != exitUsageError {
				t.Errorf("%q: exit %d, want %d (stderr %q)", args, r.code, exitUsageError, r.stderr)
			}
		}
	})
	t.Run("refused", func(t *testing.T) {
		k := (&fakeKernel{}).replyWith("TokenCreate", nil, connect.NewError(connect.CodeInvalidArgument, errors.New("role: \"root\" is not operator, framework, agent or agent-join")))
		r := runCtl(t, context.Background(), "", "--kernel", k.serve(t), "token", "create", "--role", "root", "--name", "x")
		if r.code != exitCallError || !strings.Contains(r.stderr, "TokenCreate: InvalidArgument: role:") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

func TestRun_TokenLs(t *testing.T) {
	isolate(t)
	res := &syscallsv1.TokenListResponse{Tokens: []*syscallsv1.TokenInfo{
		{Id: "aaaaaaaaaaaa", Name: "admin", Role: "operator", Created: timestamppb.New(testNow.Add(-72 * time.Hour)), CreatedBy: "bootstrap"},
		{Id: "bbbbbbbbbbbb", Name: "spark", Role: "framework", Created: timestamppb.New(testNow.Add(-time.Hour)), Expires: timestamppb.New(testNow.Add(5 * time.Hour)), CreatedBy: "admin"},
		{Id: "cccccccccccc", Name: "old", Role: "framework", Created: timestamppb.New(testNow.Add(-3 * time.Hour)), Expires: timestamppb.New(testNow.Add(-time.Hour)), CreatedBy: "admin"},
		{Id: "dddddddddddd", Name: "init", Role: "framework", CreatedBy: "tokens-file"},
	}}
	k := (&fakeKernel{}).replyWith("TokenList", res, nil)
	url := k.serve(t)
	r := runCtl(t, context.Background(), "", "--kernel", url, "token", "ls")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want := [][]string{
		{"ID", "NAME", "ROLE", "CREATED", "EXPIRES", "CREATED-BY"},
		{"aaaaaaaaaaaa", "admin", "operator", "3d", "-", "bootstrap"},
		{"bbbbbbbbbbbb", "spark", "framework", "1h", "in", "5h", "admin"},
		{"cccccccccccc", "old", "framework", "3h", "expired", "admin"},
		{"dddddddddddd", "init", "framework", "-", "-", "tokens-file"},
	}
	if got := rows(r.stdout); !equalRows(got, want) {
		t.Errorf("got\n%s\nwant %q", r.stdout, want)
	}
	r = runCtl(t, context.Background(), "", "--kernel", url, "token", "ls", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"createdBy": "bootstrap"`) {
		t.Errorf("json: exit %d, stdout %q", r.code, r.stdout)
	}
}

func TestRun_TokenRevoke(t *testing.T) {
	isolate(t)
	res := &syscallsv1.TokenRevokeResponse{Revoked: []*syscallsv1.TokenInfo{{Id: "bbbbbbbbbbbb", Name: "spark", Role: "framework"}}}
	k := (&fakeKernel{}).replyWith("TokenRevoke", res, nil)
	url := k.serve(t)
	tests := []struct {
		args []string
		want *syscallsv1.TokenRevokeRequest
	}{
		{[]string{"bbbbbbbbbbbb"}, &syscallsv1.TokenRevokeRequest{Id: "bbbbbbbbbbbb"}},
		{[]string{"--name", "spark"}, &syscallsv1.TokenRevokeRequest{Name: "spark"}},
	}
	for _, tt := range tests {
		r := runCtl(t, context.Background(), "", append([]string{"--kernel", url, "token", "revoke"}, tt.args...)...)
		if r.code != 0 {
			t.Fatalf("%q: exit %d: %s", tt.args, r.code, r.stderr)
		}
		if got := rows(r.stdout); !equalRows(got, [][]string{{"REVOKED", "NAME", "ROLE"}, {"bbbbbbbbbbbb", "spark", "framework"}}) {
			t.Errorf("%q: stdout %q", tt.args, r.stdout)
		}
		assertProto(t, k.last("TokenRevoke"), tt.want)
	}
	for _, args := range [][]string{{}, {"a", "b"}, {"a", "--name", "b"}} {
		if r := runCtl(t, context.Background(), "", append([]string{"--kernel", url, "token", "revoke"}, args...)...); r.code != exitUsageError {
			t.Errorf("%q: exit %d, want %d", args, r.code, exitUsageError)
		}
	}
}

func TestRun_Login(t *testing.T) {
	isolate(t)
	good := &fakeKernel{}
	goodURL, caFile, ca := good.serveTLS(t)
	fp := "sha256:" + ca.ID()
	path := filepath.Join(t.TempDir(), "dcos", "config.json")
	t.Run("writes the config", func(t *testing.T) {
		// The first address answers nothing: the next decides.
		r := runCtl(t, context.Background(), "", "--config", path, "login", "127.0.0.1:1,"+goodURL, "--token", "tok-123", "--ca-fingerprint", fp)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		cfg, err := clientconfig.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if want := (clientconfig.Config{Kernel: "https://127.0.0.1:1," + goodURL, Token: "tok-123", CA: string(ca.CertPEM())}); cfg != want {
			t.Errorf("config = %+v, want %+v", cfg, want)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("config mode: %v %v", fi, err)
		}
		calls := good.recorded()
		if len(calls) != 1 || calls[0].method != "ListAgents" || calls[0].header.Get("Authorization") != "Bearer tok-123" {
			t.Errorf("calls = %v", calls)
		}
	})
	t.Run("later commands use it", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "config.json")
		if r := runCtl(t, context.Background(), "", "--config", p, "login", goodURL, "--token", "tok-456", "--ca-cert", caFile); r.code != 0 {
			t.Fatalf("login: exit %d: %s", r.code, r.stderr)
		}
		if r := runCtl(t, context.Background(), "", "--config", p, "agents"); r.code != 0 {
			t.Fatalf("agents after login: exit %d: %s", r.code, r.stderr)
		}
		calls := good.recorded()
		if last := calls[len(calls)-1]; last.method != "ListAgents" || last.header.Get("Authorization") != "Bearer tok-456" {
			t.Errorf("last call = %v", last)
		}
	})
	t.Run("CA not pinned", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "config.json")
		r := runCtl(t, context.Background(), "", "--config", p, "login", goodURL, "--token", "tok")
		if r.code != exitUsageError || !strings.Contains(r.stderr, "--ca-fingerprint") || !strings.Contains(r.stderr, "openssl x509") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("wrong fingerprint", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "config.json")
		r := runCtl(t, context.Background(), "", "--config", p, "login", goodURL, "--token", "tok", "--ca-fingerprint", "sha256:"+strings.Repeat("0", 64))
		if r.code == 0 || !strings.Contains(r.stderr, "serves no CA of fingerprint") || !strings.Contains(r.stderr, ca.ID()) {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("config written for a wrong fingerprint: %v", err)
		}
	})
	t.Run("refused token", func(t *testing.T) {
		bad := (&fakeKernel{}).replyWith("ListAgents", nil, connect.NewError(connect.CodeUnauthenticated, errors.New("unknown token")))
		p := filepath.Join(t.TempDir(), "config.json")
		badURL, badCA, _ := bad.serveTLS(t)
		r := runCtl(t, context.Background(), "", "--config", p, "login", badURL, "--token", "nope", "--ca-cert", badCA)
		if r.code != exitCallError || !strings.Contains(r.stderr, "Unauthenticated") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("config written for a refused token: %v", err)
		}
	})
	t.Run("join token", func(t *testing.T) {
		j := (&fakeKernel{}).replyWith("ListAgents", nil, connect.NewError(connect.CodePermissionDenied, errors.New("agent-join x may not call ListAgents")))
		jURL, jCA, _ := j.serveTLS(t)
		r := runCtl(t, context.Background(), "", "--config", filepath.Join(t.TempDir(), "c.json"), "login", jURL, "--token", "join", "--ca-cert", jCA)
		if r.code != exitCallError || !strings.Contains(r.stderr, "dcosd agent") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("no kernel answers", func(t *testing.T) {
		r := runCtl(t, context.Background(), "", "--config", filepath.Join(t.TempDir(), "c.json"), "login", "127.0.0.1:1", "--token", "t", "--ca-cert", caFile)
		if r.code != exitCallError || !strings.Contains(r.stderr, "no kernel answered") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{{"login", goodURL}, {"login", "--token", "t"}, {"login", "a,,b", "--token", "t"}, {"login", "ftp://x", "--token", "t"}} {
			if r := runCtl(t, context.Background(), "", append([]string{"--config", path}, args...)...); r.code != exitUsageError {
				t.Errorf("%q: exit %d, want %d (stderr %q)", args, r.code, exitUsageError, r.stderr)
			}
		}
	})
}

func TestRun_TokenHelp(t *testing.T) {
	isolate(t)
	for _, cmd := range []string{"token", "token create", "token ls", "token revoke", "login"} {
		r := runCtl(t, context.Background(), "", append(strings.Fields(cmd), "--help")...)
		if r.code != 0 || !strings.Contains(r.stdout, "USAGE:") {
			t.Errorf("%s --help: exit %d, stdout %q", cmd, r.code, r.stdout)
		}
	}
}
