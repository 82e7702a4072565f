package store

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

func startStore(t *testing.T) (*Etcd, *Embedded) {
	t.Helper()
	e, err := StartEmbedded(EmbeddedConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return New(e.Client(), ""), e
}

func TestEtcd_CommitLoadEvents(t *testing.T) {
	ctx := context.Background()
	s, _ := startStore(t)
	c := &kernel.Changes{
		Agents:      map[string]*pb.Agent{"agent-1": {Id: "agent-1", Hostname: "h"}},
		Allocations: map[string]*pb.Allocation{"a-2": {Id: "a-2", Owner: "fw"}},
		Tasks:       map[string]*pb.Task{"t-3": {Id: "t-3", Command: "sleep"}},
		Volumes:     map[string]*pb.Volume{"data": {Name: "data", Role: "db", AgentId: "agent-1", SizeBytes: 1 << 20}},
		Events:      []*pb.Event{{Kind: pb.EventKind_EVENT_KIND_AGENT_REGISTERED}, {Kind: pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED}},
		Seq:         3,

		DestroyedVolumes: map[string]*pb.Volume{"old": {Name: "old", AgentId: "agent-1"}, "older": {Name: "older"}},
	}
	rev1, err := s.Commit(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	// Delete the task, add an event.
	rev2, err := s.Commit(ctx, &kernel.Changes{Tasks: map[string]*pb.Task{"t-3": nil}, DestroyedVolumes: map[string]*pb.Volume{"older": nil},
		Events: []*pb.Event{{Kind: pb.EventKind_EVENT_KIND_TASK_STATE, Reason: "gone"}}})
	if err != nil || rev2 <= rev1 {
		t.Fatalf("second commit rev %d (first %d), err %v", rev2, rev1, err)
	}
	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Agents) != 1 || len(st.Allocations) != 1 || len(st.Tasks) != 0 || st.Seq != 3 || st.Revision != rev2 {
		t.Fatalf("loaded %d agents %d allocs %d tasks seq %d rev %d", len(st.Agents), len(st.Allocations), len(st.Tasks), st.Seq, st.Revision)
	}
	if len(st.Volumes) != 1 || st.Volumes[0].GetRole() != "db" || len(st.DestroyedVolumes) != 1 || st.DestroyedVolumes[0].GetName() != "old" {
		t.Errorf("loaded volumes %v, tombstones %v; want data and old", st.Volumes, st.DestroyedVolumes)
	}

	// Events after rev1-1 replays both revisions, in order, with revisions set.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var got []*pb.Event
	err = s.Events(wctx, rev1-1, func(rev int64, evs []*pb.Event) error {
		got = append(got, evs...)
		if rev == rev2 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Events: %v", err)
	}
	if len(got) != 3 || got[0].Revision != rev1 || got[1].Revision != rev1 || got[2].Revision != rev2 || got[2].Reason != "gone" {
		t.Fatalf("events %v", got)
	}
}

var errStop = errors.New("stop")

func TestEtcd_EventsCompacted(t *testing.T) {
	ctx := context.Background()
	s, _ := startStore(t)
	var rev int64
	for i := 0; i < 3; i++ {
		var err error
		rev, err = s.Commit(ctx, &kernel.Changes{Events: []*pb.Event{{Kind: pb.EventKind_EVENT_KIND_TASK_STATE}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := s.Events(wctx, 1, func(int64, []*pb.Event) error { return nil })
	var re *kernel.ResyncError
	if !errors.As(err, &re) || re.Compacted != rev {
		t.Fatalf("Events from a compacted revision: %v, want ResyncError at %d", err, rev)
	}
}

func TestEmbedded_CloseTwice(t *testing.T) {
	_, e := startStore(t)
	e.Close()
	e.Close()
}

func TestEtcd_BlobsAndPolicyState(t *testing.T) {
	ctx := context.Background()
	s, _ := startStore(t)
	blob := make([]byte, 2*blobChunk+123) // three chunks
	for i := range blob {
		blob[i] = byte(i * 7)
	}
	sha := hexDigest(blob)
	if err := s.PutBlob(ctx, sha, blob); err != nil {
		t.Fatal(err)
	}
	if err := s.PutBlob(ctx, sha, blob); err != nil { // idempotent
		t.Fatal(err)
	}
	if err := s.PutBlob(ctx, hexDigest([]byte("x")), blob); err == nil {
		t.Fatal("PutBlob accepted content that does not match its hash")
	}
	got, err := s.GetBlob(ctx, sha)
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("GetBlob: %d bytes, %v", len(got), err)
	}
	if _, err := s.GetBlob(ctx, hexDigest([]byte("missing"))); err == nil {
		t.Fatal("GetBlob of a missing blob succeeded")
	}
	st := &kernel.PolicyState{Active: "mine", Previous: []string{"drf"}, Modules: map[string]kernel.ModuleRef{"mine": {SHA256: sha, Size: int64(len(blob))}}}
	if _, err := s.Commit(ctx, &kernel.Changes{Policies: st}); err != nil {
		t.Fatal(err)
	}
	loaded, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Policies.Active != "mine" || loaded.Policies.Modules["mine"].SHA256 != sha || len(loaded.Policies.Previous) != 1 {
		t.Fatalf("policy state %+v", loaded.Policies)
	}
}
