package tokenstore

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/kernel"
)

// eventually polls cond every 10ms until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRegistry_CreateRevokeSeenByOthers: two kernels' registries on one
// etcd; a token created through one is accepted by both, and revoked
// through one is refused by the other within a second.
func TestRegistry_CreateRevokeSeenByOthers(t *testing.T) {
	ctx := context.Background()
	clis := startEtcd(t, 2)
	a, b := New(clis[0], ""), New(clis[1], "")
	ra, err := StartRegistry(ctx, a, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	rb, err := StartRegistry(ctx, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	secret, info, err := a.Create(ctx, kernel.RoleFramework, "fw", 0, "ops")
	if err != nil {
		t.Fatal(err)
	}
	want := kernel.Principal{Name: "fw", Role: kernel.RoleFramework}
	eventually(t, time.Second, "registry b accepts the new token", func() bool { p, ok := rb.Lookup(secret); return ok && p == want })
	eventually(t, time.Second, "registry a accepts the new token", func() bool { _, ok := ra.Lookup(secret); return ok })
	if _, err := a.Revoke(ctx, info.GetId(), ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "registry b refuses the revoked token", func() bool { _, ok := rb.Lookup(secret); return !ok })
	// A registry started later loads what is there.
	secret2, _, err := b.Create(ctx, kernel.RoleOperator, "ops2", 0, "ops")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := StartRegistry(ctx, New(clis[0], ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, ok := rc.Lookup(secret2); !ok {
		t.Error("a new registry does not accept a stored token")
	}
	if _, ok := rc.Lookup(secret); ok {
		t.Error("a new registry accepts a revoked token")
	}
	// Another prefix is another cluster.
	rd, err := StartRegistry(ctx, New(clis[0], "/other/"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if _, ok := rd.Lookup(secret2); ok {
		t.Error("a registry of another prefix accepts the token")
	}
}

// TestRegistry_Expired: a token with a ttl is accepted until it expires.
func TestRegistry_Expired(t *testing.T) {
	ctx := context.Background()
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	s := New(startEtcd(t, 1)[0], "").WithClock(clock)
	r, err := StartRegistry(ctx, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	secret, info, err := s.Create(ctx, kernel.RoleFramework, "short", time.Hour, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if !info.GetExpires().AsTime().Equal(clock().Add(time.Hour)) {
		t.Errorf("expires = %v, want created + 1h", info.GetExpires().AsTime())
	}
	eventually(t, time.Second, "the token is accepted", func() bool { _, ok := r.Lookup(secret); return ok })
	now.Add(int64(time.Hour - time.Second))
	if _, ok := r.Lookup(secret); !ok {
		t.Error("refused a second before it expires")
	}
	now.Add(int64(time.Second))
	if _, ok := r.Lookup(secret); ok {
		t.Error("accepted when it expired")
	}
}

func TestRegistry_LookupAllocs(t *testing.T) {
	ctx := context.Background()
	s := New(startEtcd(t, 1)[0], "")
	secret, _, err := s.Create(ctx, kernel.RoleOperator, "ops", 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	r, err := StartRegistry(ctx, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n := testing.AllocsPerRun(100, func() { r.Lookup(secret) }); n != 0 {
		t.Errorf("Lookup allocates %v times", n)
	}
}

func BenchmarkRegistry_Lookup(b *testing.B) {
	ctx := context.Background()
	s := New(startEtcd(b, 1)[0], "")
	var secret string
	for i := range 1000 {
		sec, _, err := s.Create(ctx, kernel.RoleAgent, "agent", 0, "bench")
		if err != nil {
			b.Fatal(err)
		}
		if i == 500 {
			secret = sec
		}
	}
	r, err := StartRegistry(ctx, s, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := r.Lookup(secret); !ok {
				b.Fatal("refused")
			}
		}
	})
}
