package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Etcd is a kernel.Store on an etcd client. It is safe for concurrent use.
type Etcd struct {
	cli    *clientv3.Client
	prefix string
	gate   func() error
	calls  atomic.Uint64 // Events calls, for their watch stream keys
	// fenceKey and fenceRev, when set, fence every Commit (Fenced).
	fenceKey string
	fenceRev int64
	// warm, when set, serves Load (WithFollower).
	warm *Follower
	// route, when set, sends commits to the etcd leader (route.go).
	route *LeaderRoute
	// sealer, when set, seals secret state values (secret.go).
	sealer kernel.Sealer
}

var (
	_ kernel.Store     = (*Etcd)(nil)
	_ kernel.WriteGate = (*Etcd)(nil)
	_ kernel.EventHead = (*Etcd)(nil)
)

// New returns a store on cli under prefix ("" means "/dcos/"). The caller
// owns cli.
func New(cli *clientv3.Client, prefix string) *Etcd {
	if prefix == "" {
		prefix = "/dcos/"
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &Etcd{cli: cli, prefix: prefix}
}

// WithGate makes Writable, Commit and PutBlob ask gate first (e.g.
// Embedded.Writable) and refuse with its error. It returns s; call it
// before s is shared.
func (s *Etcd) WithGate(gate func() error) *Etcd {
	s.gate = gate
	return s
}

// Fenced returns a store like s (same client, prefix, gate and follower) whose
// every Commit is conditional on the etcd key key still existing with
// create revision rev — a kernel's election key, held while it leads
// (Candidacy.Key and Rev; docs/operations.md). Once another kernel has
// taken the lead the key is gone (its lease ended), and a Commit writes
// nothing and fails with an error matching kernel.ErrFenced.
func (s *Etcd) Fenced(key string, rev int64) *Etcd {
	return &Etcd{cli: s.cli, prefix: s.prefix, gate: s.gate, warm: s.warm, fenceKey: key, fenceRev: rev, route: s.route, sealer: s.sealer}
}

// Writable reports whether a write may be tried now (see WithGate); nil
// without a gate.
func (s *Etcd) Writable() error {
	if s.gate == nil {
		return nil
	}
	return s.gate()
}

func (s *Etcd) key(kind, id string) string { return s.prefix + kind + "/" + id }

func (s *Etcd) eventsKey() string { return s.prefix + "events" }

// electionKey and stateKey are where an election and a framework state key
// live: <prefix>elections/<owner>/<name> and <prefix>state/<owner>/<key>,
// the owner path-escaped (principal names may hold "/"; keys may too, and
// come last). The values carry owner and name or key: Load reads them
// from the values, never from the keys.
func (s *Etcd) electionKey(k kernel.ElectionKey) string {
	return s.prefix + "elections/" + url.PathEscape(k.Owner) + "/" + k.Name
}

func (s *Etcd) stateKey(k kernel.StateKey) string {
	return s.prefix + "state/" + url.PathEscape(k.Owner) + "/" + k.Key
}

// roleKey is where RoleSet's settings of a role live:
// <prefix>roles/<name>, the name path-escaped (role names may hold "/");
// Load reads the name from the value.
func (s *Etcd) roleKey(name string) string { return s.prefix + "roles/" + url.PathEscape(name) }

// Load reads every agent, allocation, task, volume, election and
// framework state key, at one revision. A state entry's revision is its
// key's ModRevision: the revision of the commit that last wrote it.
//
// On a store with a Follower (WithFollower), Load returns the follower's
// state once it has applied the store's current revision, waiting at most
// warmWait; on any error of the follower it reads the whole state from
// etcd as without one.
func (s *Etcd) Load(ctx context.Context) (*kernel.State, error) {
	if s.warm != nil {
		wctx, cancel := context.WithTimeout(ctx, warmWait)
		st, err := s.warm.State(wctx)
		cancel()
		switch {
		case err == nil:
			return st, nil
		case ctx.Err() != nil:
			return nil, fmt.Errorf("store load: %w", ctx.Err())
		case !s.warm.stopped(): // a leader's reload after its follower stopped: expected
			s.warm.log.Info("warm state unavailable; reading the whole state from etcd", "err", err)
		}
	}
	kvs, rev, err := s.rangeState(ctx)
	if err != nil {
		return nil, fmt.Errorf("store load: %w", err)
	}
	st := &kernel.State{Revision: rev}
	for _, kv := range kvs {
		r, err := s.decodeKV(kv.Key, kv.Value, kv.ModRevision)
		if err != nil {
			return nil, fmt.Errorf("store load %s: %w", kv.Key, err)
		}
		r.addTo(st)
	}
	return st, nil
}

// rangeState reads every key under the prefix but the policy blobs and
// the audit trail, at one revision, in key order, and returns them with
// that revision.
func (s *Etcd) rangeState(ctx context.Context) ([]*mvccpb.KeyValue, int64, error) {
	// Blobs are large and read on demand: keys only for them would still
	// transfer the values, so skip their range. The audit trail is read
	// by AuditList only.
	resp, err := s.cli.Get(ctx, s.prefix, clientv3.WithRange(s.auditPrefix()))
	if err != nil {
		return nil, 0, err
	}
	mid, err := s.cli.Get(ctx, s.prefix+"audit0", clientv3.WithRange(s.prefix+"policies/blobs/"), clientv3.WithRev(resp.Header.Revision))
	if err != nil {
		return nil, 0, err
	}
	resp.Kvs = append(resp.Kvs, mid.Kvs...)
	tail, err := s.cli.Get(ctx, s.prefix+"policies/blobs0", clientv3.WithRange(clientv3.GetPrefixRangeEnd(s.prefix)), clientv3.WithRev(resp.Header.Revision))
	if err != nil {
		return nil, 0, err
	}
	return append(resp.Kvs, tail.Kvs...), resp.Header.Revision, nil
}

// field is which part of a kernel.State a key decodes into.
type field uint8

const (
	fieldNone field = iota // not part of the state: events, blobs, the election, …
	fieldAgents
	fieldAllocations
	fieldTasks
	fieldVolumes
	fieldDestroyedVolumes
	fieldElections
	fieldStateEntries
	fieldRoles
	fieldSeq
	fieldPolicies
)

// record is one decoded key of the durable state.
type record struct {
	field    field
	msg      proto.Message // the object, for the fields of messages
	seq      uint64        // fieldSeq
	policies kernel.PolicyState
}

// decodeKV decodes the key key, holding value and last written at
// modRev, into what Load puts in a kernel.State: the one decoder of the
// store's keys (Load and Follower share it). Keys that are not part of
// the state decode to a record of fieldNone.
func (s *Etcd) decodeKV(key, value []byte, modRev int64) (record, error) {
	rest := strings.TrimPrefix(string(key), s.prefix)
	kind, _, _ := strings.Cut(rest, "/")
	var r record
	var err error
	unmarshal := func(f field, m proto.Message) {
		r.field, r.msg = f, m
		err = proto.Unmarshal(value, m)
	}
	switch kind {
	case "agents":
		unmarshal(fieldAgents, &pb.Agent{})
	case "allocations":
		unmarshal(fieldAllocations, &pb.Allocation{})
	case "tasks":
		unmarshal(fieldTasks, &pb.Task{})
	case "volumes":
		unmarshal(fieldVolumes, &pb.Volume{})
	case "destroyed-volumes":
		unmarshal(fieldDestroyedVolumes, &pb.Volume{})
	case "elections":
		unmarshal(fieldElections, &pb.Leadership{})
	case "state":
		m := &pb.StateEntry{}
		unmarshal(fieldStateEntries, m)
		m.Revision = modRev
		if err == nil {
			err = s.openState(key, m) // secret.go
		}
	case "roles":
		unmarshal(fieldRoles, &pb.Role{})
	case "meta":
		if rest == "meta/seq" {
			r.field = fieldSeq
			r.seq, err = strconv.ParseUint(string(value), 10, 64)
		}
	case "policies":
		if rest == "policies/state" {
			r.field = fieldPolicies
			err = json.Unmarshal(value, &r.policies)
		}
	}
	return r, err
}

// addTo puts r in st, appending an object to its list; st then owns r's
// object.
func (r record) addTo(st *kernel.State) {
	switch r.field {
	case fieldAgents:
		st.Agents = append(st.Agents, r.msg.(*pb.Agent))
	case fieldAllocations:
		st.Allocations = append(st.Allocations, r.msg.(*pb.Allocation))
	case fieldTasks:
		st.Tasks = append(st.Tasks, r.msg.(*pb.Task))
	case fieldVolumes:
		st.Volumes = append(st.Volumes, r.msg.(*pb.Volume))
	case fieldDestroyedVolumes:
		st.DestroyedVolumes = append(st.DestroyedVolumes, r.msg.(*pb.Volume))
	case fieldElections:
		st.Elections = append(st.Elections, r.msg.(*pb.Leadership))
	case fieldStateEntries:
		st.StateEntries = append(st.StateEntries, r.msg.(*pb.StateEntry))
	case fieldRoles:
		st.Roles = append(st.Roles, r.msg.(*pb.Role))
	case fieldSeq:
		st.Seq = r.seq
	case fieldPolicies:
		st.Policies = r.policies
	}
}

// CommitTimeout bounds one Commit: etcd without quorum does not answer,
// and the kernel must fail the calls of the batch (Unavailable) rather
// than hold them all.
const CommitTimeout = 5 * time.Second

// Commit writes c in one etcd transaction. A refusal of the gate is
// returned as is (a *SpaceError), before anything is written.
func (s *Etcd) Commit(ctx context.Context, c *kernel.Changes) (int64, error) {
	if err := s.Writable(); err != nil {
		return 0, err
	}
	ops := make([]clientv3.Op, 0, len(c.Agents)+len(c.Allocations)+len(c.Tasks)+2)
	var err error
	ops, err = appendOps(ops, s, "agents", c.Agents)
	if err == nil {
		ops, err = appendOps(ops, s, "allocations", c.Allocations)
	}
	if err == nil {
		ops, err = appendOps(ops, s, "tasks", c.Tasks)
	}
	if err == nil {
		ops, err = appendOps(ops, s, "volumes", c.Volumes)
	}
	if err == nil {
		ops, err = appendOps(ops, s, "destroyed-volumes", c.DestroyedVolumes)
	}
	if err == nil {
		ops, err = appendKeyedOps(ops, c.Elections, s.electionKey)
	}
	if err == nil {
		ops, err = s.appendStateOps(ops, c.State) // secret.go
	}
	if err == nil {
		ops, err = appendKeyedOps(ops, c.Roles, s.roleKey)
	}
	if err != nil {
		return 0, fmt.Errorf("store commit: %w", err)
	}
	if c.Seq > 0 {
		ops = append(ops, clientv3.OpPut(s.key("meta", "seq"), strconv.FormatUint(c.Seq, 10)))
	}
	if len(c.Audit) > 0 || c.AuditPrune != nil {
		aops, err := s.auditOps(c)
		if err != nil {
			return 0, fmt.Errorf("store commit: %w", err)
		}
		ops = append(ops, aops...)
	}
	if c.Policies != nil {
		b, err := json.Marshal(c.Policies)
		if err != nil {
			return 0, fmt.Errorf("store commit: %w", err)
		}
		ops = append(ops, clientv3.OpPut(s.key("policies", "state"), string(b)))
	}
	if len(c.Events) > 0 {
		var buf bytes.Buffer
		for _, e := range c.Events {
			if _, err := protodelim.MarshalTo(&buf, e); err != nil {
				return 0, fmt.Errorf("store commit: %w", err)
			}
		}
		ops = append(ops, clientv3.OpPut(s.eventsKey(), buf.String()))
	}
	tctx, cancel := context.WithTimeout(ctx, CommitTimeout)
	defer cancel()
	cli, viaLeader := s.cli, false
	if s.route != nil {
		cli, viaLeader = s.route.kv()
	}
	txn := cli.Txn(tctx)
	if s.fenceKey != "" {
		txn = txn.If(clientv3.Compare(clientv3.CreateRevision(s.fenceKey), "=", s.fenceRev))
	}
	resp, err := txn.Then(ops...).Commit()
	if viaLeader {
		var h *etcdserverpb.ResponseHeader
		if resp != nil {
			h = resp.Header
		}
		s.route.observe(cli, h, err)
	}
	if err != nil {
		if refusedBeforeApply(err) {
			return 0, fmt.Errorf("store commit: %w", err)
		}
		// Sent and unanswered: etcd may still apply it.
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return 0, fmt.Errorf("store commit: etcd did not answer within %v (its members are unreachable or it lost quorum): %w: %w", CommitTimeout, kernel.ErrCommitUnknown, err)
		}
		return 0, fmt.Errorf("store commit: %w: %w", kernel.ErrCommitUnknown, err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("store commit: %w (election key %s, revision %d, is gone)", kernel.ErrFenced, s.fenceKey, s.fenceRev)
	}
	return resp.Header.Revision, nil
}

// refusedBeforeApply reports whether etcd refused a transaction outright
// (it was never proposed): no space, too large, too many operations or
// requests. Any other error leaves its outcome unknown.
func refusedBeforeApply(err error) bool {
	ev := rpctypes.Error(err) // a gRPC status as the client's EtcdError
	for _, r := range []error{rpctypes.ErrNoSpace, rpctypes.ErrRequestTooLarge, rpctypes.ErrTooManyOps, rpctypes.ErrTooManyRequests} {
		if errors.Is(ev, r) {
			return true
		}
	}
	return false
}

func appendOps[M proto.Message](ops []clientv3.Op, s *Etcd, kind string, objs map[string]M) ([]clientv3.Op, error) {
	for id, m := range objs {
		if isNil(m) {
			ops = append(ops, clientv3.OpDelete(s.key(kind, id)))
			continue
		}
		b, err := proto.Marshal(m)
		if err != nil {
			return nil, err
		}
		ops = append(ops, clientv3.OpPut(s.key(kind, id), string(b)))
	}
	return ops, nil
}

func appendKeyedOps[K comparable, M proto.Message](ops []clientv3.Op, objs map[K]M, key func(K) string) ([]clientv3.Op, error) {
	for k, m := range objs {
		if isNil(m) {
			ops = append(ops, clientv3.OpDelete(key(k)))
			continue
		}
		b, err := proto.Marshal(m)
		if err != nil {
			return nil, err
		}
		ops = append(ops, clientv3.OpPut(key(k), string(b)))
	}
	return ops, nil
}

func isNil(m proto.Message) bool { return m == nil || !m.ProtoReflect().IsValid() }

// Events streams the event log after revision after; see kernel.Store.
// Each call has a gRPC watch stream of its own: clientv3 multiplexes the
// watches of equal contexts on one stream, and on the embedded etcd's
// in-process client (v3client) the cancellation of ~50 watches sharing a
// stream at once deadlocks both ends of it, stopping every other watch
// on it for good.
func (s *Etcd) Events(ctx context.Context, after int64, fn func(int64, []*pb.Event) error) error {
	ctx = metadata.AppendToOutgoingContext(ctx, "dcos-events-call", strconv.FormatUint(s.calls.Add(1), 10))
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := s.cli.Watch(ctx, s.eventsKey(), clientv3.WithRev(after+1))
	for wr := range wch {
		if wr.CompactRevision != 0 || errors.Is(wr.Err(), rpctypes.ErrCompacted) {
			cur := wr.Header.Revision
			if resp, err := s.cli.Get(ctx, s.eventsKey(), clientv3.WithCountOnly()); err == nil {
				cur = resp.Header.Revision // the watch header may be empty on compaction
			}
			// Compacted is never 0 here: 0 means "fell behind, nothing
			// lost" to Watch clients.
			comp := wr.CompactRevision
			if comp == 0 {
				comp = cur
			}
			return &kernel.ResyncError{Current: cur, Compacted: comp}
		}
		if err := wr.Err(); err != nil {
			return fmt.Errorf("store watch: %w", err)
		}
		for _, ev := range wr.Events {
			if ev.Type != clientv3.EventTypePut {
				continue
			}
			evs, err := decodeEvents(ev.Kv.Value, ev.Kv.ModRevision)
			if err != nil {
				return fmt.Errorf("store watch: revision %d: %w", ev.Kv.ModRevision, err)
			}
			if err := fn(ev.Kv.ModRevision, evs); err != nil {
				return err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("store watch: closed")
}

func decodeEvents(b []byte, rev int64) ([]*pb.Event, error) {
	r := bytes.NewReader(b)
	var out []*pb.Event
	for r.Len() > 0 {
		e := &pb.Event{}
		if err := protodelim.UnmarshalFrom(r, e); err != nil {
			return nil, err
		}
		e.Revision = rev
		if st := e.GetState(); st != nil {
			st.Revision = rev // a STATE_CHANGED key's revision is its commit's
		}
		out = append(out, e)
	}
	return out, nil
}

// LastEvent returns the revision of the newest event in the log (0 if
// none) and the revision it was read at; see kernel.EventHead.
func (s *Etcd) LastEvent(ctx context.Context) (last, at int64, err error) {
	resp, err := s.cli.Get(ctx, s.eventsKey(), clientv3.WithKeysOnly())
	if err != nil {
		return 0, 0, fmt.Errorf("store last event: %w", err)
	}
	if len(resp.Kvs) > 0 {
		last = resp.Kvs[0].ModRevision
	}
	return last, resp.Header.Revision, nil
}

// Compact discards history up to rev (for tests and operators).
func (s *Etcd) Compact(ctx context.Context, rev int64) error {
	_, err := s.cli.Compact(ctx, rev, clientv3.WithCompactPhysical())
	return err
}

// blobChunk keeps each blob write under etcd's default request limit
// (1.5 MiB), so external clusters need no tuning for policy modules.
const blobChunk = 1 << 20

// PutBlob stores b under its sha256 in chunks; the count key is written
// last, so a blob is visible only once complete. Idempotent.
func (s *Etcd) PutBlob(ctx context.Context, sha string, b []byte) error {
	if got := hexDigest(b); got != sha {
		return fmt.Errorf("store blob: content hashes to %s, not %s", got, sha)
	}
	base := s.key("policies", "blobs/"+sha)
	if resp, err := s.cli.Get(ctx, base+"/n", clientv3.WithCountOnly()); err == nil && resp.Count == 1 {
		return nil
	}
	if err := s.Writable(); err != nil {
		return err
	}
	n := 0
	for off := 0; off < len(b); off += blobChunk {
		end := min(off+blobChunk, len(b))
		if _, err := s.cli.Put(ctx, fmt.Sprintf("%s/%06d", base, n), string(b[off:end])); err != nil {
			return fmt.Errorf("store blob: %w", err)
		}
		n++
	}
	if _, err := s.cli.Put(ctx, base+"/n", strconv.Itoa(n)); err != nil {
		return fmt.Errorf("store blob: %w", err)
	}
	return nil
}

// GetBlob reads a blob and checks its hash.
func (s *Etcd) GetBlob(ctx context.Context, sha string) ([]byte, error) {
	base := s.key("policies", "blobs/"+sha)
	resp, err := s.cli.Get(ctx, base+"/n")
	if err != nil {
		return nil, fmt.Errorf("store blob: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("store blob %s: not found", sha)
	}
	n, err := strconv.Atoi(string(resp.Kvs[0].Value))
	if err != nil {
		return nil, fmt.Errorf("store blob %s: %w", sha, err)
	}
	var b []byte
	for i := 0; i < n; i++ {
		r, err := s.cli.Get(ctx, fmt.Sprintf("%s/%06d", base, i))
		if err != nil || len(r.Kvs) == 0 {
			return nil, fmt.Errorf("store blob %s: chunk %d missing (%v)", sha, i, err)
		}
		b = append(b, r.Kvs[0].Value...)
	}
	if got := hexDigest(b); got != sha {
		return nil, fmt.Errorf("store blob %s: content hashes to %s", sha, got)
	}
	return b, nil
}

func hexDigest(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
