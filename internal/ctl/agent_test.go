package ctl

import (
	"context"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestRun_AgentDrain(t *testing.T) {
	deadline := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name    string
		args    []string
		agent   *syscallsv1.Agent // the kernel's answer
		want    *syscallsv1.AgentDrainRequest
		wantRow []string
	}{
		{"drain", []string{"agent", "drain", "ag-1"},
			&syscallsv1.Agent{Id: "ag-1", State: syscallsv1.AgentState_AGENT_STATE_UP, Draining: true},
			&syscallsv1.AgentDrainRequest{AgentId: "ag-1"}, []string{"ag-1", "UP,DRAINING", "-"}},
		{"drain with deadline", []string{"agent", "drain", "ag-1", "--deadline", "1h30m"},
			&syscallsv1.Agent{Id: "ag-1", State: syscallsv1.AgentState_AGENT_STATE_UP, Draining: true, DrainDeadline: timestamppb.New(deadline)},
			&syscallsv1.AgentDrainRequest{AgentId: "ag-1", Deadline: durationpb.New(90 * time.Minute)}, []string{"ag-1", "UP,DRAINING", "2026-01-02T03:04:05Z"}},
		{"undrain", []string{"agent", "undrain", "ag-1"},
			&syscallsv1.Agent{Id: "ag-1", State: syscallsv1.AgentState_AGENT_STATE_UP},
			&syscallsv1.AgentDrainRequest{AgentId: "ag-1", Undrain: true}, []string{"ag-1", "UP", "-"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			k := (&fakeKernel{}).replyWith("AgentDrain", &syscallsv1.AgentDrainResponse{Agent: tt.agent, Revision: 7}, nil)
			url := k.serve(t)
			r := runCtl(t, context.Background(), "", append([]string{"--kernel", url}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			assertProto(t, k.last("AgentDrain"), tt.want)
			want := [][]string{{"ID", "STATE", "DEADLINE"}, tt.wantRow}
			if got := rows(r.stdout); !equalRows(got, want) {
				t.Errorf("got\n%s\nwant %q", r.stdout, want)
			}
			r = runCtl(t, context.Background(), "", append([]string{"--kernel", url, "-o", "json"}, tt.args...)...)
			if r.code != 0 || !strings.Contains(r.stdout, `"revision": "7"`) {
				t.Errorf("-o json: exit %d:\n%s", r.code, r.stdout)
			}
		})
	}
}

func TestRun_AgentDrainErrors(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		err    error // the kernel's answer
		code   int
		stderr string
	}{
		{"no id", []string{"agent", "drain"}, nil, 2, "want one agent ID"},
		{"two ids", []string{"agent", "undrain", "a", "b"}, nil, 2, "want one agent ID"},
		{"bad deadline", []string{"agent", "drain", "a", "--deadline", "soon"}, nil, 2, "deadline"},
		{"negative deadline", []string{"agent", "drain", "a", "--deadline", "-1s"}, nil, 2, "want a duration >= 0"},
		{"unknown agent", []string{"agent", "drain", "ag-9"}, connect.NewError(connect.CodeNotFound, errString("agent_id: no agent \"ag-9\"")), 1, "AgentDrain: NotFound: agent_id: no agent"},
		{"not an operator", []string{"agent", "drain", "ag-1"}, connect.NewError(connect.CodePermissionDenied, errString("operators only")), 1, "PermissionDenied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			k := &fakeKernel{}
			k.reply("AgentDrain", func(proto.Message) (proto.Message, error) {
				if tt.err != nil {
					return nil, tt.err
				}
				return &syscallsv1.AgentDrainResponse{}, nil
			})
			url := k.serve(t)
			r := runCtl(t, context.Background(), "", append([]string{"--kernel", url}, tt.args...)...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tt.code, tt.stderr)
			}
			if tt.code == 2 && len(k.recorded()) != 0 {
				t.Fatalf("a usage error called %v", k.methods())
			}
		})
	}
}

type errString string

func (e errString) Error() string { return string(e) }
