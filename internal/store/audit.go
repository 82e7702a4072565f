package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// The audit trail's keys: <prefix>audit/<seq as %020d> holds the records
// one batch wrote, the first of which has that seq, as length-delimited
// pb.AuditRecord messages (one key per transaction, not per record: a
// key costs etcd a revision and an index entry, and per-record keys
// doubled the cost of a StatePut; docs/benchmarks.md). <prefix>audit/anchor
// holds the pb.AuditAnchor retention left (the last record it deleted);
// "anchor" sorts after every seq key.

var _ kernel.AuditStore = (*Etcd)(nil)

func (s *Etcd) auditPrefix() string { return s.prefix + "audit/" }

func (s *Etcd) auditKey(seq uint64) string { return fmt.Sprintf("%s%020d", s.auditPrefix(), seq) }

func (s *Etcd) auditAnchorKey() string { return s.auditPrefix() + "anchor" }

// auditRecordsEnd is the end of the range of the seq keys.
func (s *Etcd) auditRecordsEnd() string { return s.auditPrefix() + ":" } // ':' follows '9'

// auditOps returns the operations that write c's audit records and
// retention deletions, for Commit's transaction.
func (s *Etcd) auditOps(c *kernel.Changes) ([]clientv3.Op, error) {
	var ops []clientv3.Op
	if p := c.AuditPrune; p != nil {
		ops = append(ops, clientv3.OpDelete(s.auditPrefix()+"0", clientv3.WithRange(s.auditKey(p.Through+1))))
		b, err := proto.Marshal(&pb.AuditAnchor{Seq: p.Through, Hash: p.Hash})
		if err != nil {
			return nil, err
		}
		ops = append(ops, clientv3.OpPut(s.auditAnchorKey(), string(b)))
	}
	if len(c.Audit) > 0 {
		// Hand-encoded (kernel.AppendAuditRecord): proto.Clone and
		// proto.Marshal per record were the trail's largest cost on the
		// kernel's serial path.
		buf := make([]byte, 0, 32*len(c.Audit))
		var rec []byte
		for i, r := range c.Audit {
			var omit kernel.AuditOmit
			if i > 0 {
				omit = compactOmit(c.Audit[i-1], r)
			}
			if i < len(c.Audit)-1 {
				omit |= kernel.TagHash // the batch's last keeps its whole hash
			}
			rec = kernel.AppendAuditRecord(rec[:0], r, omit)
			buf = protowire.AppendBytes(buf, rec) // length-delimited, as protodelim
		}
		ops = append(ops, clientv3.OpPut(s.auditKey(c.Audit[0].GetSeq()), string(buf)))
	}
	return ops, nil
}

// decodeAudit decodes one batch key's records. What does not decode is
// answered as a record with code "corrupt" and the seq that follows the
// last one decoded (the key's for the first), so that verification names
// it rather than skipping it.
func (s *Etcd) decodeAudit(kv *mvccpb.KeyValue) []*pb.AuditRecord {
	first, _ := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), s.auditPrefix()), 10, 64)
	var recs []*pb.AuditRecord
	rd := bytes.NewReader(kv.Value)
	for rd.Len() > 0 {
		r := &pb.AuditRecord{}
		if err := (protodelim.UnmarshalOptions{MaxSize: -1}).UnmarshalFrom(rd, r); err != nil {
			seq := first
			if n := len(recs); n > 0 {
				seq = recs[n-1].GetSeq() + 1
			}
			return append(recs, &pb.AuditRecord{Seq: seq, Code: "corrupt", Message: "stored record does not decode: " + err.Error()})
		}
		if n := len(recs); n > 0 {
			expandAudit(recs[n-1], r)
		}
		untagAudit(r)
		recs = append(recs, r)
	}
	return recs
}

// compactOmit says what of r is left out when it is stored after prev in
// one batch key: what follows from prev — its seq (prev's + 1) and its
// prev_hash (prev's hash) — and what it shares with prev: kernel, time,
// principal, role, call and code (the records of one batch share the
// batch's time and, often, their caller). That is most of a record's
// bytes, which every audited call adds to its transaction
// (docs/benchmarks.md, "Audit trail"). The hash is over the whole record
// (expandAudit restores it), so an edit of the stored bytes still shows.
// A record that does not follow prev, or that has an empty field prev
// has set (empty means "prev's" in a compact record), is stored whole.
func compactOmit(prev, r *pb.AuditRecord) kernel.AuditOmit {
	if r.GetSeq() != prev.GetSeq()+1 || !bytes.Equal(r.GetPrevHash(), prev.GetHash()) || (r.GetTime() == nil && prev.GetTime() != nil) {
		return 0
	}
	omit := kernel.OmitSeq | kernel.OmitPrevHash
	for _, f := range [...]struct {
		mine, theirs string
		flag         kernel.AuditOmit
	}{
		{r.GetKernel(), prev.GetKernel(), kernel.OmitKernel},
		{r.GetPrincipal(), prev.GetPrincipal(), kernel.OmitPrincipal},
		{r.GetRole(), prev.GetRole(), kernel.OmitRole},
		{r.GetCall(), prev.GetCall(), kernel.OmitCall},
		{r.GetCode(), prev.GetCode(), kernel.OmitCode},
	} {
		switch {
		case f.mine == f.theirs:
			omit |= f.flag
		case f.mine == "":
			return 0 // could not be told from "prev's"
		}
	}
	if t, pt := r.GetTime(), prev.GetTime(); t != nil && pt != nil && t.GetSeconds() == pt.GetSeconds() && t.GetNanos() == pt.GetNanos() &&
		len(t.ProtoReflect().GetUnknown()) == 0 && len(pt.ProtoReflect().GetUnknown()) == 0 {
		omit |= kernel.OmitTime
	}
	return omit
}

// expandAudit fills in what compactOmit left out of r, stored after prev
// (a record stored whole keeps its seq, never 0, and is left as it is).
func expandAudit(prev, r *pb.AuditRecord) {
	if r.GetSeq() != 0 {
		return
	}
	r.Seq, r.PrevHash = prev.GetSeq()+1, prev.GetHash()
	if r.Kernel == "" {
		r.Kernel = prev.GetKernel()
	}
	if r.Time == nil {
		r.Time = prev.GetTime()
	}
	if r.Principal == "" {
		r.Principal = prev.GetPrincipal()
	}
	if r.Role == "" {
		r.Role = prev.GetRole()
	}
	if r.Call == "" {
		r.Call = prev.GetCall()
	}
	if r.Code == "" {
		r.Code = prev.GetCode()
	}
}

// untagAudit gives r, whole or expanded, its whole hash when it was stored
// as a tag (kernel.TagHash) and the tag is the recomputed hash's start;
// otherwise r keeps the tag, which verification names as altered.
func untagAudit(r *pb.AuditRecord) {
	if n := len(r.Hash); n == 0 || n >= sha256.Size {
		return
	}
	if full := kernel.AuditHash(r); bytes.HasPrefix(full, r.Hash) {
		r.Hash = full
	}
}

// AuditHead implements kernel.AuditStore.
func (s *Etcd) AuditHead(ctx context.Context) (uint64, []byte, error) {
	resp, err := s.cli.Get(ctx, s.auditPrefix()+"0", clientv3.WithRange(s.auditRecordsEnd()),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(1))
	if err != nil {
		return 0, nil, fmt.Errorf("store audit head: %w", err)
	}
	if len(resp.Kvs) == 1 {
		recs := s.decodeAudit(resp.Kvs[0])
		last := recs[len(recs)-1]
		if last.GetCode() == "corrupt" && len(last.GetHash()) == 0 {
			return 0, nil, fmt.Errorf("store audit head %s: %s", resp.Kvs[0].Key, last.GetMessage())
		}
		return last.GetSeq(), last.GetHash(), nil
	}
	a, err := s.auditAnchor(ctx, resp.Header.Revision)
	if err != nil || a == nil {
		return 0, nil, err
	}
	return a.GetSeq(), a.GetHash(), nil
}

func (s *Etcd) auditAnchor(ctx context.Context, rev int64) (*pb.AuditAnchor, error) {
	resp, err := s.cli.Get(ctx, s.auditAnchorKey(), clientv3.WithRev(rev))
	if err != nil {
		return nil, fmt.Errorf("store audit anchor: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	a := &pb.AuditAnchor{}
	if err := proto.Unmarshal(resp.Kvs[0].Value, a); err != nil {
		return nil, fmt.Errorf("store audit anchor: %w", err)
	}
	return a, nil
}

// auditKeysPerRead bounds the batch keys one read of AuditRange takes.
const auditKeysPerRead = 32

// AuditRange implements kernel.AuditStore. Reads are at one revision.
func (s *Etcd) AuditRange(ctx context.Context, after uint64, n int) ([]*pb.AuditRecord, *pb.AuditAnchor, error) {
	// The batch that holds after+1 starts at the last key <= it.
	resp, err := s.cli.Get(ctx, s.auditPrefix()+"0", clientv3.WithRange(s.auditKey(after+2)),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(1), clientv3.WithKeysOnly())
	if err != nil {
		return nil, nil, fmt.Errorf("store audit range: %w", err)
	}
	rev := resp.Header.Revision
	from := s.auditKey(after + 1)
	if len(resp.Kvs) == 1 {
		from = string(resp.Kvs[0].Key)
	}
	var recs []*pb.AuditRecord
	for len(recs) < n {
		page, err := s.cli.Get(ctx, from, clientv3.WithRange(s.auditRecordsEnd()), clientv3.WithLimit(auditKeysPerRead), clientv3.WithRev(rev))
		if err != nil {
			return nil, nil, fmt.Errorf("store audit range: %w", err)
		}
		for _, kv := range page.Kvs {
			for _, r := range s.decodeAudit(kv) {
				if r.GetSeq() > after && len(recs) < n {
					recs = append(recs, r)
				}
			}
		}
		if !page.More || len(page.Kvs) == 0 {
			break
		}
		from = string(page.Kvs[len(page.Kvs)-1].Key) + "\x00"
	}
	a, err := s.auditAnchor(ctx, rev)
	if err != nil {
		return nil, nil, err
	}
	return recs, a, nil
}

// AuditExpired implements kernel.AuditStore: whole batches only, the
// first of which may take it past n.
func (s *Etcd) AuditExpired(ctx context.Context, before time.Time, n int) (*pb.AuditRecord, error) {
	resp, err := s.cli.Get(ctx, s.auditPrefix()+"0", clientv3.WithRange(s.auditRecordsEnd()), clientv3.WithLimit(int64(n)))
	if err != nil {
		return nil, fmt.Errorf("store audit expired: %w", err)
	}
	var last *pb.AuditRecord
	count := 0
	for _, kv := range resp.Kvs {
		recs := s.decodeAudit(kv)
		end := recs[len(recs)-1]
		if end.GetCode() == "corrupt" && len(end.GetHash()) == 0 {
			return last, nil // verification reports it; retention stops before it
		}
		if !end.GetTime().AsTime().Before(before) || (last != nil && count+len(recs) > n) {
			break
		}
		last, count = end, count+len(recs)
	}
	return last, nil
}
