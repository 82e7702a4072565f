package api_test

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestServer_Roles: RoleSet is an operator's call, RoleList an
// operator's or a framework's, over gRPC and over JSON; a quota given
// as {} clears the role's quota (the field's presence is kept).
func TestServer_Roles(t *testing.T) {
	t.Parallel()
	url, _ := serve(t)
	ctx := context.Background()
	for _, opt := range []connect.ClientOption{connect.WithGRPC(), connect.WithProtoJSON()} {
		opsC := kclient.New(url, kerneltest.OperatorToken, opt)
		w := 2.5
		set, err := opsC.RoleSet(ctx, connect.NewRequest(&pb.RoleSetRequest{Name: "web", Weight: &w, Quota: &pb.Resources{Cpus: 4}}))
		if err != nil || set.Msg.GetRole().GetQuota().GetCpus() != 4 || set.Msg.GetRole().GetWeight() != 2.5 {
			t.Fatalf("operator RoleSet: %v %v", set, err)
		}
		if _, err := opsC.RoleSet(ctx, connect.NewRequest(&pb.RoleSetRequest{Name: "web", Quota: &pb.Resources{}})); err != nil {
			t.Fatal(err)
		}
		list, err := kclient.New(url, kerneltest.FrameworkToken, opt).RoleList(ctx, connect.NewRequest(&pb.RoleListRequest{}))
		if err != nil || len(list.Msg.GetRoles()) != 1 || list.Msg.GetRoles()[0].GetQuota() != nil || list.Msg.GetRoles()[0].GetWeight() != 2.5 {
			t.Fatalf("framework RoleList after clearing the quota: %v %v", list, err)
		}
		_, err = opsC.RoleSet(ctx, connect.NewRequest(&pb.RoleSetRequest{Name: "web", Quota: &pb.Resources{MemBytes: -1}}))
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "quota.mem_bytes") {
			t.Fatalf("bad quota: %v, want InvalidArgument naming quota.mem_bytes", err)
		}
		_, err = kclient.New(url, kerneltest.FrameworkToken, opt).RoleSet(ctx, connect.NewRequest(&pb.RoleSetRequest{Name: "web", Weight: &w}))
		if connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Fatalf("framework RoleSet: %v, want PermissionDenied", err)
		}
		_, err = kclient.New(url, kerneltest.AgentToken, opt).RoleList(ctx, connect.NewRequest(&pb.RoleListRequest{}))
		if connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Fatalf("agent RoleList: %v, want PermissionDenied", err)
		}
	}
}
