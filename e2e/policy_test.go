package e2e

import (
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

const testdata = "../plugins/wasm/testdata/"

// activePolicy returns the active policy's name from `dcosctl policy ls`.
func activePolicy(t *testing.T, e *env) string {
	t.Helper()
	var resp struct {
		Policies []struct {
			Name   string `json:"name"`
			Active bool   `json:"active"`
		} `json:"policies"`
	}
	if err := json.Unmarshal([]byte(e.mustCtl("policy", "ls", "-o", "json")), &resp); err != nil {
		t.Fatal(err)
	}
	for _, p := range resp.Policies {
		if p.Active {
			return p.Name
		}
	}
	return ""
}

// TestPolicy_LoadWhileAllocating swaps the policy of a running dcosd dev,
// with `dcosctl policy load`, to the first-fit policy written by hand in
// WebAssembly text, while allocations keep coming; watch shows the swap,
// and hostile modules are refused with their reason while allocation goes
// on under the active policy.
func TestPolicy_LoadWhileAllocating(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startDev("--resources", "cpus=1000,mem=1000Gi")
	op := e.op()
	if got := activePolicy(t, e); got != "drf" {
		t.Fatalf("dcosd dev starts with policy %q, want drf", got)
	}
	w := e.watch(op, listAgents(t, op).GetRevision())

	var (
		granted atomic.Int64
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		failure atomic.Value
	)
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			r, err := op.Allocate(ctx(t), connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.01, MemBytes: 1 << 20}}))
			if err != nil {
				failure.Store(err.Error())
				return
			}
			if r.Msg.GetAllocations()[0].GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
				failure.Store("not granted: " + r.Msg.GetPendingReason())
				return
			}
			granted.Add(1)
		}
	})
	defer func() { close(stop); wg.Wait() }()
	e.eventually("allocations under drf", func() (bool, string) { return granted.Load() >= 5, "" })

	out := e.mustCtl("policy", "load", testdata+"firstfit.wasm", "--name", "wat-firstfit")
	if !strings.Contains(out, "loaded wat-firstfit") {
		t.Fatalf("policy load printed %q", out)
	}
	w.waitFor(t, "POLICY_SWAPPED to wat-firstfit", func(ev *pb.Event) bool {
		return ev.GetKind() == pb.EventKind_EVENT_KIND_POLICY_SWAPPED && ev.GetPolicy().GetName() == "wat-firstfit"
	})
	after := granted.Load()
	e.eventually("allocations under the .wat policy", func() (bool, string) { return granted.Load() >= after+5, "" })
	if got := activePolicy(t, e); got != "wat-firstfit" {
		t.Fatalf("active policy %q after load", got)
	}

	for _, bad := range []struct{ file, want string }{
		{"loop.wasm", "deadline exceeded"},
		{"trap.wasm", "trap"},
		{"abiv1.wasm", "ABI version 1 is not supported (this kernel speaks 2)"},
		{"noplace.wasm", "missing export dcos_place"},
		{"badmagic.wasm", "malformed answer"},
	} {
		_, errOut, code := e.ctl("policy", "load", testdata+bad.file, "--name", "hostile")
		if code != 1 || !strings.Contains(errOut, bad.want) {
			t.Errorf("policy load %s: exit %d, stderr %q; want exit 1 mentioning %q", bad.file, code, errOut, bad.want)
		}
	}
	if got := activePolicy(t, e); got != "wat-firstfit" {
		t.Fatalf("active policy %q after refused loads", got)
	}
	after = granted.Load()
	e.eventually("allocations after refused loads", func() (bool, string) { return granted.Load() >= after+5, "" })

	out = e.mustCtl("policy", "rollback")
	if !strings.Contains(out, "drf") || activePolicy(t, e) != "drf" {
		t.Fatalf("rollback printed %q, active %q", out, activePolicy(t, e))
	}
	if f := failure.Load(); f != nil {
		t.Fatalf("an allocation failed during the swaps: %v", f)
	}
}
