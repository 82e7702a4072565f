package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestCandidacy_FenceRefusesLateWrites: kernel A leads and commits; a
// standby B finds A gone and deposes it (revokes its lease), then takes
// the lead. Every commit A attempts afterwards — it may still believe it
// leads — is refused with ErrFenced and writes nothing; B's commit lands.
func TestCandidacy_FenceRefusesLateWrites(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, e := startStore(t)
	a, err := s.Candidate(ctx, "http://a", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := New(e.Client(), "").Candidate(ctx, "http://b", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.Campaign(ctx); err != nil {
		t.Fatal(err)
	}
	sa := s.Fenced(a.Key(), a.Rev())
	commit := func(s *Etcd, id string) error {
		_, err := s.Commit(ctx, &kernel.Changes{Allocations: map[string]*pb.Allocation{id: {Id: id}}})
		return err
	}
	if err := commit(sa, "a-1"); err != nil {
		t.Fatalf("the leader's commit: %v", err)
	}
	l, ok, err := s.Leader(ctx)
	if err != nil || !ok || l.URL != "http://a" || l.Key != a.Key() || l.Rev != a.Rev() {
		t.Fatalf("Leader = %+v, %v, %v; want a's key %s rev %d", l, ok, err, a.Key(), a.Rev())
	}
	ms, err := s.Members(ctx)
	if err != nil || len(ms) != 2 || ms[0].URL != "http://a" || ms[1].URL != "http://b" {
		t.Fatalf("Members = %+v, %v", ms, err)
	}

	won := make(chan error, 1)
	go func() { won <- b.Campaign(ctx) }()
	select {
	case err := <-won:
		t.Fatalf("b led while a held the lead: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if ok, err := s.Depose(ctx, l); !ok || err != nil {
		t.Fatalf("Depose = %v, %v", ok, err)
	}
	if err := <-won; err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a's candidacy did not end after its lease was revoked")
	}
	const late = 20
	for i := range late {
		if err := commit(sa, "late-"+string(rune('a'+i))); !errors.Is(err, kernel.ErrFenced) {
			t.Fatalf("late commit %d of the deposed leader: %v, want ErrFenced", i, err)
		}
	}
	sb := s.Fenced(b.Key(), b.Rev())
	if err := commit(sb, "b-1"); err != nil {
		t.Fatalf("the new leader's commit: %v", err)
	}
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, al := range st.Allocations {
		ids = append(ids, al.GetId())
	}
	if len(ids) != 2 || !(ids[0] == "a-1" && ids[1] == "b-1" || ids[0] == "b-1" && ids[1] == "a-1") {
		t.Fatalf("allocations in the store: %v, want a-1 and b-1 only (none of the %d late writes)", ids, late)
	}
	// A stale LeaderInfo never deposes the new leader.
	if ok, err := s.Depose(ctx, l); ok || err != nil {
		t.Fatalf("Depose of a stale leader = %v, %v; want false", ok, err)
	}
	if l2, ok, _ := s.Leader(ctx); !ok || l2.URL != "http://b" {
		t.Fatalf("Leader after = %+v, %v; want b", l2, ok)
	}
}
