package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

func TestServer_Coordination(t *testing.T) {
	t.Parallel()
	url, _ := serve(t)
	ctx := context.Background()
	for _, opt := range []connect.ClientOption{connect.WithGRPC(), connect.WithProtoJSON()} {
		opsC := kclient.New(url, kerneltest.OperatorToken, opt)
		a := kclient.New(url, kerneltest.FrameworkToken, opt)
		b := kclient.New(url, kerneltest.FrameworkBToken, opt)
		agent := kclient.New(url, kerneltest.AgentToken, opt)
		election := "e" + strings.ToLower(strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", "-"))

		// The seven calls, as fw-a.
		c1, err := a.Campaign(ctx, connect.NewRequest(&pb.CampaignRequest{Election: election, Candidate: "a-1", Address: "10.0.0.1:80"}))
		if err != nil || !c1.Msg.GetElected() || c1.Msg.GetLeader().GetEpoch() != 1 {
			t.Fatalf("campaign: %v, %v", c1, err)
		}
		if l, err := a.Leader(ctx, connect.NewRequest(&pb.LeaderRequest{Election: election})); err != nil || l.Msg.GetLeader().GetAddress() != "10.0.0.1:80" {
			t.Fatalf("leader: %v, %v", l, err)
		}
		fence := &pb.Fence{Election: election, Epoch: 1}
		put, err := a.StatePut(ctx, connect.NewRequest(&pb.StatePutRequest{Key: "cfg/" + election, Value: []byte("v1"), Fence: fence}))
		if err != nil {
			t.Fatal(err)
		}
		if g, err := a.StateGet(ctx, connect.NewRequest(&pb.StateGetRequest{Key: "cfg/" + election})); err != nil ||
			g.Msg.GetEntry().GetRevision() != put.Msg.GetRevision() || string(g.Msg.GetEntry().GetValue()) != "v1" {
			t.Fatalf("get: %v, %v", g, err)
		}
		if l, err := a.StateList(ctx, connect.NewRequest(&pb.StateListRequest{Prefix: "cfg/"})); err != nil || len(l.Msg.GetEntries()) == 0 {
			t.Fatalf("list: %v, %v", l, err)
		}
		if _, err := a.Resign(ctx, connect.NewRequest(&pb.ResignRequest{Election: election, Candidate: "a-1", Epoch: 1})); err != nil {
			t.Fatal(err)
		}
		if c2, err := a.Campaign(ctx, connect.NewRequest(&pb.CampaignRequest{Election: election, Candidate: "a-2"})); err != nil || c2.Msg.GetLeader().GetEpoch() != 2 {
			t.Fatalf("second campaign: %v, %v", c2, err)
		}

		stale := put.Msg.GetRevision() - 1
		tests := []struct {
			name string
			call func() error
			code connect.Code
			msg  string
		}{
			{"lost CAS", func() error {
				_, err := a.StatePut(ctx, connect.NewRequest(&pb.StatePutRequest{Key: "cfg/" + election, ExpectedRevision: &stale}))
				return err
			}, connect.CodeAborted, "expected"},
			{"deposed", func() error {
				_, err := a.StateDelete(ctx, connect.NewRequest(&pb.StateDeleteRequest{Key: "cfg/" + election, Fence: fence}))
				return err
			}, connect.CodeFailedPrecondition, "deposed: epoch 1 < 2"},
			{"another framework's state", func() error {
				_, err := b.StateGet(ctx, connect.NewRequest(&pb.StateGetRequest{Key: "cfg/" + election, Owner: "fw-a"}))
				return err
			}, connect.CodePermissionDenied, "owner:"},
			{"another framework's election", func() error {
				_, err := b.Campaign(ctx, connect.NewRequest(&pb.CampaignRequest{Election: election, Candidate: "b", Owner: "fw-a"}))
				return err
			}, connect.CodePermissionDenied, "owner:"},
			{"bad election", func() error {
				_, err := a.Campaign(ctx, connect.NewRequest(&pb.CampaignRequest{Candidate: "a", Election: "Bad"}))
				return err
			}, connect.CodeInvalidArgument, "election:"},
			{"bad key", func() error {
				_, err := a.StatePut(ctx, connect.NewRequest(&pb.StatePutRequest{Key: "has space"}))
				return err
			}, connect.CodeInvalidArgument, "key:"},
			{"missing key", func() error {
				_, err := b.StateGet(ctx, connect.NewRequest(&pb.StateGetRequest{Key: "cfg/" + election}))
				return err
			}, connect.CodeNotFound, "key:"},
			{"agent", func() error {
				_, err := agent.StateList(ctx, connect.NewRequest(&pb.StateListRequest{}))
				return err
			}, connect.CodePermissionDenied, "may not call " + syscallsv1connect.KernelStateListProcedure},
		}
		for _, tt := range tests {
			err := tt.call()
			if connect.CodeOf(err) != tt.code || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("%s: %v, want %v containing %q", tt.name, err, tt.code, tt.msg)
			}
		}
		// An operator acts on fw-a's state with owner.
		if g, err := opsC.StateGet(ctx, connect.NewRequest(&pb.StateGetRequest{Key: "cfg/" + election, Owner: "fw-a"})); err != nil || string(g.Msg.GetEntry().GetValue()) != "v1" {
			t.Fatalf("operator get: %v, %v", g, err)
		}
		if _, err := opsC.StateDelete(ctx, connect.NewRequest(&pb.StateDeleteRequest{Key: "cfg/" + election, Owner: "fw-a"})); err != nil {
			t.Fatal(err)
		}
		if _, err := a.StateGet(ctx, connect.NewRequest(&pb.StateGetRequest{Key: "cfg/" + election})); connect.CodeOf(err) != connect.CodeNotFound {
			t.Fatalf("after the operator's delete: %v", err)
		}
	}
}
