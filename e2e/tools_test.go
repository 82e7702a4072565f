package e2e

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestCurlAndGrpcurl allocates with the real curl (HTTP/JSON) and the real
// grpcurl (gRPC, with the schema from server reflection).
func TestCurlAndGrpcurl(t *testing.T) {
	t.Parallel()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatalf("curl is not installed: %v", err)
	}
	grpcurl := findGrpcurl(t)
	e := newEnv(t)
	e.startDev("--resources", "cpus=2,mem=1Gi")
	hostPort := strings.TrimPrefix(e.url, "https://")
	// As the README shows: the bundle dcosd dev leaves in DATA_DIR/pki.
	ca := e.path("data", "pki", "ca.crt")
	body := `{"resources":{"cpus":0.25,"memBytes":"33554432"}}`

	t.Run("curl", func(t *testing.T) {
		e := e.in(t)
		out := e.run(curl, "-sS", "--fail-with-body", "--cacert", ca,
			"-H", "Authorization: Bearer "+e.opToken, "-H", "Content-Type: application/json",
			"-d", body, e.url+"/dcos.syscalls.v1.Kernel/Allocate")
		requireGranted(t, "curl", out)
	})
	t.Run("grpcurl", func(t *testing.T) {
		e := e.in(t)
		out := e.run(grpcurl, "-cacert", ca, hostPort, "list")
		if !strings.Contains(out, "dcos.syscalls.v1.Kernel") {
			t.Fatalf("grpcurl list (server reflection) = %q, want dcos.syscalls.v1.Kernel", out)
		}
		out = e.run(grpcurl, "-cacert", ca, "-H", "authorization: Bearer "+e.opToken, "-d", body,
			hostPort, "dcos.syscalls.v1.Kernel/Allocate")
		requireGranted(t, "grpcurl", out)
	})
	t.Run("grpcurl with a bad token", func(t *testing.T) {
		e := e.in(t)
		out, code := e.runStatus(grpcurl, "-cacert", ca, "-H", "authorization: Bearer "+newToken(), "-d", body,
			hostPort, "dcos.syscalls.v1.Kernel/Allocate")
		if code == 0 || !strings.Contains(out, "Unauthenticated") || !strings.Contains(out, "unknown token") {
			t.Errorf("grpcurl with a bad token: exit %d, output %q; want non-zero, Unauthenticated and the server's message", code, out)
		}
	})
	if n := len(listAllocations(t, e.op()).GetAllocations()); n != 2 {
		t.Errorf("%d allocations after curl and grpcurl, want 2", n)
	}
}

// findGrpcurl returns grpcurl: the version pinned as a tool in go.mod
// (`go tool -n grpcurl` builds it if needed and prints its path), else one
// in PATH.
func findGrpcurl(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "tool", "-n", "grpcurl").Output()
	if p := strings.TrimSpace(string(out)); err == nil && p != "" {
		return p
	}
	if p, err := exec.LookPath("grpcurl"); err == nil {
		return p
	}
	t.Fatalf("grpcurl: `go tool -n grpcurl` failed (%v) and none is in PATH; it is pinned in go.mod as a tool", err)
	return ""
}

// run runs an external command, failing the test unless it exits 0, and
// returns its stdout.
func (e *env) run(name string, args ...string) string {
	e.t.Helper()
	out, code := e.runStatus(name, args...)
	if code != 0 {
		e.t.Fatalf("%s %s: exit %d\n%s", filepath.Base(name), strings.Join(args, " "), code, out)
	}
	return out
}

// runStatus runs an external command and returns its combined output and
// exit code.
func (e *env) runStatus(name string, args ...string) (string, int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = e.baseEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee) && ctx.Err() == nil:
		return out.String(), ee.ExitCode()
	}
	e.t.Fatalf("%s: %v\n%s", name, err, out.String())
	return "", 0
}

// requireGranted parses out as an AllocateResponse in protobuf JSON and
// requires one GRANTED allocation.
func requireGranted(t testing.TB, who, out string) {
	t.Helper()
	var res pb.AllocateResponse
	if err := protojson.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%s: response is not an AllocateResponse: %v\n%s", who, err, out)
	}
	if len(res.GetAllocations()) != 1 || res.GetAllocations()[0].GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
		t.Fatalf("%s: %v, want one GRANTED allocation", who, &res)
	}
}

// TestDcosctl_Syscall runs dcosctl's raw syscalls against dcosd dev, and a
// call with a bad token.
func TestDcosctl_Syscall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startDev("--resources", "cpus=2,mem=1Gi")

	t.Run("list", func(t *testing.T) {
		e := e.in(t)
		out := e.mustCtl("syscall", "--list")
		methods := pb.File_v1_syscalls_proto.Services().ByName("Kernel").Methods()
		for i := range methods.Len() {
			if name := string(methods.Get(i).Name()); !strings.Contains(out, name) {
				t.Errorf("syscall --list does not show %s:\n%s", name, out)
			}
		}
	})
	t.Run("listAgents", func(t *testing.T) {
		e := e.in(t)
		out := e.mustCtl("syscall", "listAgents")
		var res pb.ListAgentsResponse
		if err := protojson.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("syscall listAgents: %v\n%s", err, out)
		}
		want := listAgents(t, e.op())
		if len(res.GetAgents()) != 1 || res.GetAgents()[0].GetId() != want.GetAgents()[0].GetId() || res.GetAgents()[0].GetState() != pb.AgentState_AGENT_STATE_UP {
			t.Errorf("syscall listAgents = %v, want the agent %v UP", &res, want.GetAgents())
		}
	})
	t.Run("allocate", func(t *testing.T) {
		e := e.in(t)
		out := e.mustCtl("syscall", "allocate", `{"resources":{"cpus":0.5,"memBytes":"67108864"}}`)
		requireGranted(t, "dcosctl syscall allocate", out)
	})
	t.Run("bad token", func(t *testing.T) {
		e := e.in(t)
		for _, args := range [][]string{{"syscall", "listAgents"}, {"agents"}} {
			out, errOut, code := e.ctl(append([]string{"--token", newToken()}, args...)...)
			if code == 0 || !strings.Contains(errOut, "Unauthenticated") || !strings.Contains(errOut, "unknown token") {
				t.Errorf("dcosctl --token BAD %s: exit %d, stdout %q, stderr %q; want non-zero and the server's message", strings.Join(args, " "), code, out, errOut)
			}
		}
	})
	t.Run("malformed JSON", func(t *testing.T) {
		e := e.in(t)
		before := listAllocations(t, e.op())
		_, errOut, code := e.ctl("syscall", "allocate", `{"resources":`)
		if code == 0 || errOut == "" {
			t.Errorf("dcosctl syscall allocate with malformed JSON: exit %d, stderr %q", code, errOut)
		}
		// The allocations, not the store's revision: other writes (the
		// audit trail, certificates issued) go on meanwhile.
		after := listAllocations(t, e.op())
		before.Revision, after.Revision = 0, 0
		if !proto.Equal(after, before) {
			t.Errorf("malformed JSON changed the allocations: %v -> %v", before, after)
		}
	})
}

// TestPending_ThenPlaced fills an agent's memory: the next request stays
// PENDING with a reason about memory, and is granted once the first
// allocation is revoked.
func TestPending_ThenPlaced(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startDev("--resources", "cpus=1,mem=256Mi")
	op := e.op()
	req := &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: 200 * mi}}
	first := allocateOne(t, op, req)

	res := allocate(t, op, req)
	if len(res.GetAllocations()) != 1 {
		t.Fatalf("second Allocate = %v, want one allocation", res)
	}
	second := res.GetAllocations()[0]
	if second.GetState() != pb.AllocationState_ALLOCATION_STATE_PENDING {
		t.Fatalf("second allocation is %v, want PENDING (256Mi agent, 200Mi taken)", second.GetState())
	}
	if !strings.Contains(res.GetPendingReason(), "memory") || !strings.Contains(second.GetPendingReason(), "memory") {
		t.Errorf("pending reasons %q (response) and %q (allocation), want them to mention memory", res.GetPendingReason(), second.GetPendingReason())
	}
	w := e.watch(op, res.GetRevision())

	revoke(t, op, first.GetId())
	granted := w.waitFor(t, "ALLOCATION_GRANTED of "+second.GetId(), allocEvent(second.GetId(), pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED))
	if granted.GetAllocation().GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED || granted.GetAllocation().GetAgentId() == "" {
		t.Errorf("ALLOCATION_GRANTED event carries %v, want it GRANTED on an agent", granted.GetAllocation())
	}
	allocs := listAllocations(t, op).GetAllocations()
	if len(allocs) != 1 || allocs[0].GetId() != second.GetId() || allocs[0].GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
		t.Errorf("allocations = %v, want only %s GRANTED", allocs, second.GetId())
	}
	if a := listAgents(t, op).GetAgents(); len(a) != 1 || a[0].GetAllocated().GetMemBytes() != 200*mi {
		t.Errorf("agents = %v, want 200Mi allocated", a)
	}
}
