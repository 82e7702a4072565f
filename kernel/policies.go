package kernel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// PolicyLoader compiles policy modules (WebAssembly, by plugins/wasm). The
// kernel never imports an engine: cmd/dcosd wires one in.
type PolicyLoader interface {
	// Load compiles and checks a module (exports, ABI version). It does not
	// run a cycle; the kernel dry-runs the result itself.
	Load(ctx context.Context, name string, wasm []byte) (LoadedPolicy, error)
}

// LoadedPolicy is a compiled policy the kernel owns and closes.
type LoadedPolicy interface {
	Policy
	Close(ctx context.Context) error
}

// NativeFirstFit is the name of the native first-fit policy, always
// available and the fallback of last resort.
const NativeFirstFit = "first-fit"

// MaxPolicyBytes bounds a policy module.
const MaxPolicyBytes = 32 << 20

// maxRollback bounds the rollback history.
const maxRollback = 16

// PolicyState is the durable policy choice: which is active, what to roll
// back to, and which operator-loaded modules exist (by content hash).
type PolicyState struct {
	Active   string               `json:"active,omitempty"`
	Previous []string             `json:"previous,omitempty"`
	Modules  map[string]ModuleRef `json:"modules,omitempty"`
}

// ModuleRef records an operator-loaded module; its bytes are a store blob
// under SHA256.
type ModuleRef struct {
	SHA256 string    `json:"sha256"`
	Size   int64     `json:"size"`
	Loaded time.Time `json:"loaded"`
}

func (s PolicyState) clone() PolicyState {
	c := PolicyState{Active: s.Active, Previous: slices.Clone(s.Previous), Modules: map[string]ModuleRef{}}
	for k, v := range s.Modules {
		c.Modules[k] = v
	}
	return c
}

// compiled is a policy ready to run.
type compiled struct {
	pol     Policy
	sha     string
	size    int64
	builtin bool
	loaded  time.Time
	lastErr string
}

var policyNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

func digest(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// initPolicies compiles the active policy at start. Failure is not fatal:
// the kernel runs native first-fit and logs why.
func (k *Kernel) initPolicies(ctx context.Context) {
	k.pmu.Lock()
	k.compiled = map[string]*compiled{NativeFirstFit: {pol: FirstFit{}, builtin: true, loaded: k.cfg.Clock()}}
	k.pmu.Unlock()
	name := k.activeName()
	if name == NativeFirstFit {
		return
	}
	if _, err := k.compile(ctx, name); err != nil {
		k.log.Error("cannot load the active policy; running native first-fit", "policy", name, "err", err)
		k.mu.Lock()
		k.pmu.Lock()
		k.forced = NativeFirstFit
		k.pmu.Unlock()
		k.mu.Unlock()
	}
}

// activeName is the policy the kernel should run: the persisted choice,
// else the configured default, else native first-fit. The caller holds
// mu (the loop does).
func (k *Kernel) activeName() string { return k.activeNameIn(k.table) }

// activeNameIn is activeName by t's policy state (the loop's table, or
// the read view's); the caller holds mu or pmu.
func (k *Kernel) activeNameIn(t *Table) string {
	if k.forced != "" {
		return k.forced
	}
	if a := t.policies.Active; a != "" {
		return a
	}
	if k.cfg.DefaultPolicy != "" {
		return k.cfg.DefaultPolicy
	}
	return NativeFirstFit
}

// compile returns the compiled policy name, compiling a built-in or a
// stored module on first use. It takes k.mu itself, and not while it
// compiles (which takes up to a second for a cold module), so the loop
// keeps serving meanwhile.
func (k *Kernel) compile(ctx context.Context, name string) (*compiled, error) {
	k.mu.Lock()
	c := k.compiled[name]
	ref, stored := k.table.policies.Modules[name]
	k.mu.Unlock()
	if c != nil {
		return c, nil
	}
	if k.cfg.Loader == nil {
		return nil, errorf(FailedPrecondition, "name: policy %q needs a WebAssembly engine and this kernel has none", name)
	}
	var wasm []byte
	builtin := false
	if b, ok := k.cfg.Builtins[name]; ok {
		wasm, builtin = b, true
	} else if stored {
		var err error
		if wasm, err = k.cfg.Store.GetBlob(ctx, ref.SHA256); err != nil {
			return nil, errorf(Unavailable, "policy %q: read module %s: %v", name, ref.SHA256, err)
		}
	} else {
		return nil, errorf(NotFound, "name: no policy %q (see PolicyList)", name)
	}
	lp, err := k.cfg.Loader.Load(ctx, name, wasm)
	if err != nil {
		return nil, errorf(FailedPrecondition, "policy %q: %v", name, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if c := k.compiled[name]; c != nil { // compiled meanwhile by another call
		lp.Close(ctx)
		return c, nil
	}
	c = &compiled{pol: lp, sha: digest(wasm), size: int64(len(wasm)), builtin: builtin, loaded: k.cfg.Clock()}
	k.pmu.Lock()
	k.compiled[name] = c
	k.pmu.Unlock()
	return c, nil
}

// policyRuntime is the policy state that is not in the table: the
// compiled modules by name, the last good policy and a forced fallback.
// It changes with the table: the loop saves it before a batch and puts it
// back when the batch's commit fails.
type policyRuntime struct {
	compiled         map[string]*compiled
	lastGood, forced string
}

// savePolicies returns the policy runtime as it is (the loop, under mu).
func (k *Kernel) savePolicies() policyRuntime {
	k.pmu.Lock()
	defer k.pmu.Unlock()
	return policyRuntime{compiled: maps.Clone(k.compiled), lastGood: k.lastGood, forced: k.forced}
}

// restorePolicies puts back what savePolicies returned, closing the
// modules compiled or loaded since that are no longer referenced (the
// loop, under mu: compile, which adds modules, takes mu too).
func (k *Kernel) restorePolicies(s policyRuntime) {
	kept := make(map[*compiled]bool, len(s.compiled))
	for _, c := range s.compiled {
		kept[c] = true
	}
	k.pmu.Lock()
	var drop []*compiled
	for _, c := range k.compiled {
		if !kept[c] {
			drop = append(drop, c)
		}
	}
	k.compiled, k.lastGood, k.forced = s.compiled, s.lastGood, s.forced
	k.pmu.Unlock()
	for _, c := range drop {
		if lp, ok := c.pol.(LoadedPolicy); ok {
			lp.Close(context.Background())
		}
	}
}

// syncCompiled drops the compiled modules that a reloaded table no longer
// names with the same digest (a batch whose commit outcome was unknown
// may have loaded another module under the name), and compiles the
// active policy again in the background when it was one of them: until
// then cycles run native first-fit (runCycle). The loop, under mu.
func (k *Kernel) syncCompiled() {
	k.pmu.Lock()
	var drop []*compiled
	for name, c := range k.compiled {
		if ref, ok := k.table.policies.Modules[name]; ok && c.sha != "" && ref.SHA256 != c.sha {
			drop = append(drop, c)
			delete(k.compiled, name)
		}
	}
	k.pmu.Unlock()
	for _, c := range drop {
		if lp, ok := c.pol.(LoadedPolicy); ok {
			lp.Close(context.Background())
		}
	}
	if name := k.activeName(); len(drop) > 0 && k.compiled[name] == nil {
		go func() {
			if _, err := k.compile(context.Background(), name); err != nil {
				k.log.Error("recompile the active policy after a reload", "policy", name, "err", err)
			}
		}()
	}
}

// runCycle runs the active policy; if it fails (trap, deadline, memory,
// malformed answer, its own error), the kernel falls back to the last good
// policy (else native first-fit), records why in a POLICY_FAILED event,
// and runs the cycle again on the fallback.
func (k *Kernel) runCycle(now time.Time, c *Changes) {
	name := k.activeName()
	cp := k.compiled[name]
	if cp == nil { // e.g. state reloaded to a policy compiled by another path
		name, cp = NativeFirstFit, k.compiled[NativeFirstFit]
	}
	seed := uint64(k.table.Revision()) + 1
	// Measured, not a decision input: not the kernel's Clock.
	defer func(start time.Time) {
		k.pmu.Lock()
		k.cycles.observe(start)
		k.pmu.Unlock()
	}(time.Now())
	res := k.table.Cycle(cp.pol, seed, now, c)
	if len(res.Rejected) > 0 {
		k.log.Warn("policy answers refused by the kernel", "policy", name, "rejected", res.Rejected)
	}
	if res.Err == nil {
		if res.Placed+res.Pending > 0 {
			k.pmu.Lock()
			k.lastGood = name
			k.pmu.Unlock()
		}
		return
	}
	fb := k.lastGood
	if fb == "" || fb == name || k.compiled[fb] == nil {
		fb = NativeFirstFit
	}
	k.pmu.Lock()
	cp.lastErr = res.Err.Error()
	k.cycles.failed(name)
	k.pmu.Unlock()
	k.log.Error("policy failed a cycle; falling back", "policy", name, "fallback", fb, "err", res.Err)
	if fb == name {
		return // first-fit itself failed: nothing to fall back to
	}
	k.table.setActive(fb, "", c)
	e := event(pb.EventKind_EVENT_KIND_POLICY_FAILED, now, fmt.Sprintf("policy %s failed: %v; falling back to %s", name, res.Err, fb))
	e.Policy = k.info(name)
	c.Events = append(c.Events, e)
	k.pmu.Lock()
	k.forced = ""
	k.pmu.Unlock()
	res = k.table.Cycle(k.compiled[fb].pol, seed, now, c)
	if res.Err == nil {
		k.pmu.Lock()
		k.lastGood = fb
		k.pmu.Unlock()
	}
}

// setActive records a new active policy; a non-empty from (the policy
// running until now) is kept for rollback.
func (t *Table) setActive(name, from string, c *Changes) {
	st := t.policies.clone()
	if from != "" && from != name {
		st.Previous = append(st.Previous, from)
		if len(st.Previous) > maxRollback {
			st.Previous = st.Previous[len(st.Previous)-maxRollback:]
		}
	}
	st.Active = name
	t.policies = st
	c.Policies = &st
	c.cycle = true
}

// info describes policy name as of the loop's table; the caller holds mu.
func (k *Kernel) info(name string) *pb.PolicyInfo { return k.infoIn(k.table, name) }

// infoIn describes policy name as of t's policy state (the loop's table
// or the read view's); the caller holds mu or pmu.
func (k *Kernel) infoIn(t *Table, name string) *pb.PolicyInfo {
	pi := &pb.PolicyInfo{Name: name, Active: name == k.activeNameIn(t)}
	if cp := k.compiled[name]; cp != nil {
		pi.Sha256, pi.SizeBytes, pi.Builtin, pi.LastError = cp.sha, cp.size, cp.builtin, cp.lastErr
		pi.Loaded = timestamppb.New(cp.loaded)
	}
	if b, ok := k.cfg.Builtins[name]; ok {
		pi.Builtin, pi.SizeBytes = true, int64(len(b))
		if pi.Sha256 == "" {
			pi.Sha256 = digest(b)
		}
	}
	if name == NativeFirstFit {
		pi.Builtin = true
	}
	if ref, ok := t.policies.Modules[name]; ok {
		pi.Sha256, pi.SizeBytes, pi.Loaded = ref.SHA256, ref.Size, timestamppb.New(ref.Loaded)
	}
	return pi
}

// dryRun runs pol on the live snapshot and judges its answer. It changes
// nothing.
func (k *Kernel) dryRun(pol Policy) (*Snapshot, *Decision, *Judgement, error) {
	k.mu.Lock()
	s := k.table.Snapshot(uint64(k.table.Revision()) + 1)
	k.mu.Unlock()
	if len(s.Requests) == 0 {
		// Nothing pending: probe with one tiny request so that the module's
		// whole call path runs on a non-empty batch.
		s.Requests = []Request{{ID: "probe", RequestID: "probe", Resources: Resources{MilliCPU: 1, Mem: 1}}}
	}
	d, err := pol.Place(s)
	if err != nil {
		return s, nil, nil, err
	}
	if d == nil {
		return s, nil, nil, errors.New("no decision")
	}
	return s, d, Judge(s, d), nil
}

// PolicyLoad validates a module, makes it active and persists it.
func (k *Kernel) PolicyLoad(ctx context.Context, p Principal, req *pb.PolicyLoadRequest) (*pb.PolicyLoadResponse, error) {
	name, wasm := req.GetName(), req.GetWasm()
	switch {
	case !policyNameRE.MatchString(name):
		return nil, fieldError("name", "must be 1 to 63 characters of [A-Za-z0-9._-] starting with a letter or digit, got %q", clip(name))
	case name == NativeFirstFit || k.cfg.Builtins[name] != nil:
		return nil, fieldError("name", "%q is a built-in policy; load under another name", name)
	case len(wasm) == 0 || len(wasm) > MaxPolicyBytes:
		return nil, fieldError("wasm", "must be 1 byte to %d MiB, got %d bytes", MaxPolicyBytes>>20, len(wasm))
	case k.cfg.Loader == nil:
		return nil, errorf(FailedPrecondition, "this kernel has no WebAssembly engine")
	}
	lp, err := k.cfg.Loader.Load(ctx, name, wasm)
	if err != nil {
		return nil, fieldError("wasm", "refused: %v", err)
	}
	_, _, j, err := k.dryRun(lp)
	if err == nil && len(j.Rejected) > 0 {
		err = fmt.Errorf("%d answers the kernel would refuse, first: %s", len(j.Rejected), j.Rejected[0])
	}
	if err != nil {
		lp.Close(ctx)
		return nil, fieldError("wasm", "refused: dry-run cycle on the live snapshot: %v", err)
	}
	sha := digest(wasm)
	if err := k.cfg.Store.PutBlob(ctx, sha, wasm); err != nil {
		lp.Close(ctx)
		return nil, errorf(Unavailable, "store policy module: %v", err)
	}
	var old *compiled
	resp := &pb.PolicyLoadResponse{}
	rev, err := k.do(ctx, func(t *Table, c *Changes, now time.Time) error {
		old = k.compiled[name]
		k.pmu.Lock()
		k.compiled[name] = &compiled{pol: lp, sha: sha, size: int64(len(wasm)), loaded: now}
		k.pmu.Unlock()
		st := t.policies.clone()
		st.Modules[name] = ModuleRef{SHA256: sha, Size: int64(len(wasm)), Loaded: now}
		t.policies = st
		k.swap(t, name, "loaded by "+p.Name, true, now, c)
		return nil
	}, func(*Table) { resp.Policy = k.info(name) })
	if err != nil {
		return nil, err
	}
	if old != nil {
		if lpOld, ok := old.pol.(LoadedPolicy); ok {
			lpOld.Close(ctx)
		}
	}
	resp.Revision = rev
	return resp, nil
}

// swap makes name active with a POLICY_SWAPPED event. Callers hold k.mu.
func (k *Kernel) swap(t *Table, name, why string, push bool, now time.Time, c *Changes) {
	from := k.activeName()
	k.pmu.Lock()
	k.forced = ""
	k.pmu.Unlock()
	if push {
		t.setActive(name, from, c)
	} else {
		t.setActive(name, "", c)
	}
	e := event(pb.EventKind_EVENT_KIND_POLICY_SWAPPED, now, fmt.Sprintf("policy %s → %s: %s", from, name, why))
	e.Policy = k.info(name)
	c.Events = append(c.Events, e)
}

// PolicyUse activates a loaded or built-in policy.
func (k *Kernel) PolicyUse(ctx context.Context, p Principal, req *pb.PolicyUseRequest) (*pb.PolicyUseResponse, error) {
	name := req.GetName()
	if _, err := k.compile(ctx, name); err != nil {
		return nil, err
	}
	resp := &pb.PolicyUseResponse{}
	rev, err := k.do(ctx, func(t *Table, c *Changes, now time.Time) error {
		k.swap(t, name, "use by "+p.Name, true, now, c)
		return nil
	}, func(*Table) { resp.Policy = k.info(name) })
	if err != nil {
		return nil, err
	}
	resp.Revision = rev
	return resp, nil
}

// PolicyRollback re-activates the previously active policy.
func (k *Kernel) PolicyRollback(ctx context.Context, p Principal, _ *pb.PolicyRollbackRequest) (*pb.PolicyRollbackResponse, error) {
	k.mu.Lock()
	prev := k.table.policies.Previous
	var name string
	if len(prev) > 0 {
		name = prev[len(prev)-1]
	}
	k.mu.Unlock()
	if name == "" {
		return nil, errorf(FailedPrecondition, "no previous policy to roll back to")
	}
	if _, err := k.compile(ctx, name); err != nil {
		return nil, err
	}
	resp := &pb.PolicyRollbackResponse{}
	rev, err := k.do(ctx, func(t *Table, c *Changes, now time.Time) error {
		st := t.policies.clone()
		if n := len(st.Previous); n == 0 || st.Previous[n-1] != name {
			return errorf(FailedPrecondition, "the rollback history changed; try again")
		}
		st.Previous = st.Previous[:len(st.Previous)-1]
		t.policies = st
		k.swap(t, name, "rollback by "+p.Name, false, now, c)
		return nil
	}, func(*Table) { resp.Policy = k.info(name) })
	if err != nil {
		return nil, err
	}
	resp.Revision = rev
	return resp, nil
}

// PolicyList lists native, built-in and loaded policies, sorted by name.
func (k *Kernel) PolicyList(context.Context, Principal) *pb.PolicyListResponse {
	k.view.mu.RLock()
	defer k.view.mu.RUnlock()
	t := k.view.t
	k.pmu.Lock()
	defer k.pmu.Unlock()
	names := map[string]bool{NativeFirstFit: true}
	for n := range k.cfg.Builtins {
		names[n] = true
	}
	for n := range t.policies.Modules {
		names[n] = true
	}
	resp := &pb.PolicyListResponse{}
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for n := range names {
			if !yield(n) {
				return
			}
		}
	}) {
		resp.Policies = append(resp.Policies, k.infoIn(t, n))
	}
	return resp
}

// PolicyTest dry-runs a candidate (a module, or a policy by name) on the
// live snapshot next to the active policy and reports the differences.
func (k *Kernel) PolicyTest(ctx context.Context, _ Principal, req *pb.PolicyTestRequest) (*pb.PolicyTestResponse, error) {
	var cand Policy
	switch {
	case len(req.GetWasm()) > 0:
		if len(req.GetWasm()) > MaxPolicyBytes {
			return nil, fieldError("wasm", "larger than %d MiB", MaxPolicyBytes>>20)
		}
		if k.cfg.Loader == nil {
			return nil, errorf(FailedPrecondition, "this kernel has no WebAssembly engine")
		}
		lp, err := k.cfg.Loader.Load(ctx, "candidate", req.GetWasm())
		if err != nil {
			return nil, fieldError("wasm", "refused: %v", err)
		}
		defer lp.Close(ctx)
		cand = lp
	case req.GetName() != "":
		cp, err := k.compile(ctx, req.GetName())
		if err != nil {
			return nil, err
		}
		cand = cp.pol
	default:
		return nil, fieldError("wasm", "give a module (wasm) or a policy name")
	}
	k.mu.RLock()
	activeName := k.activeName()
	active := k.compiled[activeName]
	k.mu.RUnlock()
	s, _, cj, err := k.dryRun(cand)
	if err != nil {
		return nil, fieldError("wasm", "candidate failed the dry-run: %v", err)
	}
	resp := &pb.PolicyTestResponse{Pending: int32(len(s.Requests)), ActivePolicy: activeName, Rejected: cj.Rejected}
	ad, err := active.pol.Place(s)
	if err != nil || ad == nil {
		ad = &Decision{}
	}
	aj := Judge(s, ad)
	where := func(j *Judgement) []string {
		out := make([]string, len(s.Requests))
		for _, pl := range j.Placements {
			out[pl.Request] = s.Agents[pl.Agent].ID
		}
		return out
	}
	aw, cw := where(aj), where(cj)
	resp.ActivePlaced, resp.CandidatePlaced = int32(len(aj.Placements)), int32(len(cj.Placements))
	for i, r := range s.Requests {
		if aw[i] != cw[i] {
			resp.Diffs = append(resp.Diffs, &pb.PlacementDiff{AllocationId: r.ID, ActiveAgentId: aw[i], CandidateAgentId: cw[i]})
		}
	}
	for _, i := range cj.Revocations {
		resp.CandidatePreemptions = append(resp.CandidatePreemptions, s.Allocations[i].ID)
	}
	return resp, nil
}
