package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	"github.com/dcos-kernel/dcos/internal/store"
	"github.com/dcos-kernel/dcos/internal/tokenstore"
	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// tokenServer is a kernel whose door takes the tokens file of
// kerneltest.DefaultTokens and a token store (on an etcd of its own).
func tokenServer(t *testing.T) (*kerneltest.Server, *tokenstore.Store) {
	t.Helper()
	e, err := store.StartEmbedded(store.EmbeddedConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	ts := tokenstore.New(e.Client(), "")
	reg, err := tokenstore.StartRegistry(context.Background(), ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	file, err := api.NewTokens(kerneltest.DefaultTokens())
	if err != nil {
		t.Fatal(err)
	}
	srv := kerneltest.Start(t, kerneltest.Options{API: func(c *api.Config) {
		c.Tokens = api.TokenChain{file, reg}
		c.TokenStore = ts
		c.FileTokens = file
	}})
	return srv, ts
}

// waitCode polls a ListAgents call with token until it answers code (nil:
// success), for at most a second.
func waitCode(t *testing.T, url, token string, code *connect.Code, what string) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		_, err := kclient.New(url, token).ListAgents(context.Background(), connect.NewRequest(&pb.ListAgentsRequest{}))
		if (code == nil && err == nil) || (code != nil && err != nil && connect.CodeOf(err) == *code) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 1s (last: %v)", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServer_TokenCreateRevoke(t *testing.T) {
	srv, _ := tokenServer(t)
	ctx := context.Background()
	ops := kclient.New(srv.URL, kerneltest.OperatorToken)
	res, err := ops.TokenCreate(ctx, connect.NewRequest(&pb.TokenCreateRequest{Role: "framework", Name: "fw-new", Ttl: durationpb.New(time.Hour)}))
	if err != nil {
		t.Fatal(err)
	}
	info := res.Msg.GetInfo()
	if info.GetName() != "fw-new" || info.GetRole() != "framework" || info.GetCreatedBy() != "ops" || info.GetExpires() == nil || len(res.Msg.GetToken()) != 64 {
		t.Fatalf("TokenCreate = %v", res.Msg)
	}
	tok := res.Msg.GetToken()
	waitCode(t, srv.URL, tok, nil, "the new token is accepted")
	// It acts as its principal: it may allocate, not load policies.
	if _, err := kclient.New(srv.URL, tok).PolicyUse(ctx, connect.NewRequest(&pb.PolicyUseRequest{Name: "x"})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("framework PolicyUse = %v, want PermissionDenied", err)
	}
	list, err := ops.TokenList(ctx, connect.NewRequest(&pb.TokenListRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range list.Msg.GetTokens() {
		names = append(names, i.GetName()+"/"+i.GetCreatedBy())
		if strings.Contains(i.String(), tok) {
			t.Errorf("TokenList shows a secret: %v", i)
		}
	}
	if got, want := strings.Join(names, " "), "fw-new/ops ops/tokens-file fw-a/tokens-file fw-b/tokens-file agents/tokens-file"; got != want {
		t.Errorf("TokenList names = %s, want %s", got, want)
	}
	rev, err := ops.TokenRevoke(ctx, connect.NewRequest(&pb.TokenRevokeRequest{Id: info.GetId()}))
	if err != nil || len(rev.Msg.GetRevoked()) != 1 {
		t.Fatalf("TokenRevoke = %v, %v", rev, err)
	}
	unauth := connect.CodeUnauthenticated
	waitCode(t, srv.URL, tok, &unauth, "the revoked token is refused")
	// Revoking it again, or a name no token has, is NotFound.
	if _, err := ops.TokenRevoke(ctx, connect.NewRequest(&pb.TokenRevokeRequest{Id: info.GetId()})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("TokenRevoke again = %v, want NotFound", err)
	}
	// A file token is revoked by editing the file: the error says so.
	_, err = ops.TokenRevoke(ctx, connect.NewRequest(&pb.TokenRevokeRequest{Name: "fw-a"}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "tokens file") {
		t.Errorf("TokenRevoke(file token) = %v, want FailedPrecondition naming the tokens file", err)
	}
}

func TestServer_TokenBadInput(t *testing.T) {
	srv, _ := tokenServer(t)
	ctx := context.Background()
	ops := kclient.New(srv.URL, kerneltest.OperatorToken)
	tests := []struct {
		name  string
		req   *pb.TokenCreateRequest
		field string
	}{
		{"no role", &pb.TokenCreateRequest{Name: "x"}, "role"},
		{"bad role", &pb.TokenCreateRequest{Role: "root", Name: "x"}, "role"},
		{"no name", &pb.TokenCreateRequest{Role: "framework"}, "name"},
		{"negative ttl", &pb.TokenCreateRequest{Role: "framework", Name: "x", Ttl: durationpb.New(-time.Minute)}, "ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ops.TokenCreate(ctx, connect.NewRequest(tt.req))
			if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), tt.field+": ") {
				t.Errorf("TokenCreate = %v, want InvalidArgument naming %s", err, tt.field)
			}
		})
	}
	if _, err := ops.TokenRevoke(ctx, connect.NewRequest(&pb.TokenRevokeRequest{})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("TokenRevoke() = %v, want InvalidArgument", err)
	}
}

// TestServer_TokenRoles: the token syscalls are operators' only; a join
// token may call AgentJoin and nothing else, and the agent token it gets
// registers an agent.
func TestServer_TokenRoles(t *testing.T) {
	srv, ts := tokenServer(t)
	ctx := context.Background()
	for _, tok := range []string{kerneltest.FrameworkToken, kerneltest.AgentToken} {
		k := kclient.New(srv.URL, tok)
		if _, err := k.TokenList(ctx, connect.NewRequest(&pb.TokenListRequest{})); connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Errorf("TokenList as %s = %v, want PermissionDenied", tok, err)
		}
		if _, err := k.TokenCreate(ctx, connect.NewRequest(&pb.TokenCreateRequest{Role: "operator", Name: "me"})); connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Errorf("TokenCreate as %s = %v, want PermissionDenied", tok, err)
		}
		if _, err := k.AgentJoin(ctx, connect.NewRequest(&pb.AgentJoinRequest{Hostname: "h"})); connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Errorf("AgentJoin as %s = %v, want PermissionDenied", tok, err)
		}
	}
	join, _, err := ts.Create(ctx, kernel.RoleAgentJoin, "joiner", 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	waitCode(t, srv.URL, join, ptr(connect.CodePermissionDenied), "the join token is known (and may not list agents)")
	j := kclient.New(srv.URL, join)
	if _, err := j.RegisterAgent(ctx, connect.NewRequest(&pb.RegisterAgentRequest{})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("RegisterAgent with a join token = %v, want PermissionDenied", err)
	}
	if _, err := j.AgentJoin(ctx, connect.NewRequest(&pb.AgentJoinRequest{Hostname: "bad host"})); connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "hostname") {
		t.Errorf("AgentJoin(bad host) = %v, want InvalidArgument naming hostname", err)
	}
	res, err := j.AgentJoin(ctx, connect.NewRequest(&pb.AgentJoinRequest{Hostname: "node-1"}))
	if err != nil {
		t.Fatal(err)
	}
	if i := res.Msg.GetInfo(); i.GetName() != "agent-node-1" || i.GetRole() != "agent" || i.GetCreatedBy() != "joiner" {
		t.Errorf("AgentJoin info = %v", i)
	}
	waitCode(t, srv.URL, res.Msg.GetToken(), nil, "the agent token is accepted")
	reg, err := kclient.New(srv.URL, res.Msg.GetToken()).RegisterAgent(ctx, connect.NewRequest(&pb.RegisterAgentRequest{
		Hostname: "node-1", Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 30}}))
	if err != nil {
		t.Fatalf("RegisterAgent with the joined token: %v", err)
	}
	if reg.Msg.GetAgentId() == "" {
		t.Errorf("RegisterAgent = %v", reg.Msg)
	}
}

func ptr[T any](v T) *T { return &v }
