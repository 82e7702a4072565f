package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// The audit trail's keys: <prefix>audit/<seq as %020d> holds one
// pb.AuditRecord, and <prefix>audit/anchor the pb.AuditAnchor retention
// left (the last record it deleted). "anchor" sorts after every seq key.

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
	for _, r := range c.Audit {
		b, err := proto.Marshal(r)
		if err != nil {
			return nil, err
		}
		ops = append(ops, clientv3.OpPut(s.auditKey(r.GetSeq()), string(b)))
	}
	return ops, nil
}

// AuditHead implements kernel.AuditStore.
func (s *Etcd) AuditHead(ctx context.Context) (uint64, []byte, error) {
	resp, err := s.cli.Get(ctx, s.auditPrefix()+"0", clientv3.WithRange(s.auditRecordsEnd()),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(1))
	if err != nil {
		return 0, nil, fmt.Errorf("store audit head: %w", err)
	}
	if len(resp.Kvs) == 1 {
		r := &pb.AuditRecord{}
		if err := proto.Unmarshal(resp.Kvs[0].Value, r); err != nil {
			return 0, nil, fmt.Errorf("store audit head %s: %w", resp.Kvs[0].Key, err)
		}
		return r.GetSeq(), r.GetHash(), nil
	}
	a, err := s.auditAnchor(ctx, resp.Header.Revision)
	if err != nil || a == nil {
		return 0, nil, err
	}
	return a.GetSeq(), a.GetHash(), nil
}

func (s *Etcd) auditAnchor(ctx context.Context, rev int64) (*pb.AuditAnchor, error) {
	opts := []clientv3.OpOption{}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	resp, err := s.cli.Get(ctx, s.auditAnchorKey(), opts...)
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

// AuditRange implements kernel.AuditStore. A stored value that does not
// decode is answered as a record with only its seq (from its key) and
// code "corrupt", so that verification names it.
func (s *Etcd) AuditRange(ctx context.Context, after uint64, n int) ([]*pb.AuditRecord, *pb.AuditAnchor, error) {
	resp, err := s.cli.Get(ctx, s.auditKey(after+1), clientv3.WithRange(s.auditRecordsEnd()), clientv3.WithLimit(int64(n)))
	if err != nil {
		return nil, nil, fmt.Errorf("store audit range: %w", err)
	}
	recs := make([]*pb.AuditRecord, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		r := &pb.AuditRecord{}
		if err := proto.Unmarshal(kv.Value, r); err != nil {
			seq, _ := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), s.auditPrefix()), 10, 64)
			r = &pb.AuditRecord{Seq: seq, Code: "corrupt", Message: "stored record does not decode: " + err.Error()}
		}
		recs = append(recs, r)
	}
	a, err := s.auditAnchor(ctx, resp.Header.Revision)
	if err != nil {
		return nil, nil, err
	}
	return recs, a, nil
}

// AuditExpired implements kernel.AuditStore.
func (s *Etcd) AuditExpired(ctx context.Context, before time.Time, n int) (*pb.AuditRecord, error) {
	resp, err := s.cli.Get(ctx, s.auditPrefix()+"0", clientv3.WithRange(s.auditRecordsEnd()), clientv3.WithLimit(int64(n)))
	if err != nil {
		return nil, fmt.Errorf("store audit expired: %w", err)
	}
	var last *pb.AuditRecord
	for _, kv := range resp.Kvs {
		r := &pb.AuditRecord{}
		if err := proto.Unmarshal(kv.Value, r); err != nil {
			return last, nil // verification reports it; retention stops before it
		}
		if !r.GetTime().AsTime().Before(before) {
			break
		}
		last = r
	}
	return last, nil
}
