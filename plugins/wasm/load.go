package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/dcos-kernel/dcos/sdk/policy"
)

// signature is a function type, written as in docs/policy-abi.md.
type signature struct{ params, results []api.ValueType }

var (
	i32, i64 = api.ValueTypeI32, api.ValueTypeI64

	// requiredExports are the functions every policy module exports.
	requiredExports = []struct {
		name string
		sig  signature
	}{
		{"dcos_policy_abi_version", signature{nil, []api.ValueType{i32}}},
		{"dcos_alloc", signature{[]api.ValueType{i32}, []api.ValueType{i32}}},
		{"dcos_place", signature{[]api.ValueType{i32, i32}, []api.ValueType{i64}}},
	}
	// wantsExport is the optional export that declares which optional
	// parts of the batch a module reads.
	wantsExport = "dcos_policy_wants"
	wantsSig    = signature{nil, []api.ValueType{i32}}
	// hostImports are the functions of module "dcos".
	hostImports = map[string]signature{
		"log":         {[]api.ValueType{i32, i32, i32}, nil},
		"log_enabled": {[]api.ValueType{i32}, []api.ValueType{i32}},
	}
)

func (s signature) String() string {
	name := func(ts []api.ValueType) string {
		var b strings.Builder
		b.WriteByte('(')
		for i, t := range ts {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(api.ValueTypeName(t))
		}
		b.WriteByte(')')
		return b.String()
	}
	return name(s.params) + " -> " + name(s.results)
}

func (s signature) matches(d api.FunctionDefinition) bool {
	return slices.Equal(s.params, d.ParamTypes()) && slices.Equal(s.results, d.ResultTypes())
}

func sigOf(d api.FunctionDefinition) signature {
	return signature{d.ParamTypes(), d.ResultTypes()}
}

// Load compiles and checks a policy module and instantiates it once:
// exports memory, dcos_policy_abi_version, dcos_alloc and dcos_place with
// the ABI's signatures; imports nothing but the dcos log functions and
// WASI preview 1; starts (runs _initialize if exported) within the
// deadline; and reports ABI version 2 (policy.ABIVersion). A refusal wraps
// ErrInvalidModule and names every problem found, e.g. "missing export
// dcos_place" or "ABI version 1 is not supported (this kernel speaks 2):
// rebuild the policy with the current sdk/policy ...".
//
// The returned Policy keeps no reference to wasm. Load is safe for
// concurrent use; a name may be loaded more than once.
func (h *Host) Load(ctx context.Context, name string, wasm []byte) (*Policy, error) {
	return h.load(ctx, name, wasm, h.rt)
}

// LoadTrusted is Load for modules shipped inside dcosd (the built-in
// policies): they run without the per-loop deadline checks, which cost a
// Go-built guest several times its speed (docs/benchmarks.md). Their
// deadline is enforced after the fact: a call that overruns it fails with
// ErrDeadline and its answer is discarded, but it cannot be interrupted.
// Never use it for a module an operator or a vendor supplies.
func (h *Host) LoadTrusted(ctx context.Context, name string, wasm []byte) (*Policy, error) {
	return h.load(ctx, name, wasm, h.trustedRT)
}

func (h *Host) load(ctx context.Context, name string, wasm []byte, rt wazero.Runtime) (*Policy, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: empty name", ErrInvalidModule)
	}
	// One compilation worker per CPU: a 2-3 MB Go-built module compiles in
	// about half the wall time on two idle cores (docs/benchmarks.md, policy
	// swap latency), and a cold load is a rare operator action.
	compiled, err := rt.CompileModule(experimental.WithCompilationWorkers(ctx, runtime.NumCPU()), wasm)
	if err != nil {
		return nil, fmt.Errorf("%w: compile: %v", ErrInvalidModule, err)
	}
	if problems := h.check(compiled.ImportedFunctions(), compiled.ImportedMemories(), compiled.ExportedFunctions(), compiled.ExportedMemories()); len(problems) > 0 {
		_ = compiled.Close(ctx)
		return nil, fmt.Errorf("%w: %s", ErrInvalidModule, strings.Join(problems, "; "))
	}
	sum := sha256.Sum256(wasm)
	p := &Policy{
		Deadline: h.cfg.Deadline,
		h:        h,
		rt:       rt,
		trusted:  rt == h.trustedRT,
		name:     name,
		compiled: compiled,
		size:     len(wasm),
		hash:     hex.EncodeToString(sum[:]),
		logger:   h.cfg.Logger.With("policy", name),
		maxIdle:  runtime.GOMAXPROCS(0),
	}
	// Start one instance now: a module that cannot start or speaks
	// another ABI is refused here rather than at its first cycle.
	sctx, cancel := p.callContext(ctx)
	inst, err := p.start(sctx)
	cancel()
	if err != nil {
		_ = p.Close(ctx)
		return nil, fmt.Errorf("%w: %w", ErrInvalidModule, err)
	}
	err = p.checkVersion(ctx, inst)
	if err == nil {
		err = p.readWants(ctx, inst)
	}
	if err != nil {
		inst.close(ctx)
		_ = p.Close(ctx)
		return nil, fmt.Errorf("%w: %w", ErrInvalidModule, err)
	}
	p.put(ctx, inst)
	return p, nil
}

// check lists what is wrong with a module's imports and exports.
func (h *Host) check(imports []api.FunctionDefinition, memImports []api.MemoryDefinition, exports map[string]api.FunctionDefinition, memories map[string]api.MemoryDefinition) []string {
	var problems []string
	for _, d := range imports {
		mod, fn, _ := d.Import()
		var want api.FunctionDefinition
		var sig signature
		var ok bool
		switch mod {
		case hostModule:
			sig, ok = hostImports[fn]
		case wasiModule:
			if want, ok = h.wasi[fn]; ok {
				sig = sigOf(want)
			}
		}
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("unknown import %s.%s", mod, fn))
		case !sig.matches(d):
			problems = append(problems, fmt.Sprintf("import %s.%s has type %v, want %v", mod, fn, sigOf(d), sig))
		}
	}
	for _, m := range memImports {
		mod, name, _ := m.Import()
		problems = append(problems, fmt.Sprintf("unknown import %s.%s (memory: a policy exports its own)", mod, name))
	}
	if _, ok := memories["memory"]; !ok {
		problems = append(problems, "missing export memory")
	}
	for _, e := range requiredExports {
		d, ok := exports[e.name]
		switch {
		case !ok:
			problems = append(problems, "missing export "+e.name)
		case !e.sig.matches(d):
			problems = append(problems, fmt.Sprintf("export %s has type %v, want %v", e.name, sigOf(d), e.sig))
		}
	}
	if d, ok := exports[wantsExport]; ok && !wantsSig.matches(d) {
		problems = append(problems, fmt.Sprintf("export %s has type %v, want %v", wantsExport, sigOf(d), wantsSig))
	}
	if d, ok := exports["_initialize"]; ok && (len(d.ParamTypes()) > 0 || len(d.ResultTypes()) > 0) {
		problems = append(problems, fmt.Sprintf("export _initialize has type %v, want () -> ()", sigOf(d)))
	}
	return problems
}

// readWants sets p.wants from the module's dcos_policy_wants, called
// once under the deadline; a module without it wants every part. Bits
// this kernel does not know are ignored.
func (p *Policy) readWants(ctx context.Context, inst *instance) error {
	p.wants = policy.WantAll
	if inst.wants == nil {
		return nil
	}
	ctx, cancel := p.callContext(ctx)
	defer cancel()
	res, err := inst.wants.Call(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", wantsExport, p.callError(ctx, inst, err))
	}
	p.wants = policy.Wants(api.DecodeU32(res[0])) & policy.WantAll
	return nil
}

// checkVersion calls dcos_policy_abi_version under the deadline.
func (p *Policy) checkVersion(ctx context.Context, inst *instance) error {
	ctx, cancel := p.callContext(ctx)
	defer cancel()
	res, err := inst.version.Call(ctx)
	if err != nil {
		return fmt.Errorf("dcos_policy_abi_version: %w", p.callError(ctx, inst, err))
	}
	if v := int32(res[0]); v != policy.ABIVersion {
		return fmt.Errorf("ABI version %d is not supported (this kernel speaks %d): rebuild the policy with the current sdk/policy (docs/policy-abi.md, Versioning)", v, policy.ABIVersion)
	}
	return nil
}
