package store

import (
	"context"
	"slices"
	"testing"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestEtcd_CoordinationRecords: elections and state keys round-trip, a
// state entry's revision is the commit that last wrote it, and owners with
// "/" cannot collide with keys with "/".
func TestEtcd_CoordinationRecords(t *testing.T) {
	ctx := context.Background()
	s, _ := startStore(t)
	sk := func(owner, key string) kernel.StateKey { return kernel.StateKey{Owner: owner, Key: key} }
	rev1, err := s.Commit(ctx, &kernel.Changes{
		Elections: map[kernel.ElectionKey]*pb.Leadership{{Owner: "fw", Name: "default"}: {Owner: "fw", Election: "default", Holder: "a", Epoch: 3}},
		State: map[kernel.StateKey]*pb.StateEntry{
			sk("team/b", "y"): {Owner: "team/b", Key: "y", Value: []byte("1")},
			sk("team", "b/y"): {Owner: "team", Key: "b/y", Value: []byte("2")},
			sk("fw", "gone"):  {Owner: "fw", Key: "gone", Value: []byte("3")},
		},
		Events: []*pb.Event{{Kind: pb.EventKind_EVENT_KIND_STATE_CHANGED, State: &pb.StateEntry{Owner: "fw", Key: "gone"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rev2, err := s.Commit(ctx, &kernel.Changes{State: map[kernel.StateKey]*pb.StateEntry{
		sk("fw", "gone"):  nil,
		sk("team", "b/y"): {Owner: "team", Key: "b/y", Value: []byte("2'")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Elections) != 1 || st.Elections[0].GetEpoch() != 3 || st.Elections[0].GetHolder() != "a" {
		t.Fatalf("elections %v", st.Elections)
	}
	got := map[string]*pb.StateEntry{}
	for _, e := range st.StateEntries {
		got[e.GetOwner()+" "+e.GetKey()] = e
	}
	if len(got) != 2 || got["team/b y"].GetRevision() != rev1 || string(got["team/b y"].GetValue()) != "1" ||
		got["team b/y"].GetRevision() != rev2 || string(got["team b/y"].GetValue()) != "2'" {
		t.Fatalf("state %v; want team/b's y at %d and team's b/y at %d", st.StateEntries, rev1, rev2)
	}
	// A STATE_CHANGED event reads back with its commit's revision.
	var evs []*pb.Event
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.Events(wctx, rev1-1, func(_ int64, e []*pb.Event) error { evs = append(evs, e...); cancel(); return nil })
	if !slices.ContainsFunc(evs, func(e *pb.Event) bool { return e.GetState().GetRevision() == rev1 }) {
		t.Fatalf("events %v; want STATE_CHANGED at revision %d", evs, rev1)
	}
}
