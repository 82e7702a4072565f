package kernel_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// audited calls k.Allocate as the API layer does for an audited call:
// with an AuditCall in the context, queueing the record itself when the
// loop did not commit one.
func audited(k *kernel.Kernel, p kernel.Principal, req *pb.AllocateRequest) error {
	call := kernel.NewAuditCall(p, "Allocate", req.GetRole())
	_, err := k.Allocate(kernel.WithAudit(context.Background(), call), p, req)
	if call.Settle() {
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		k.Audit(kernel.AuditRecordOf(p, "Allocate", call.Targets, kernel.CodeName(err), msg))
	}
	return err
}

// trail reads the whole trail and checks its chain: seqs 1, 2, … (or from
// the anchor) without gaps, each prev_hash its predecessor's hash, each
// hash its content's.
func trail(t *testing.T, k *kernel.Kernel) ([]*pb.AuditRecord, *pb.AuditAnchor) {
	t.Helper()
	var recs []*pb.AuditRecord
	var anchor *pb.AuditAnchor
	var after uint64
	for {
		res, err := k.AuditList(context.Background(), ops, &pb.AuditListRequest{AfterSeq: after, Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
		if after == 0 {
			anchor = res.GetAnchor()
		}
		recs = append(recs, res.GetRecords()...)
		after = res.GetLastSeq()
		if !res.GetMore() {
			break
		}
	}
	seq, prev := anchor.GetSeq(), anchor.GetHash()
	for _, r := range recs {
		if r.GetSeq() != seq+1 || !bytes.Equal(r.GetPrevHash(), prev) || !bytes.Equal(kernel.AuditHash(r), r.GetHash()) {
			t.Fatalf("chain broken at record %d (after seq %d): %v", r.GetSeq(), seq, r)
		}
		seq, prev = r.GetSeq(), r.GetHash()
	}
	return recs, anchor
}

func codes(recs []*pb.AuditRecord) string {
	var b bytes.Buffer
	for _, r := range recs {
		fmt.Fprintf(&b, "%s:%s ", r.GetCall(), r.GetCode())
	}
	return b.String()
}

// TestKernel_AuditChainAfterFailedCommit: a commit refused (nothing
// written) and a commit whose outcome is unknown (written) leave the
// chain without a gap or a fork, the failed calls are recorded with the
// code their callers got, and a restarted kernel continues the chain.
func TestKernel_AuditChainAfterFailedCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, stop := e.start(t)
	if err := audited(k, fwA, alloc(1, 1<<20)); err != nil {
		t.Fatal(err)
	}
	e.store.fail.Store(true)
	if err := audited(k, fwA, alloc(1, 1<<20)); kernel.CodeOf(err) != kernel.Unavailable {
		t.Fatalf("allocate with a failing commit: %v", err)
	}
	if err := audited(k, fwA, alloc(1, 1<<20)); err != nil {
		t.Fatal(err)
	}
	e.store.unknown.Store(true)
	if err := audited(k, fwA, alloc(1, 1<<20)); kernel.CodeOf(err) != kernel.Unavailable {
		t.Fatalf("allocate with an unknown commit outcome: %v", err)
	}
	if err := audited(k, fwA, &pb.AllocateRequest{}); kernel.CodeOf(err) != kernel.InvalidArgument {
		t.Fatalf("allocate without resources: %v", err)
	}
	// A queued record (a door refusal) whose batch fails is written by
	// a later one.
	e.store.fail.Store(true)
	k.Audit(kernel.AuditRecordOf(kernel.Principal{}, "ListAgents", nil, "unauthenticated", "unknown token"))
	for e.store.fail.Load() {
		time.Sleep(time.Millisecond)
	}
	recs, _ := trail(t, k)
	// The unknown-outcome batch landed: its record says ok, and the
	// caller's Unavailable is recorded too.
	want := "Allocate:ok Allocate:unavailable Allocate:ok Allocate:ok Allocate:unavailable Allocate:invalid_argument ListAgents:unauthenticated "
	if got := codes(recs); got != want {
		t.Fatalf("trail:\n got %s\nwant %s", got, want)
	}
	if recs[0].GetPrincipal() != "fw-a" || recs[0].GetRole() != "framework" || len(recs[0].GetTargets()) != 1 {
		t.Errorf("record 1: %v; want principal fw-a, role framework, the new allocation's id", recs[0])
	}
	stop()
	k, _ = e.start(t)
	if err := audited(k, fwA, alloc(1, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if recs2, _ := trail(t, k); len(recs2) != len(recs)+1 {
		t.Fatalf("after a restart: %d records, want %d", len(recs2), len(recs)+1)
	}
}

// TestKernel_AuditRetention: records older than the retention are
// deleted, and the trail then verifies from the anchor they left.
func TestKernel_AuditRetention(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	k, _ := e.startWith(t, kernel.Config{Clock: clock, AuditRetention: time.Hour, AuditPruneInterval: 20 * time.Millisecond})
	for range 3 {
		if err := audited(k, fwA, alloc(1, 1<<20)); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	if err := audited(k, fwA, alloc(1, 1<<20)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		recs, anchor := trail(t, k)
		if anchor.GetSeq() == 3 && len(recs) == 1 && recs[0].GetSeq() == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("expired records not deleted: anchor %v, %d records", anchor, len(recs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKernel_AuditList_Filters: principal, call and since filters, and
// bad input naming its field.
func TestKernel_AuditList_Filters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, _ := e.start(t)
	audited(k, fwA, alloc(1, 1<<20))
	audited(k, fwB, alloc(1, 1<<20))
	k.Audit(kernel.AuditRecordOf(kernel.Principal{}, "ListAgents", nil, "unauthenticated", "unknown token"))
	res, err := k.AuditList(context.Background(), ops, &pb.AuditListRequest{Principal: "fw-b"})
	if err != nil || len(res.GetRecords()) != 1 || res.GetRecords()[0].GetPrincipal() != "fw-b" {
		t.Errorf("principal fw-b: %v, %v", res, err)
	}
	res, err = k.AuditList(context.Background(), ops, &pb.AuditListRequest{Call: "ListAgents"})
	if err != nil || len(res.GetRecords()) != 1 || res.GetRecords()[0].GetCode() != "unauthenticated" {
		t.Errorf("call ListAgents (queued record): %v, %v", res, err)
	}
	if _, err := k.AuditList(context.Background(), ops, &pb.AuditListRequest{Limit: kernel.AuditListMax + 1}); kernel.CodeOf(err) != kernel.InvalidArgument {
		t.Errorf("limit too large: %v", err)
	}
}

// TestKernel_AuditOff: with NoAudit nothing is recorded.
func TestKernel_AuditOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, _ := e.startWith(t, kernel.Config{NoAudit: true})
	audited(k, fwA, alloc(1, 1<<20))
	if recs, _ := trail(t, k); len(recs) != 0 {
		t.Errorf("NoAudit kernel recorded %d records", len(recs))
	}
}
