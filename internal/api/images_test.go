package api_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestServer_RemoveImage: an agent's heartbeat lists its images in
// ListAgents; an operator's RemoveImage reaches the agent in its next
// heartbeat answer, once; others may not call it, and bad input names the
// field.
func TestServer_RemoveImage(t *testing.T) {
	t.Parallel()
	url, _ := serve(t)
	ctx := context.Background()
	agent := kclient.New(url, kerneltest.AgentToken, connect.WithGRPC())
	ops := kclient.New(url, kerneltest.OperatorToken, connect.WithGRPC())
	fw := kclient.New(url, kerneltest.FrameworkToken, connect.WithProtoJSON())

	reg, err := agent.RegisterAgent(ctx, connect.NewRequest(&pb.RegisterAgentRequest{Hostname: "h", Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 30}}))
	if err != nil {
		t.Fatal(err)
	}
	id := reg.Msg.GetAgentId()
	const ref = "127.0.0.1:5000/nginx:test"
	hb := func(images *pb.ImageList) []string {
		t.Helper()
		resp, err := agent.Heartbeat(ctx, connect.NewRequest(&pb.HeartbeatRequest{AgentId: id, Images: images}))
		if err != nil {
			t.Fatalf("Heartbeat: %v", err)
		}
		return resp.Msg.GetRemoveImages()
	}
	hb(&pb.ImageList{Images: []*pb.ImageInfo{{Ref: ref, Digest: "sha256:01", SizeBytes: 1 << 20, Driver: "oci"}}})

	agents, err := ops.ListAgents(ctx, connect.NewRequest(&pb.ListAgentsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(agents.Msg.GetAgents()) != 1 || len(agents.Msg.GetAgents()[0].GetImages()) != 1 || agents.Msg.GetAgents()[0].GetImages()[0].GetRef() != ref {
		t.Fatalf("ListAgents = %v, want the agent with image %s", agents.Msg.GetAgents(), ref)
	}

	for _, tc := range []struct {
		name   string
		client func() error
		code   connect.Code
		field  string
	}{
		{"framework", func() error {
			_, err := fw.RemoveImage(ctx, connect.NewRequest(&pb.RemoveImageRequest{Ref: ref}))
			return err
		}, connect.CodePermissionDenied, ""},
		{"agent", func() error {
			_, err := agent.RemoveImage(ctx, connect.NewRequest(&pb.RemoveImageRequest{Ref: ref}))
			return err
		}, connect.CodePermissionDenied, ""},
		{"no token", func() error {
			_, err := kclient.New(url, "").RemoveImage(ctx, connect.NewRequest(&pb.RemoveImageRequest{Ref: ref}))
			return err
		}, connect.CodeUnauthenticated, ""},
		{"unknown agent", func() error {
			_, err := ops.RemoveImage(ctx, connect.NewRequest(&pb.RemoveImageRequest{AgentId: "agent-99", Ref: ref}))
			return err
		}, connect.CodeNotFound, "agent_id"},
		{"bad ref", func() error {
			_, err := ops.RemoveImage(ctx, connect.NewRequest(&pb.RemoveImageRequest{Ref: "nginx latest"}))
			return err
		}, connect.CodeInvalidArgument, "ref"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.client()
			if connect.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want %v naming %q", err, tc.code, tc.field)
			}
		})
	}
	if got := hb(nil); len(got) != 0 {
		t.Fatalf("removals after refused calls = %v, want none", got)
	}

	resp, err := ops.RemoveImage(ctx, connect.NewRequest(&pb.RemoveImageRequest{Ref: "sha256:01"}))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(resp.Msg.GetAgentIds(), []string{id}) {
		t.Errorf("agent_ids = %v, want [%s]", resp.Msg.GetAgentIds(), id)
	}
	if got := hb(nil); !slices.Equal(got, []string{"sha256:01"}) {
		t.Errorf("heartbeat remove_images = %v, want the digest", got)
	}
	if got := hb(&pb.ImageList{}); len(got) != 0 {
		t.Errorf("remove_images delivered twice: %v", got)
	}
	resp, err = ops.RemoveImage(ctx, connect.NewRequest(&pb.RemoveImageRequest{Ref: ref}))
	if err != nil || len(resp.Msg.GetAgentIds()) != 0 {
		t.Errorf("RemoveImage of an image no agent lists = %v, %v; want no agents", resp.Msg.GetAgentIds(), err)
	}
}
