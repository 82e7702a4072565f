package wasm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

// Policy is a loaded WebAssembly policy. It implements kernel.Policy.
//
// It is safe for concurrent use: each call takes an instance from a pool
// (made on demand, at most GOMAXPROCS kept idle), and an instance that
// failed in any way other than a policy-reported error is closed, never
// reused.
type Policy struct {
	// Deadline bounds each call (instantiation included when no instance
	// is idle). Set it before the first call, not during calls; it is
	// HostConfig.Deadline (default DefaultDeadline) after Load.
	Deadline time.Duration

	h        *Host
	rt       wazero.Runtime
	trusted  bool         // loaded with LoadTrusted: not interruptible
	wants    policy.Wants // what dcos_policy_wants returned (WantAll without it)
	name     string
	compiled wazero.CompiledModule
	size     int
	hash     string
	logger   *slog.Logger
	maxIdle  int

	mu     sync.Mutex
	idle   []*instance
	closed bool
}

var _ kernel.Policy = (*Policy)(nil)

// Name returns the name the policy was loaded under.
func (p *Policy) Name() string { return p.name }

// Size returns the module's size in bytes.
func (p *Policy) Size() int { return p.size }

// Wants returns the optional parts of the batch the module reads (its
// dcos_policy_wants; policy.WantAll when it does not export one). The
// host leaves the others out of its batches.
func (p *Policy) Wants() policy.Wants { return p.wants }

// Hash returns the hex SHA-256 of the module.
func (p *Policy) Hash() string { return p.hash }

// Place implements kernel.Policy: it runs the module on s under
// p.Deadline. Errors wrap ErrDeadline, ErrTrap, ErrOutOfMemory,
// ErrMalformedAnswer or ErrClosed, or are a *policy.PolicyError (the
// module's own report).
func (p *Policy) Place(s *kernel.Snapshot) (*kernel.Decision, error) {
	return p.DryRun(context.Background(), s)
}

// DryRun is Place with a context: the kernel calls it explicitly to
// validate a policy against the live snapshot before swapping it in. It
// changes nothing but the pool of instances.
func (p *Policy) DryRun(ctx context.Context, s *kernel.Snapshot) (*kernel.Decision, error) {
	ctx, cancel := p.callContext(ctx)
	defer cancel()
	inst, err := p.get(ctx)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	d, err := inst.call(ctx, p, s)
	if p.trusted && err == nil {
		if took := time.Since(start); took > p.deadline() {
			p.put(ctx, inst)
			return nil, fmt.Errorf("dcos_place: %w after %v (took %v; a built-in module is not interrupted, its answer is discarded)", ErrDeadline, p.deadline(), took.Round(time.Millisecond))
		}
	}
	var perr *policy.PolicyError
	if err == nil || errors.As(err, &perr) {
		p.put(ctx, inst)
	} else {
		inst.close(ctx)
	}
	return d, err
}

// Close closes the idle instances and the compiled module; instances in
// use are closed when their call returns. Later calls fail with
// ErrClosed. Close is idempotent.
func (p *Policy) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, inst := range idle {
		inst.close(ctx)
	}
	return p.compiled.Close(ctx)
}

// errPolicyDeadline is the cause of a call context that hit p.Deadline.
var errPolicyDeadline = errors.New("policy deadline")

// callContext bounds a call by p.Deadline.
func (p *Policy) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, p.deadline(), errPolicyDeadline)
}

// deadline is p.Deadline, or DefaultDeadline when it is not positive.
func (p *Policy) deadline() time.Duration {
	if p.Deadline <= 0 {
		return DefaultDeadline
	}
	return p.Deadline
}

// get takes an idle instance or starts one.
func (p *Policy) get(ctx context.Context) (*instance, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if n := len(p.idle); n > 0 {
		inst := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return inst, nil
	}
	p.mu.Unlock()
	return p.start(ctx)
}

// put returns a healthy instance to the pool.
func (p *Policy) put(ctx context.Context, inst *instance) {
	p.mu.Lock()
	if !p.closed && len(p.idle) < p.maxIdle {
		p.idle = append(p.idle, inst)
		inst = nil
	}
	p.mu.Unlock()
	if inst != nil {
		inst.close(ctx)
	}
}

// instance is one module instance with its buffers. It is used by one
// call at a time.
type instance struct {
	mod                   api.Module
	mem                   api.Memory
	version, alloc, place api.Function
	wants                 api.Function // nil when not exported
	sb                    *sandbox
	conv                  converter
	enc                   policy.Encoder
	dec                   policy.Decision
}

// start instantiates the module (running _initialize) within ctx.
func (p *Policy) start(ctx context.Context) (*instance, error) {
	sb := &sandbox{}
	st := &callLog{logger: p.logger}
	defer st.finish(ctx)
	mod, err := p.rt.InstantiateModule(context.WithValue(ctx, callLogKey{}, st), p.compiled, sb.moduleConfig())
	if err != nil {
		const initFailed = "function[_initialize] failed: "
		if _, after, ok := strings.Cut(err.Error(), initFailed); ok || isExit(err) {
			if ok {
				err = errors.New(after)
			}
			return nil, fmt.Errorf("_initialize: %w", p.callError(ctx, &instance{sb: sb}, err))
		}
		return nil, fmt.Errorf("instantiate: %v", err)
	}
	return &instance{
		mod:     mod,
		mem:     mod.Memory(),
		version: mod.ExportedFunction("dcos_policy_abi_version"),
		alloc:   mod.ExportedFunction("dcos_alloc"),
		place:   mod.ExportedFunction("dcos_place"),
		wants:   mod.ExportedFunction(wantsExport),
		sb:      sb,
	}, nil
}

func (inst *instance) close(ctx context.Context) {
	if inst.mod != nil {
		_ = inst.mod.Close(ctx)
	}
}

// call runs one cycle on the instance: encode, dcos_alloc, write,
// dcos_place, read, decode, convert.
func (inst *instance) call(ctx context.Context, p *Policy, s *kernel.Snapshot) (*kernel.Decision, error) {
	b, same := inst.conv.batch(s, p.wants)
	var in []byte
	if same {
		in = inst.enc.EncodeBatchSameAgents(b)
	} else {
		in = inst.enc.EncodeBatch(b)
	}
	inst.sb.rand.reseed(b.Seed)
	inst.sb.out.reset()
	st := &callLog{logger: p.logger}
	defer st.finish(ctx)
	cctx := context.WithValue(ctx, callLogKey{}, st)

	res, err := inst.alloc.Call(cctx, uint64(len(in)))
	if err != nil {
		return nil, fmt.Errorf("dcos_alloc: %w", p.callError(ctx, inst, err))
	}
	ptr := api.DecodeU32(res[0])
	if ptr == 0 {
		return nil, fmt.Errorf("%w: dcos_alloc(%d) returned 0", ErrOutOfMemory, len(in))
	}
	if !inst.mem.Write(ptr, in) {
		return nil, fmt.Errorf("%w: dcos_alloc(%d) returned %d, outside a memory of %d bytes", ErrMalformedAnswer, len(in), ptr, inst.mem.Size())
	}
	res, err = inst.place.Call(cctx, uint64(ptr), uint64(len(in)))
	if err != nil {
		return nil, fmt.Errorf("dcos_place: %w", p.callError(ctx, inst, err))
	}
	outPtr, outLen := uint32(res[0]>>32), uint32(res[0])
	if outLen > p.h.cfg.OutputLimit {
		return nil, fmt.Errorf("%w: answer of %d bytes exceeds the %d-byte cap", ErrMalformedAnswer, outLen, p.h.cfg.OutputLimit)
	}
	out, ok := inst.mem.Read(outPtr, outLen)
	if !ok {
		return nil, fmt.Errorf("%w: answer [%d, +%d) is outside a memory of %d bytes", ErrMalformedAnswer, outPtr, outLen, inst.mem.Size())
	}
	if err := policy.DecodeDecision(out, &inst.dec); err != nil {
		var perr *policy.PolicyError
		if errors.As(err, &perr) {
			return nil, perr
		}
		return nil, fmt.Errorf("%w: %w", ErrMalformedAnswer, err)
	}
	return toDecision(&inst.dec), nil
}

// callError names why a call into the module failed.
func (p *Policy) callError(ctx context.Context, inst *instance, err error) error {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			if context.Cause(ctx) == errPolicyDeadline {
				return fmt.Errorf("%w after %v", ErrDeadline, p.deadline())
			}
			return fmt.Errorf("%w (the caller's context)", ErrDeadline)
		case sys.ExitCodeContextCanceled:
			return fmt.Errorf("call canceled: %w", context.Canceled)
		}
		return inst.failure(p, fmt.Sprintf("module exited with code %d", exit.ExitCode()))
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return inst.failure(p, strings.TrimPrefix(msg, "wasm error: "))
}

// failure is a trap or exit, reported as out of memory when the memory
// is at its cap (within a Go heap arena: Go's runtime grows by 4 MiB and
// exits when it cannot).
func (inst *instance) failure(p *Policy, what string) error {
	if line := firstLine(inst.sb.out.b); line != "" {
		what += " (output: " + line + ")"
	}
	limit := uint64(p.h.limitPages) * pageSize
	if inst.mem != nil && uint64(inst.mem.Size())+min(goHeapArena, limit/2) > limit {
		return fmt.Errorf("%w: memory at the %d MiB cap: %s", ErrOutOfMemory, limit>>20, what)
	}
	return fmt.Errorf("%w: %s", ErrTrap, what)
}

// firstLine is the first non-blank line of b, at most 200 bytes.
func firstLine(b []byte) string {
	for l := range strings.Lines(string(b)) {
		if l = strings.TrimSpace(l); l != "" {
			if len(l) > 200 {
				l = l[:200] + "…"
			}
			return l
		}
	}
	return ""
}

func isExit(err error) bool {
	var exit *sys.ExitError
	return errors.As(err, &exit)
}
