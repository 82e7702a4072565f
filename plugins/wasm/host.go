package wasm

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Defaults for HostConfig's zero fields.
const (
	DefaultMemoryLimit = 256 << 20   // bytes of linear memory per instance
	DefaultDeadline    = time.Second // per call
	DefaultOutputLimit = 16 << 20    // bytes of encoded decision
	pageSize           = 64 << 10    // a wasm page
	maxLogMessages     = 64          // per call; more are counted and dropped
	maxLogBytes        = 4 << 10     // per message; longer ones are truncated
	goHeapArena        = 4 << 20     // Go's wasm runtime grows its heap by this much
	hostModule         = "dcos"      // the module name of the host imports
	wasiModule         = "wasi_snapshot_preview1"
)

// HostConfig configures a Host. The zero value is usable.
type HostConfig struct {
	// CacheDir, when set, holds wazero's compilation cache on disk, so a
	// restarted kernel loads a module it compiled before in milliseconds.
	CacheDir string
	// MemoryLimit caps each instance's linear memory, in bytes (rounded
	// down to 64 KiB pages). Zero means DefaultMemoryLimit.
	MemoryLimit uint64
	// Deadline is the initial Policy.Deadline of loaded policies. Zero
	// means DefaultDeadline.
	Deadline time.Duration
	// OutputLimit caps the size of a decision, in bytes. Zero means
	// DefaultOutputLimit.
	OutputLimit uint32
	// Logger receives the policies' log messages (with a "policy"
	// attribute) and the host's warnings about them. Nil discards them.
	Logger *slog.Logger
}

// Host runs WebAssembly policies: one per kernel. It owns a wazero
// runtime with the compiler engine, the memory cap, deadlines enforced by
// closing the instance (WithCloseOnContextDone), the `dcos` log imports
// and a deterministic WASI (no files, sockets, args or environment; fake
// clocks; randomness from the batch seed).
//
// A Host is safe for concurrent use. Close it after the policies it
// loaded are no longer called.
type Host struct {
	cfg        HostConfig
	limitPages uint32
	rt         wazero.Runtime // interruptible: operator-loaded modules
	trustedRT  wazero.Runtime // not interruptible: modules shipped in dcosd
	cache      wazero.CompilationCache
	wasi       map[string]api.FunctionDefinition
}

// NewHost makes a Host. It fails only when the cache directory cannot be
// used or the host modules cannot be instantiated.
func NewHost(ctx context.Context, cfg HostConfig) (*Host, error) {
	if cfg.MemoryLimit == 0 {
		cfg.MemoryLimit = DefaultMemoryLimit
	}
	if cfg.Deadline <= 0 {
		cfg.Deadline = DefaultDeadline
	}
	if cfg.OutputLimit == 0 {
		cfg.OutputLimit = DefaultOutputLimit
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	pages := cfg.MemoryLimit / pageSize
	if pages < 1 || pages > 65536 {
		return nil, fmt.Errorf("wasm host: memory limit %d bytes is not between 64 KiB and 4 GiB", cfg.MemoryLimit)
	}
	h := &Host{cfg: cfg, limitPages: uint32(pages)}
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasm host: compilation cache: %w", err)
		}
		h.cache = c
	}
	var err error
	if h.rt, err = h.newRuntime(ctx, true); err == nil {
		h.trustedRT, err = h.newRuntime(ctx, false)
	}
	if err != nil {
		_ = h.Close(ctx)
		return nil, err
	}
	h.wasi = h.rt.Module(wasiModule).ExportedFunctionDefinitions()
	return h, nil
}

// newRuntime makes a runtime with the memory cap, WASI and the dcos host
// module. interruptible selects WithCloseOnContextDone: calls can then be
// stopped at their deadline, at the price of a check at every loop header
// (an indirect call in wazero), which costs a Go guest several times its
// speed; see LoadTrusted.
func (h *Host) newRuntime(ctx context.Context, interruptible bool) (wazero.Runtime, error) {
	rc := wazero.NewRuntimeConfigCompiler().
		WithMemoryLimitPages(h.limitPages).
		WithCloseOnContextDone(interruptible)
	if h.cache != nil {
		rc = rc.WithCompilationCache(h.cache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("wasm host: wasi: %w", err)
	}
	i32 := api.ValueTypeI32
	_, err := rt.NewHostModuleBuilder(hostModule).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostLog), []api.ValueType{i32, i32, i32}, nil).
		WithParameterNames("level", "ptr", "len").Export("log").
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostLogEnabled), []api.ValueType{i32}, []api.ValueType{i32}).
		WithParameterNames("level").Export("log_enabled").
		Instantiate(ctx)
	if err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("wasm host: %s module: %w", hostModule, err)
	}
	return rt, nil
}

// Close closes the runtime and every instance of every policy the Host
// loaded; calls in flight fail. The compilation cache on disk stays.
func (h *Host) Close(ctx context.Context) error {
	var err error
	for _, rt := range []wazero.Runtime{h.rt, h.trustedRT} {
		if rt != nil {
			if cerr := rt.Close(ctx); err == nil {
				err = cerr
			}
		}
	}
	if h.cache != nil {
		if cerr := h.cache.Close(ctx); err == nil {
			err = cerr
		}
	}
	return err
}

// callLog is the log state of one call, reached by the host functions
// through the call's context.
type callLog struct {
	logger  *slog.Logger
	n       int // messages logged in this call
	dropped int // messages over maxLogMessages
}

type callLogKey struct{}

func logState(ctx context.Context) *callLog {
	st, _ := ctx.Value(callLogKey{}).(*callLog)
	return st
}

// finish reports the messages dropped in this call.
func (st *callLog) finish(ctx context.Context) {
	if st.dropped > 0 {
		st.logger.LogAttrs(ctx, slog.LevelWarn, "policy log messages dropped",
			slog.Int("dropped", st.dropped), slog.Int("limit", maxLogMessages))
	}
}

// hostLog is dcos.log(level i32, ptr i32, len i32).
func hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	st := logState(ctx)
	if st == nil {
		return
	}
	level := slog.Level(int32(api.DecodeI32(stack[0])))
	ptr, n := api.DecodeU32(stack[1]), api.DecodeU32(stack[2])
	if !st.logger.Enabled(ctx, level) {
		return
	}
	if st.n >= maxLogMessages {
		st.dropped++
		return
	}
	st.n++
	cut := min(n, maxLogBytes)
	b, ok := mod.Memory().Read(ptr, cut)
	if !ok {
		st.logger.LogAttrs(ctx, slog.LevelWarn, "policy log message outside its memory",
			slog.Uint64("ptr", uint64(ptr)), slog.Uint64("len", uint64(n)))
		return
	}
	msg := string(b)
	if cut < n {
		msg = fmt.Sprintf("%s… (truncated from %d bytes)", msg, n)
	}
	st.logger.Log(ctx, level, msg)
}

// hostLogEnabled is dcos.log_enabled(level i32) -> i32: 1 when a message
// at level would be recorded (and the call's budget is not spent).
func hostLogEnabled(ctx context.Context, _ api.Module, stack []uint64) {
	st := logState(ctx)
	on := st != nil && st.n < maxLogMessages && st.logger.Enabled(ctx, slog.Level(int32(api.DecodeI32(stack[0]))))
	if on {
		stack[0] = 1
	} else {
		stack[0] = 0
	}
}

// sandbox is one instance's deterministic WASI environment: a fake clock
// that starts at zero and advances 1 ms per reading (and by the requested
// amount on sleep), a ChaCha8 random stream keyed by the call's seed, and
// the start of stdout/stderr kept for error messages.
type sandbox struct {
	clock int64
	rand  seededRand
	out   head
}

func (s *sandbox) tick() int64 {
	s.clock += int64(time.Millisecond)
	return s.clock
}

func (s *sandbox) moduleConfig() wazero.ModuleConfig {
	return wazero.NewModuleConfig().
		WithName("").                      // instances of one module must not share a name
		WithStartFunctions("_initialize"). // skipped when not exported
		WithRandSource(&s.rand).
		WithWalltime(func() (int64, int32) {
			t := s.tick()
			return t / 1e9, int32(t % 1e9)
		}, 1).
		WithNanotime(s.tick, 1).
		WithNanosleep(func(ns int64) { s.clock += max(ns, 0) }).
		WithStdout(&s.out).
		WithStderr(&s.out)
}

// seededRand is the WASI random source: ChaCha8 keyed by a seed (the
// seed's 8 little-endian bytes, then zeros), restarted by reseed.
type seededRand struct{ c *rand.ChaCha8 }

func (r *seededRand) reseed(seed uint64) {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	r.c = rand.NewChaCha8(key)
}

func (r *seededRand) Read(p []byte) (int, error) {
	if r.c == nil {
		r.reseed(0)
	}
	return r.c.Read(p)
}

// head keeps the first bytes written to it: a crashing runtime writes
// its reason first (Go: "fatal error: out of memory"), then stacks.
type head struct{ b []byte }

const headSize = 1 << 10

func (h *head) Write(p []byte) (int, error) {
	if room := headSize - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (h *head) reset() { h.b = h.b[:0] }

var _ io.Writer = (*head)(nil)
