package wasm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

func TestPolicy_Place_FirstFitWat(t *testing.T) {
	h := newHost(t, HostConfig{})
	p := load(t, h, "firstfit-wat", "testdata/firstfit.wasm")
	s := handSnapshot()
	want := &kernel.Decision{
		Placements: []kernel.Placement{pl(0, 0), pl(1, 1), pl(2, 2), pl(3, 2), pl(4, 1), pl(8, 1)},
		Never:      []int{5, 7},
	}
	for i := range 3 { // the same instance, reused
		got, err := p.Place(s)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("call %d (-want +got):\n%s", i, diff)
		}
		checkDecision(t, s, got)
	}
	native, err := kernel.FirstFit{}.Place(s)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(native.Placements, want.Placements); diff != "" {
		t.Fatalf("kernel.FirstFit disagrees (-native +wat):\n%s", diff)
	}
}

// TestPolicy_Place_FirstFitWatRandom compares firstfit.wat with
// kernel.FirstFit on random clusters.
func TestPolicy_Place_FirstFitWatRandom(t *testing.T) {
	h := newHost(t, HostConfig{})
	p := load(t, h, "firstfit-wat", "testdata/firstfit.wasm")
	for seed := range uint64(30) {
		s := randomSnapshot(seed, 40, 60)
		got, err := p.Place(s)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		checkDecision(t, s, got)
		native, _ := kernel.FirstFit{}.Place(s)
		if diff := cmp.Diff(native.Placements, got.Placements); diff != "" {
			t.Fatalf("seed %d: kernel.FirstFit disagrees (-native +wat):\n%s", seed, diff)
		}
	}
}

// TestPolicy_Place_FirstFitWatPorts: host ports are the scarce dimension
// (every agent has cpu and memory to spare), and the .wat policy counts
// them in its fit and Never checks as the ABI's version 2 says.
func TestPolicy_Place_FirstFitWatPorts(t *testing.T) {
	h := newHost(t, HostConfig{})
	p := load(t, h, "firstfit-wat", "testdata/firstfit.wasm")
	ports := func(n int64) kernel.Resources { r := mib(100, 64); r.Ports = n; return r }
	big := func(n int64) kernel.Resources { r := mib(8000, 8192); r.Ports = n; return r }
	s := &kernel.Snapshot{
		Agents: []kernel.AgentInfo{
			{ID: "none", Total: big(0), Free: big(0)},
			{ID: "one", Total: big(1), Free: big(1)},
			{ID: "two-one-free", Total: big(2), Free: big(1)},
		},
		Requests: []kernel.Request{
			{ID: "p-1", RequestID: "p", Resources: ports(1)},       // one
			{ID: "p-2", RequestID: "p", Resources: ports(1)},       // two-one-free
			{ID: "p-3", RequestID: "p", Resources: ports(1)},       // not now: totals fit, nothing free
			{ID: "wide-1", RequestID: "wide", Resources: ports(3)}, // never: no agent has 3
			{ID: "np-1", RequestID: "np", Resources: ports(0)},     // none
		},
	}
	got, err := p.Place(s)
	if err != nil {
		t.Fatal(err)
	}
	want := &kernel.Decision{Placements: []kernel.Placement{pl(0, 1), pl(1, 2), pl(4, 0)}, Never: []int{3}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	checkDecision(t, s, got)
}

func TestPolicy_Place_Empty(t *testing.T) {
	h := newHost(t, HostConfig{})
	for _, path := range []string{"testdata/firstfit.wasm", goGuest} {
		p := load(t, h, "p", path)
		d, err := p.Place(&kernel.Snapshot{})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(d.Placements)+len(d.Never)+len(d.Revocations) != 0 {
			t.Fatalf("%s: %+v", path, d)
		}
	}
}

// TestHost_Load_Invalid checks that invalid modules are refused with an
// error naming the problem, and that the Host still works afterwards.
func TestHost_Load_Invalid(t *testing.T) {
	h := newHost(t, HostConfig{})
	for _, tc := range []struct {
		name string
		wasm []byte
		want string
	}{
		{"missing export", readFile(t, "testdata/noplace.wasm"), "invalid policy module: missing export dcos_place"},
		{"old ABI version", readFile(t, "testdata/abiv1.wasm"), "invalid policy module: ABI version 1 is not supported (this kernel speaks 2): rebuild the policy with the current sdk/policy"},
		{"future ABI version", readFile(t, "testdata/abiv3.wasm"), "invalid policy module: ABI version 3 is not supported (this kernel speaks 2)"},
		{"unknown import", readFile(t, "testdata/unknownimport.wasm"), "invalid policy module: unknown import env.now"},
		{"wrong signatures", readFile(t, "testdata/wrongsig.wasm"), "invalid policy module: import dcos.log has type (i32, i32) -> (), want (i32, i32, i32) -> (); export dcos_alloc has type (i64) -> (i32), want (i32) -> (i32); export dcos_policy_wants has type (i32) -> (i32), want () -> (i32)"},
		{"initialize never returns", readFile(t, "testdata/initloop.wasm"), "invalid policy module: _initialize: deadline exceeded after 1s"},
		{"not wasm", []byte("hello"), "invalid policy module: compile:"},
		{"not a policy", readFile(t, "testdata/spin.wasm"), "invalid policy module: missing export memory; missing export dcos_policy_abi_version; missing export dcos_alloc; missing export dcos_place"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := h.Load(context.Background(), tc.name, tc.wasm)
			if err == nil {
				_ = p.Close(context.Background())
				t.Fatal("loaded")
			}
			if !errors.Is(err, ErrInvalidModule) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("got %q, want prefix %q", err, tc.want)
			}
			// The host is unharmed.
			s := handSnapshot()
			d, err := load(t, h, "firstfit", "testdata/firstfit.wasm").Place(s)
			if err != nil || len(d.Placements) != 6 {
				t.Fatalf("firstfit after %s: %+v, %v", tc.name, d, err)
			}
		})
	}
}

// TestPolicy_Place_Hostile checks that each hostile module is refused or
// contained with a clear error, within a bounded time, and that the same
// Host then still runs firstfit.wasm correctly.
func TestPolicy_Place_Hostile(t *testing.T) {
	const deadline = time.Second
	const slack = 10 * time.Second // containment, not performance
	h := newHost(t, HostConfig{MemoryLimit: 32 << 20, Deadline: deadline})
	s := handSnapshot()
	for _, tc := range []struct {
		file string
		is   error
		want string
	}{
		{"loop", ErrDeadline, "dcos_place: deadline exceeded after 1s"},
		{"memgrow", ErrOutOfMemory, "dcos_place: out of memory: memory at the 32 MiB cap: unreachable"},
		{"trap", ErrTrap, "dcos_place: trap: unreachable"},
		{"badmagic", ErrMalformedAnswer, "malformed answer: malformed policy wire data: bad decision magic 0x58585858"},
		{"outofbounds", ErrMalformedAnswer, "malformed answer: answer [4293918720, +4096) is outside a memory of 262144 bytes"},
		{"policyerror", nil, "policy error: no luck"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			p := load(t, h, tc.file, "testdata/"+tc.file+".wasm")
			if tc.is != ErrDeadline {
				// Only the loop may meet the deadline: on a loaded machine
				// (CI runs test packages in parallel, under -race) growing
				// to the cap can take longer than 1 s, and the test is about
				// which failure is reported, not about speed.
				p.Deadline = slack
			}
			for i := range 2 { // a second call on a fresh instance fails the same way
				start := time.Now()
				d, err := p.Place(s)
				if took := time.Since(start); took > deadline+slack {
					t.Fatalf("call %d took %v", i, took)
				}
				if err == nil {
					t.Fatalf("call %d: no error, decision %+v", i, d)
				}
				if err.Error() != tc.want {
					t.Fatalf("call %d: got %q, want %q", i, err, tc.want)
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Fatalf("call %d: %v is not %v", i, err, tc.is)
				}
			}
			if tc.is == nil {
				var perr *policy.PolicyError
				_, err := p.Place(s)
				if !errors.As(err, &perr) {
					t.Fatalf("%v is not a *policy.PolicyError", err)
				}
			}
			// Failed instances are discarded; a policy error keeps its instance.
			p.mu.Lock()
			idle := len(p.idle)
			p.mu.Unlock()
			if want := map[bool]int{true: 1, false: 0}[tc.is == nil]; idle != want {
				t.Fatalf("%d idle instances, want %d", idle, want)
			}
			// The host is unharmed.
			ff := load(t, h, "firstfit", "testdata/firstfit.wasm")
			d, err := ff.Place(s)
			if err != nil {
				t.Fatal(err)
			}
			checkDecision(t, s, d)
			if len(d.Placements) != 6 {
				t.Fatalf("firstfit after %s: %+v", tc.file, d)
			}
		})
	}
}

func TestPolicy_Place_GoGuest(t *testing.T) {
	logs := &records{level: slog.LevelDebug}
	// A long deadline: the out-of-memory case must exhaust memory first,
	// and the race detector slows wazero's memory growth.
	h := newHost(t, HostConfig{Logger: slog.New(logs), MemoryLimit: 64 << 20, Deadline: 20 * time.Second})
	p := load(t, h, "goguest", goGuest)
	s := handSnapshot()
	d, err := p.Place(s)
	if err != nil {
		t.Fatal(err)
	}
	checkDecision(t, s, d)
	native, _ := kernel.FirstFit{}.Place(s)
	if diff := cmp.Diff(native.Placements, d.Placements); diff != "" {
		t.Fatalf("(-native +guest):\n%s", diff)
	}
	got := logs.all()
	for _, want := range []string{
		"INFO placed 6 of 9 requests on 4 agents policy=goguest",
		"DEBUG request 0 on a0 policy=goguest",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("log %q missing from %q", want, got)
		}
	}

	for _, tc := range []struct {
		seed uint64
		is   error
		want string
	}{
		{666, nil, "policy error: seed 666 is unlucky"},
		{777, nil, "policy error: panic: seed 777"},
		{888, ErrOutOfMemory, "dcos_place: out of memory: memory at the 64 MiB cap: unreachable (output: runtime: out of memory: cannot allocate"},
	} {
		t.Run(fmt.Sprint(tc.seed), func(t *testing.T) {
			s := handSnapshot()
			s.Seed = tc.seed
			_, err := p.Place(s)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("got %v, want prefix %q", err, tc.want)
			}
			var perr *policy.PolicyError
			if tc.is == nil && !errors.As(err, &perr) || tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("%v: wrong error type", err)
			}
			if _, err := p.Place(handSnapshot()); err != nil {
				t.Fatalf("after: %v", err)
			}
		})
	}
}

// TestPolicy_Place_Deterministic checks that WASI randomness is the seed's
// stream: the same seed gives the same bytes on any instance.
func TestPolicy_Place_Deterministic(t *testing.T) {
	logs := &records{level: slog.LevelInfo}
	h := newHost(t, HostConfig{Logger: slog.New(logs)})
	p1 := load(t, h, "one", goGuest)
	p2 := load(t, h, "two", goGuest)
	s := handSnapshot()
	s.Seed = 999
	for _, p := range []*Policy{p1, p2, p1} {
		if _, err := p.Place(s); err != nil {
			t.Fatal(err)
		}
	}
	var randoms []string
	for _, r := range logs.all() {
		if strings.HasPrefix(r, "INFO random ") {
			randoms = append(randoms, strings.Fields(r)[2])
		}
	}
	if len(randoms) != 3 || randoms[0] != randoms[1] || randoms[1] != randoms[2] {
		t.Fatalf("random streams differ: %q", randoms)
	}
}

func TestPolicy_Place_LogLimits(t *testing.T) {
	t.Run("debug off", func(t *testing.T) {
		logs := &records{level: slog.LevelInfo}
		h := newHost(t, HostConfig{Logger: slog.New(logs)})
		p := load(t, h, "goguest", goGuest)
		// The guest checks log_enabled and never sends its debug lines.
		if _, err := p.Place(handSnapshot()); err != nil {
			t.Fatal(err)
		}
		for _, r := range logs.all() {
			if strings.HasPrefix(r, "DEBUG") {
				t.Fatalf("debug record %q with level info", r)
			}
		}
	})
	t.Run("spam", func(t *testing.T) {
		logs := &records{level: slog.LevelInfo}
		h := newHost(t, HostConfig{Logger: slog.New(logs)})
		p := load(t, h, "logspam", "testdata/logspam.wasm")
		if _, err := p.Place(handSnapshot()); err != nil {
			t.Fatal(err)
		}
		var spam, other []string
		for _, r := range logs.all() {
			if strings.HasPrefix(r, "INFO spam") {
				spam = append(spam, r)
			} else {
				other = append(other, r)
			}
		}
		if len(spam) != maxLogMessages {
			t.Fatalf("%d messages logged, want %d", len(spam), maxLogMessages)
		}
		if want := "… (truncated from 8000 bytes) policy=logspam"; !strings.HasSuffix(spam[0], want) || len(spam[0]) > maxLogBytes+100 {
			t.Fatalf("message of %d bytes not truncated: ...%q", len(spam[0]), spam[0][len(spam[0])-60:])
		}
		if want := []string{"WARN policy log messages dropped dropped=36 limit=64 policy=logspam"}; !slices.Equal(other, want) {
			t.Fatalf("got %q, want %q", other, want)
		}
	})
}

func TestPolicy_Place_Concurrent(t *testing.T) {
	// Eight Go instances start at once: under -race on a loaded machine
	// that takes more than the default 1 s. The deadline is not under test.
	h := newHost(t, HostConfig{Deadline: 20 * time.Second})
	p := load(t, h, "goguest", goGuest)
	s := handSnapshot()
	want, _ := kernel.FirstFit{}.Place(s)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 10 {
				d, err := p.Place(s)
				if err != nil {
					errs <- err
					return
				}
				if !slices.Equal(d.Placements, want.Placements) {
					errs <- fmt.Errorf("got %+v", d.Placements)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestPolicy_Close(t *testing.T) {
	h := newHost(t, HostConfig{})
	p := load(t, h, "firstfit", "testdata/firstfit.wasm")
	if p.Name() != "firstfit" || p.Size() != len(readFile(t, "testdata/firstfit.wasm")) || len(p.Hash()) != 64 {
		t.Fatalf("name %q size %d hash %q", p.Name(), p.Size(), p.Hash())
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Place(handSnapshot()); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

func TestHost_CompilationCache(t *testing.T) {
	dir := t.TempDir()
	for i := range 2 { // the second host reads the first one's cache
		h := newHost(t, HostConfig{CacheDir: dir})
		p := load(t, h, "firstfit", "testdata/firstfit.wasm")
		if _, err := p.Place(handSnapshot()); err != nil {
			t.Fatalf("host %d: %v", i, err)
		}
	}
}

// randomSnapshot is a cluster of na agents and nr requests drawn from
// seed, with labels and constraints of every operator.
func randomSnapshot(seed uint64, na, nr int) *kernel.Snapshot {
	x := seed*0x9e3779b97f4a7c15 + 1
	next := func(n int) int {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		return int(x % uint64(n))
	}
	zones := []string{"a", "b", "c"}
	s := &kernel.Snapshot{Seed: seed}
	for i := range na {
		total := mib(int64(1000+next(8)*1000), int64(1024+next(8)*1024))
		total.Ports = int64(next(4)) // 0–3 host ports: often the scarce dimension
		free := kernel.Resources{MilliCPU: total.MilliCPU * int64(next(5)) / 4, Mem: total.Mem * int64(next(5)) / 4, Ports: total.Ports - int64(next(int(total.Ports)+1))}
		labels := map[string]string{"zone": zones[next(3)]}
		if next(2) == 0 {
			labels["ssd"] = "yes"
		}
		s.Agents = append(s.Agents, kernel.AgentInfo{ID: fmt.Sprintf("agent-%d", i), Labels: labels, Total: total, Free: free})
	}
	for i := range nr {
		r := kernel.Request{ID: fmt.Sprintf("r-%d", i), RequestID: fmt.Sprintf("r%d", i/3), Resources: mib(int64(100+next(20)*100), int64(64+next(16)*128))}
		r.Resources.Ports = int64(max(0, next(4)-1)) // 0–2
		switch next(5) {
		case 0:
			r.Constraints = append(r.Constraints, eq("zone", zones[next(3)]))
		case 1:
			r.Constraints = append(r.Constraints, notEq("zone", zones[next(3)]))
		case 2:
			r.Constraints = append(r.Constraints, in("zone", zones[next(3)], zones[next(3)]), eq("ssd", "yes"))
		}
		s.Requests = append(s.Requests, r)
	}
	return s
}

func pl(req, agent int) kernel.Placement { return kernel.Placement{Request: req, Agent: agent} }

// TestHost_LoadTrusted: a trusted (built-in) module answers like the same
// module loaded for operators, and a call that overruns its deadline is
// discarded with ErrDeadline after the fact.
func TestHost_LoadTrusted(t *testing.T) {
	t.Parallel()
	h := newHost(t, HostConfig{})
	b, err := os.ReadFile("testdata/firstfit.wasm")
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := h.LoadTrusted(context.Background(), "trusted", b)
	if err != nil {
		t.Fatal(err)
	}
	defer trusted.Close(context.Background())
	plain := load(t, h, "plain", "testdata/firstfit.wasm")
	s := bigSnapshot(200, 50)
	want, err := plain.Place(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := trusted.Place(s)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("trusted decision differs:\n got %+v\nwant %+v", got, want)
	}
	trusted.Deadline = time.Nanosecond
	if _, err := trusted.Place(s); !errors.Is(err, ErrDeadline) || !strings.Contains(err.Error(), "not interrupted") {
		t.Fatalf("overrun: %v, want ErrDeadline", err)
	}
	trusted.Deadline = time.Minute
	if _, err := trusted.Place(s); err != nil {
		t.Fatalf("after an overrun the policy still works: %v", err)
	}
}
