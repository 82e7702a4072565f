package ctl

import (
	"context"
	"strings"
	"testing"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestRun_PluginLs(t *testing.T) {
	isolate(t)
	k := (&fakeKernel{}).replyWith("ListAgents", &syscallsv1.ListAgentsResponse{Agents: []*syscallsv1.Agent{{
		Id: "ag-1", State: syscallsv1.AgentState_AGENT_STATE_UP,
		Plugins: []*syscallsv1.PluginInfo{
			{Name: "exec", Kind: "driver", Builtin: true, Protocol: 1, Health: "healthy"},
			{Name: "nice", Kind: "driver", Protocol: 1, Health: "restarting", Restarts: 3, LastError: "exit status 2"},
		},
	}, {Id: "ag-2", Plugins: []*syscallsv1.PluginInfo{{Name: "cgroups", Kind: "isolator", Builtin: true, Protocol: 1, Health: "healthy"}}}}}, nil)
	url := k.serve(t)
	for _, tc := range []struct {
		args []string
		want [][]string
	}{
		{[]string{"plugin", "ls"}, [][]string{
			{"AGENT", "KIND", "NAME", "BUILTIN", "PROTOCOL", "HEALTH", "RESTARTS", "ERROR"},
			{"ag-1", "driver", "exec", "yes", "1", "healthy", "0", "-"},
			{"ag-1", "driver", "nice", "no", "1", "restarting", "3", "exit", "status", "2"},
			{"ag-2", "isolator", "cgroups", "yes", "1", "healthy", "0", "-"},
		}},
		{[]string{"plugin", "ls", "--agent", "ag-2"}, [][]string{
			{"AGENT", "KIND", "NAME", "BUILTIN", "PROTOCOL", "HEALTH", "RESTARTS", "ERROR"},
			{"ag-2", "isolator", "cgroups", "yes", "1", "healthy", "0", "-"},
		}},
	} {
		r := runCtl(t, context.Background(), "", append([]string{"--kernel", url}, tc.args...)...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, r.code, r.stderr)
		}
		if got := rows(r.stdout); !equalRows(got, tc.want) {
			t.Errorf("%v: got\n%s\nwant %q", tc.args, r.stdout, tc.want)
		}
	}
	r := runCtl(t, context.Background(), "", "--kernel", url, "plugin", "ls", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"restarts": 3`) {
		t.Errorf("json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestRun_LaunchDriver(t *testing.T) {
	isolate(t)
	k := &fakeKernel{}
	url := k.serve(t)
	r := runCtl(t, context.Background(), "", "--kernel", url, "launch", "a-1", "--driver", "nice", "--driver-config", `{"nice":5}`, "--", "sleep", "1")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	assertProto(t, k.last("Launch"), &syscallsv1.LaunchRequest{AllocationId: "a-1", Command: "sleep", Args: []string{"1"}, Driver: "nice", DriverConfig: `{"nice":5}`})
	r = runCtl(t, context.Background(), "", "--kernel", url, "launch", "a-1", "--driver-config", `{nice`, "--", "sleep", "1")
	if r.code != 2 || !strings.Contains(r.stderr, "--driver-config: not valid JSON") {
		t.Errorf("bad JSON: exit %d, stderr %q", r.code, r.stderr)
	}
}
