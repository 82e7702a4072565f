package kernel

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestTable_StatePutSameBatch(t *testing.T) {
	tb, now := NewTable(), time.Unix(0, 0)
	c := newChanges()
	zero := int64(0)
	if err := tb.StatePut("fw", &pb.StatePutRequest{Key: "k", Value: []byte("1"), ExpectedRevision: &zero}, now, c); err != nil {
		t.Fatal(err)
	}
	// The second write of the batch sees the first as a change.
	err := tb.StatePut("fw", &pb.StatePutRequest{Key: "k", Value: []byte("2"), ExpectedRevision: &zero}, now, c)
	if CodeOf(err) != Aborted || !strings.Contains(err.Error(), "committing now") {
		t.Fatalf("second create in one batch: %v", err)
	}
	if err := tb.StatePut("fw", &pb.StatePutRequest{Key: "k", Value: []byte("3")}, now, c); err != nil {
		t.Fatal(err)
	}
	tb.Committed(c, 42)
	if e := tb.StateGet("fw", "k"); e.GetRevision() != 42 || string(e.GetValue()) != "3" {
		t.Fatalf("after the commit: %v", e)
	}
	if n := len(c.State); n != 1 {
		t.Fatalf("%d state writes in the batch, want 1 (the last)", n)
	}
}

func TestTable_StateBatchBytes(t *testing.T) {
	tb, c, now := NewTable(), newChanges(), time.Unix(0, 0)
	v := make([]byte, MaxStateValue)
	for i := range MaxBatchStateBytes / MaxStateValue {
		if err := tb.StatePut("fw", &pb.StatePutRequest{Key: strconv.Itoa(i), Value: v}, now, c); err != nil {
			t.Fatal(err)
		}
	}
	err := tb.StatePut("other", &pb.StatePutRequest{Key: "k", Value: []byte("1")}, now, c)
	if CodeOf(err) != Unavailable || !strings.Contains(err.Error(), "retry") {
		t.Fatalf("past the batch's bytes: %v", err)
	}
	if err := tb.StatePut("other", &pb.StatePutRequest{Key: "k", Value: []byte("1")}, now, newChanges()); err != nil {
		t.Fatalf("in the next batch: %v", err)
	}
}

func TestTable_CoordLimits(t *testing.T) {
	now := time.Unix(0, 0)
	t.Run("keys", func(t *testing.T) {
		tb, c := NewTable(), newChanges()
		for i := range MaxStateKeys {
			if err := tb.StatePut("fw", &pb.StatePutRequest{Key: strconv.Itoa(i)}, now, c); err != nil {
				t.Fatal(err)
			}
		}
		err := tb.StatePut("fw", &pb.StatePutRequest{Key: "one-more"}, now, c)
		if CodeOf(err) != ResourceExhausted || !strings.Contains(err.Error(), `principal "fw" holds 10000 state keys, the limit is 10000`) {
			t.Fatalf("key 10001: %v", err)
		}
		if err := tb.StatePut("fw", &pb.StatePutRequest{Key: "0", Value: []byte("rewrite")}, now, c); err != nil {
			t.Fatalf("rewriting a key at the limit: %v", err)
		}
		if err := tb.StatePut("other", &pb.StatePutRequest{Key: "0"}, now, c); err != nil {
			t.Fatalf("another principal: %v", err)
		}
		if n, _ := tb.StateUsage("fw"); n != MaxStateKeys {
			t.Fatalf("%d keys", n)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		tb, c := NewTable(), newChanges()
		v := make([]byte, MaxStateValue)
		for i := range MaxStateBytes / MaxStateValue {
			if i%(MaxBatchStateBytes/MaxStateValue) == 0 {
				c = newChanges() // a batch carries at most MaxBatchStateBytes
			}
			if err := tb.StatePut("fw", &pb.StatePutRequest{Key: strconv.Itoa(i), Value: v}, now, c); err != nil {
				t.Fatal(err)
			}
		}
		c = newChanges()
		err := tb.StatePut("fw", &pb.StatePutRequest{Key: "x", Value: []byte("1")}, now, c)
		if CodeOf(err) != ResourceExhausted || !strings.Contains(err.Error(), "the limit is 33554432") {
			t.Fatalf("past the bytes: %v", err)
		}
		if err := tb.StateDelete("fw", &pb.StateDeleteRequest{Key: "0"}, now, c); err != nil {
			t.Fatal(err)
		}
		if err := tb.StatePut("fw", &pb.StatePutRequest{Key: "x", Value: []byte("1")}, now, c); err != nil {
			t.Fatalf("after a delete freed room: %v", err)
		}
		if _, b := tb.StateUsage("fw"); b != MaxStateBytes-MaxStateValue+1 {
			t.Fatalf("%d bytes", b)
		}
	})
	t.Run("elections", func(t *testing.T) {
		tb, c := NewTable(), newChanges()
		for i := range MaxElections {
			if _, _, err := tb.Campaign("fw", "e"+strconv.Itoa(i), "a", "", time.Second, now, c); err != nil {
				t.Fatal(err)
			}
		}
		_, _, err := tb.Campaign("fw", "one-more", "a", "", time.Second, now, c)
		if CodeOf(err) != ResourceExhausted || !strings.Contains(err.Error(), "the limit is 64") {
			t.Fatalf("election 65: %v", err)
		}
		if _, ok, err := tb.Campaign("fw", "e0", "a", "", time.Second, now, c); err != nil || !ok {
			t.Fatalf("renewal at the limit: %v %v", ok, err)
		}
	})
}

// FuzzValidateCoord feeds arbitrary coordination requests to their
// validation. It must never panic, and what it accepts must be within
// the documented limits.
func FuzzValidateCoord(f *testing.F) {
	f.Add("specs/web", 10, int64(0), true, "", int64(1), "default", "replica-1:8080", int64(10))
	f.Add("a b", 0, int64(-1), false, "X", int64(0), "", "", int64(0))
	f.Add(strings.Repeat("k", 257), MaxStateValue+1, int64(5), true, "-e", int64(-3), "E", strings.Repeat("c", 129), int64(3600))
	f.Fuzz(func(t *testing.T, key string, size int, exp int64, hasExp bool, election string, epoch int64, name, candidate string, ttlSec int64) {
		size = min(max(size, 0), MaxStateValue+2)
		var e *int64
		if hasExp {
			e = &exp
		}
		var fence *pb.Fence
		if epoch != 0 || election != "" {
			fence = &pb.Fence{Election: election, Epoch: epoch}
		}
		put := &pb.StatePutRequest{Key: key, Value: make([]byte, size), ExpectedRevision: e, Fence: fence}
		if err := ValidateStatePut(put); err == nil {
			if len(key) == 0 || len(key) > MaxStateKeyLen || strings.ContainsAny(key, " \x00\x7f") || size > MaxStateValue || (e != nil && *e < 0) {
				t.Fatalf("accepted %q (%d bytes, expected %v)", key, size, e)
			}
			if fence != nil && fence.GetEpoch() < 1 {
				t.Fatalf("accepted fence %v", fence)
			}
		} else if CodeOf(err) != InvalidArgument {
			t.Fatalf("code %v: %v", CodeOf(err), err)
		}
		if err := ValidateStateDelete(&pb.StateDeleteRequest{Key: key, ExpectedRevision: e, Fence: fence}); err != nil && CodeOf(err) != InvalidArgument {
			t.Fatalf("code %v: %v", CodeOf(err), err)
		}
		cr := &pb.CampaignRequest{Election: name, Candidate: candidate}
		if ttlSec != 0 {
			cr.Ttl = durationFromSeconds(ttlSec)
		}
		n, ttl, err := ValidateCampaign(cr)
		if err == nil {
			if len(n) > MaxElectionName || len(candidate) == 0 || len(candidate) > MaxCandidateLen || ttl < MinElectionTTL || ttl > MaxElectionTTL {
				t.Fatalf("accepted %q %q %v", n, candidate, ttl)
			}
			if name == "" && n != DefaultElection {
				t.Fatalf("empty name is %q", n)
			}
		}
	})
}

func durationFromSeconds(s int64) *durationpb.Duration { return &durationpb.Duration{Seconds: s} }
