package api_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	"github.com/dcos-kernel/dcos/internal/store"
	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// serve runs a real kernel on an embedded etcd behind the API handler,
// with kerneltest's default tokens.
func serve(t *testing.T) (url string, st *store.Etcd) {
	t.Helper()
	srv := kerneltest.Start(t, kerneltest.Options{})
	return srv.URL, srv.Store
}

func TestServer_AuthAndRoles(t *testing.T) {
	t.Parallel()
	url, _ := serve(t)
	ctx := context.Background()
	req := connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}})
	tests := []struct {
		name  string
		token string
		call  func(c syscallsv1connect.KernelClient) error
		want  connect.Code
	}{
		{"no token", "", func(c syscallsv1connect.KernelClient) error { _, err := c.Allocate(ctx, req); return err }, connect.CodeUnauthenticated},
		{"unknown token", "not-a-real-token-at-all", func(c syscallsv1connect.KernelClient) error { _, err := c.Allocate(ctx, req); return err }, connect.CodeUnauthenticated},
		{"agent allocates", kerneltest.AgentToken, func(c syscallsv1connect.KernelClient) error { _, err := c.Allocate(ctx, req); return err }, connect.CodePermissionDenied},
		{"framework registers an agent", kerneltest.FrameworkToken, func(c syscallsv1connect.KernelClient) error {
			_, err := c.RegisterAgent(ctx, connect.NewRequest(&pb.RegisterAgentRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1}}))
			return err
		}, connect.CodePermissionDenied},
		{"framework watch without token", "", func(c syscallsv1connect.KernelClient) error {
			s, err := c.Watch(ctx, connect.NewRequest(&pb.WatchRequest{}))
			if err != nil {
				return err
			}
			defer s.Close()
			s.Receive()
			return s.Err()
		}, connect.CodeUnauthenticated},
		{"bad input", kerneltest.FrameworkToken, func(c syscallsv1connect.KernelClient) error {
			_, err := c.Allocate(ctx, connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: -1, MemBytes: 1}}))
			return err
		}, connect.CodeInvalidArgument},
		{"unknown allocation", kerneltest.FrameworkToken, func(c syscallsv1connect.KernelClient) error {
			_, err := c.Launch(ctx, connect.NewRequest(&pb.LaunchRequest{AllocationId: "a-12345", Command: "true"}))
			return err
		}, connect.CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, opt := range []connect.ClientOption{connect.WithGRPC(), connect.WithProtoJSON()} {
				err := tt.call(kclient.New(url, tt.token, opt))
				if got := connect.CodeOf(err); got != tt.want {
					t.Fatalf("code %v (%v), want %v", got, err, tt.want)
				}
				if tt.want == connect.CodeInvalidArgument && !strings.Contains(err.Error(), "resources.cpus") {
					t.Fatalf("message %q does not name the field", err)
				}
			}
		})
	}
}

func TestServer_OversizedAndMalformed(t *testing.T) {
	t.Parallel()
	url, _ := serve(t)
	post := func(body []byte) (int, string) {
		r, _ := http.NewRequest("POST", url+syscallsv1connect.KernelAllocateProcedure, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+kerneltest.OperatorToken)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	if code, body := post([]byte(`{"resources": {"cpus": 1,`)); code != 400 || !strings.Contains(body, "invalid_argument") {
		t.Fatalf("malformed JSON: %d %s", code, body)
	}
	big := append([]byte(`{"role":"`), bytes.Repeat([]byte("x"), api.MaxRequestBytes+1)...)
	big = append(big, `"}`...)
	if code, body := post(big); code != 429 || !strings.Contains(body, "resource_exhausted") {
		t.Fatalf("oversized request: %d %s", code, body[:min(len(body), 200)])
	}
	if code, body := post([]byte(`{"resources":{"cpus":0.5,"memBytes":"1048576"}}`)); code != 200 || !strings.Contains(body, "ALLOCATION_STATE_PENDING") {
		t.Fatalf("still serving after bad input: %d %s", code, body)
	}
}

func TestServer_WatchResyncDetail(t *testing.T) {
	t.Parallel()
	url, st := serve(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := kclient.New(url, kerneltest.OperatorToken)
	var rev int64
	for range 3 {
		r, err := c.Allocate(ctx, connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}}))
		if err != nil {
			t.Fatal(err)
		}
		rev = r.Msg.GetRevision()
	}
	// Events stream over the wire.
	s, err := c.Watch(ctx, connect.NewRequest(&pb.WatchRequest{AfterRevision: 1}))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Receive() || s.Msg().GetRevision() <= 1 {
		t.Fatalf("first event: %v %v", s.Msg(), s.Err())
	}
	s.Close()
	if err := st.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	s, err = c.Watch(ctx, connect.NewRequest(&pb.WatchRequest{AfterRevision: 1}))
	if err != nil {
		t.Fatal(err)
	}
	for s.Receive() {
	}
	var ce *connect.Error
	if !errors.As(s.Err(), &ce) || ce.Code() != connect.CodeFailedPrecondition || len(ce.Details()) != 1 {
		t.Fatalf("watch from compacted revision: %v", s.Err())
	}
	v, err := ce.Details()[0].Value()
	if info, ok := v.(*pb.ResyncInfo); err != nil || !ok || info.GetCurrentRevision() < rev {
		t.Fatalf("resync detail %v %v", v, err)
	}
}

func TestNewTokens(t *testing.T) {
	for _, bad := range [][]api.TokenEntry{
		{{Token: "short", Name: "a", Role: "operator"}},
		{{Token: "long-enough-token-1234", Role: "operator"}},
		{{Token: "long-enough-token-1234", Name: "a", Role: "root"}},
		{{Token: "long-enough-token-1234", Name: "a", Role: "operator"}, {Token: "long-enough-token-1234", Name: "b", Role: "agent"}},
	} {
		if _, err := api.NewTokens(bad); err == nil {
			t.Errorf("NewTokens(%+v): want error", bad)
		}
	}
	tk, err := api.NewTokens(kerneltest.DefaultTokens())
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := tk.Lookup(kerneltest.FrameworkToken); !ok || p.Name != "fw-a" || p.Role != kernel.RoleFramework {
		t.Fatalf("lookup: %v %v", p, ok)
	}
}
