package api

import (
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/kernel"
)

func TestRateLimiter_Allow(t *testing.T) {
	l := newRateLimiter(map[kernel.Role]RateLimit{kernel.RoleFramework: {Rate: 10, Burst: 2}, kernel.RoleAgent: {}},
		map[kernel.Principal]RateLimit{{Name: "init", Role: kernel.RoleFramework}: {}, {Name: "tiny", Role: kernel.RoleFramework}: {Rate: 1, Burst: 1}})
	now := time.Unix(1000, 0)
	fw, other := kernel.Principal{Name: "spark", Role: kernel.RoleFramework}, kernel.Principal{Name: "flink", Role: kernel.RoleFramework}
	for i := range 2 {
		if err := l.allow(fw, now); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	err := l.allow(fw, now)
	if want := "rate limit: framework spark exceeded 10 calls/s (burst 2); retry after 100ms"; connect.CodeOf(err) != connect.CodeResourceExhausted || !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("third call: %v, want %q", err, want)
	}
	if err := l.allow(other, now); err != nil {
		t.Fatalf("another framework: %v", err)
	}
	// A refused call takes nothing: 100ms later one call passes.
	if err := l.allow(fw, now.Add(100*time.Millisecond)); err != nil {
		t.Fatalf("after the wait: %v", err)
	}
	for range 1000 {
		if err := l.allow(kernel.Principal{Name: "a", Role: kernel.RoleAgent}, now); err != nil {
			t.Fatal(err)
		}
		if err := l.allow(kernel.Principal{Name: "o", Role: kernel.RoleOperator}, now); err != nil {
			t.Fatal(err)
		}
		// A principal's own limit overrides its role's.
		if err := l.allow(kernel.Principal{Name: "init", Role: kernel.RoleFramework}, now); err != nil {
			t.Fatalf("framework init (unlimited of its own): %v", err)
		}
	}
	tiny := kernel.Principal{Name: "tiny", Role: kernel.RoleFramework}
	if err := l.allow(tiny, now); err != nil {
		t.Fatal(err)
	}
	if err := l.allow(tiny, now); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("tiny's second call: %v, want its own limit (1/s, burst 1) to refuse it", err)
	}
}

// BenchmarkDoor_Allow measures the rate limiter's cost per call (the
// door's only per-call work besides the token's SHA-256).
func BenchmarkDoor_Allow(b *testing.B) {
	l := newRateLimiter(map[kernel.Role]RateLimit{kernel.RoleFramework: {Rate: 1e9, Burst: 1e9}}, nil)
	p := kernel.Principal{Name: "spark", Role: kernel.RoleFramework}
	now := time.Now()
	for b.Loop() {
		if err := l.allow(p, now); err != nil {
			b.Fatal(err)
		}
	}
}
