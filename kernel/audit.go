package kernel

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// The audit trail (docs/security.md, "Audit"): every mutating call and
// every refused call is one pb.AuditRecord, written in the same store
// transaction as the change it describes and chained by sha256.
//
// A call reaches the trail one of two ways:
//   - through the loop: the API layer puts an *AuditCall in the call's
//     context (WithAudit); each op that call queues (do) records its
//     outcome, with the ids of the events it emitted as extra targets, in
//     the batch the op ran in. Records of ops that fail inside the loop
//     are committed with the batch all the same.
//   - through the queue (Kernel.Audit): calls that never reach the loop
//     (the front door's refusals, validation failures before do, the
//     token calls, which the token store serves) are queued, bounded, and
//     written with the next batch; the loop wakes for them.

// Audit limits.
const (
	// AuditMessageMax bounds AuditRecord.message, in bytes.
	AuditMessageMax = 256
	// AuditTargetsMax bounds AuditRecord.targets; a record that names
	// more ends with "+N more".
	AuditTargetsMax = 32
	// AuditQueue bounds the records queued by Kernel.Audit; past it they
	// are dropped and counted, and one record says how many.
	AuditQueue = 4096
	// AuditPruneChunk bounds the expired records one transaction deletes.
	AuditPruneChunk = 500
	// AuditListMax bounds the records of one AuditList answer.
	AuditListMax = 10000
	// auditListDefault is the answer's size when the request sets none.
	auditListDefault = 1000
)

// DefaultAuditPruneInterval is how often the kernel looks for records
// older than Config.AuditRetention, by default.
const DefaultAuditPruneInterval = time.Minute

// AuditStore is what the audit trail needs of a Store beyond Commit,
// which writes Changes.Audit and Changes.AuditPrune in its transaction
// (internal/store implements it). A Store without it keeps no trail
// readable through AuditList, and starts its chain at seq 1.
type AuditStore interface {
	// AuditHead returns the last record's seq and hash (the anchor's
	// when every record was pruned; 0 and nil for an empty trail).
	AuditHead(ctx context.Context) (uint64, []byte, error)
	// AuditRange returns up to n records with seq > after, in seq order,
	// and the anchor (nil: none).
	AuditRange(ctx context.Context, after uint64, n int) ([]*pb.AuditRecord, *pb.AuditAnchor, error)
	// AuditExpired returns the last of the first n records older than
	// before (nil: none).
	AuditExpired(ctx context.Context, before time.Time, n int) (*pb.AuditRecord, error)
}

// AuditPrune deletes the records up to and including Through, and makes
// the last one deleted the anchor verification starts from.
type AuditPrune struct {
	Through uint64
	Hash    []byte // Through's hash
}

// AuditCall describes one audited syscall, for the loop: who called what
// on which ids. The API layer makes one per call (NewAuditCall), puts it
// in the call's context (WithAudit) and, once the call returned, asks
// Settle whether it still must be queued. Safe for concurrent use.
type AuditCall struct {
	Principal Principal
	Call      string
	Targets   []string
	// SkipNoop: a successful op of the call that emitted no event (a
	// Campaign that only renewed its lease) is not recorded.
	SkipNoop bool
	// made are ids the current op made that no event names (the loop
	// only; see noteAllocations).
	made []string
	// items is what the current op's items came to when the op carries
	// many (a batch call) and some were refused (the loop only; see
	// noteItems): the record takes its code and message.
	items error
	// state: auditNone, auditPending (a batch holds its record),
	// auditCommitted, auditQueued.
	state atomic.Int32
}

const (
	auditNone int32 = iota
	auditPending
	auditCommitted
	auditQueued
)

// NewAuditCall returns the description of a call by p to call naming
// targets (empty ones are left out).
func NewAuditCall(p Principal, call string, targets ...string) *AuditCall {
	var ts []string
	for _, t := range targets {
		ts = appendTarget(ts, t)
	}
	return &AuditCall{Principal: p, Call: call, Targets: ts}
}

// Settle reports whether no record of the call was committed through the
// loop (it failed before reaching it, or its batch's commit failed, or it
// never queues an op), and claims it: the caller must then queue the
// record (Kernel.Audit). It reports false on later calls.
func (a *AuditCall) Settle() bool {
	return a.state.CompareAndSwap(auditNone, auditQueued)
}

// noteAllocations adds the ids of allocations the current op made to its
// record. Nil-safe. The loop only, inside the op.
func (a *AuditCall) noteAllocations(as []*pb.Allocation) {
	if a == nil {
		return
	}
	for _, al := range as {
		a.made = append(a.made, al.GetId())
	}
}

// noteItems records, for a call of many items (LaunchBatch), which of
// them were refused: the call's record then carries the code of a
// refusal — permission_denied before any other, so that a denied item
// is never hidden among successes — and a message saying how many of
// the items were refused and why the first was. Nil-safe. The loop
// only, inside the op.
func (a *AuditCall) noteItems(errs []error) {
	if a == nil {
		return
	}
	var first, denied error
	n := 0
	for _, err := range errs {
		if err == nil {
			continue
		}
		n++
		if first == nil {
			first = err
		}
		if denied == nil && CodeOf(err) == PermissionDenied {
			denied = err
		}
	}
	if n == 0 {
		a.items = nil
		return
	}
	shown := first
	if denied != nil {
		shown = denied
	}
	a.items = &Error{Code: CodeOf(shown), Msg: fmt.Sprintf("%d of %d items refused; %v", n, len(errs), shown)}
}

type auditKey struct{}

// WithAudit returns ctx carrying a: the ops the call queues record their
// outcome in the trail.
func WithAudit(ctx context.Context, a *AuditCall) context.Context {
	return context.WithValue(ctx, auditKey{}, a)
}

func auditFrom(ctx context.Context) *AuditCall {
	a, _ := ctx.Value(auditKey{}).(*AuditCall)
	return a
}

// AuditRecordOf returns the record of a call by p to call naming
// targets that ended with code ("ok" on success) and msg, for
// Kernel.Audit.
func AuditRecordOf(p Principal, call string, targets []string, code, msg string) *pb.AuditRecord {
	r := &pb.AuditRecord{Principal: p.Name, Call: call, Targets: capTargets(targets), Code: code, Message: clipMessage(strings.ToValidUTF8(msg, "\uFFFD"))}
	if p.Name != "" {
		r.Role = p.Role.String()
	}
	return r
}

// CodeName returns err's code as the trail records it: "ok" for nil, and
// the snake_case name of the gRPC/Connect code of a kernel *Error
// ("internal" for any other error).
func CodeName(err error) string {
	if err == nil {
		return "ok"
	}
	c := Internal
	if ke, ok := err.(*Error); ok {
		c = ke.Code
	}
	return [...]string{"internal", "invalid_argument", "not_found", "permission_denied", "failed_precondition", "unavailable", "resource_exhausted", "aborted", "unimplemented"}[c]
}

// Audit queues rec to be written with the next batch; it never blocks.
// The loop sets its seq, time (if unset), kernel and chain. When the
// queue is full the record is dropped and counted; the next batch writes
// a record saying how many were dropped. A kernel with the trail off
// (Config.NoAudit) drops it silently.
func (k *Kernel) Audit(rec *pb.AuditRecord) {
	if k.cfg.NoAudit {
		return
	}
	if rec.Time == nil {
		rec.Time = timestamppb.New(k.cfg.Clock())
	}
	select {
	case k.auditq <- rec:
	default:
		k.auditDropped.Add(1)
	}
}

// AuditDropped is how many records Audit dropped on a full queue.
func (k *Kernel) AuditDropped() uint64 { return k.auditTotalDropped.Load() }

// auditOp appends the record of o's outcome to c, if o's call is audited.
// evs are the events o emitted. The loop only.
func (k *Kernel) auditOp(o *op, c *Changes, evs []*pb.Event, now time.Time) {
	a := o.audit
	if a == nil {
		return
	}
	made, items := a.made, a.items
	a.made, a.items = nil, nil
	if k.cfg.NoAudit {
		return
	}
	prev := a.state.Load()
	if (prev != auditNone && prev != auditCommitted) || !a.state.CompareAndSwap(prev, auditPending) {
		return
	}
	o.auditPrev = prev
	if a.SkipNoop && o.err == nil && len(evs) == 0 {
		a.state.Store(auditCommitted) // nothing to record, nor to queue
		return
	}
	targets := append(a.Targets[:len(a.Targets):len(a.Targets)], made...)
	for _, e := range evs {
		targets = appendTarget(targets, eventTarget(e))
	}
	msg, code := "", CodeName(o.err)
	if o.err != nil {
		msg = o.err.Error()
	} else if items != nil {
		msg, code = items.Error(), CodeName(items)
	}
	r := AuditRecordOf(a.Principal, a.Call, targets, code, msg)
	if c.auditTime == nil {
		c.auditTime = timestamppb.New(now)
	}
	r.Time = c.auditTime // shared: the batch's records are encoded, never changed
	c.Audit = append(c.Audit, r)
}

// auditQueued moves the queued records (and those a failed commit gave
// back) into c, with a record of how many were dropped. The loop only.
func (k *Kernel) auditQueued(c *Changes, now time.Time) {
	if k.cfg.NoAudit {
		return
	}
	c.Audit = append(c.Audit, k.auditRetry...)
	k.auditRetry = nil
	for {
		select {
		case r := <-k.auditq:
			c.Audit = append(c.Audit, r)
			continue
		default:
		}
		break
	}
	if n := k.auditDropped.Swap(0); n > 0 {
		k.auditTotalDropped.Add(n)
		c.Audit = append(c.Audit, &pb.AuditRecord{Time: timestamppb.New(now), Call: "AuditDropped", Code: "resource_exhausted",
			Message: fmt.Sprintf("%d audit records were dropped (the audit queue of %d was full, or a commit failed)", n, AuditQueue)})
	}
	c.auditQueued = len(c.Audit)
}

// auditChain numbers and chains c's records after the committed head;
// the head moves only once the commit succeeded (auditCommitted). The
// loop only.
func (k *Kernel) auditChain(c *Changes) {
	seq, prev := k.auditSeq, k.auditHash
	sums := make([]byte, sha256.Size*len(c.Audit)) // one allocation for the batch's hashes
	for i, r := range c.Audit {
		seq++
		r.Seq, r.PrevHash, r.Kernel = seq, prev, k.cfg.AuditKernel
		r.Hash = auditHashTo(sums[i*sha256.Size:(i+1)*sha256.Size:(i+1)*sha256.Size], r)
		prev = r.Hash
	}
}

// auditCommitted moves the chain's head past c's records, and marks the
// calls recorded. The loop only.
func (k *Kernel) auditCommitted(c *Changes, batch []*op) {
	if n := len(c.Audit); n > 0 {
		k.auditSeq, k.auditHash = c.Audit[n-1].Seq, c.Audit[n-1].Hash
	}
	for _, o := range batch {
		if o.audit != nil {
			o.audit.state.CompareAndSwap(auditPending, auditCommitted)
		}
	}
}

// What became of a failed batch's queued records (auditFailed).
const (
	fateRetry   = iota // nothing was written: write them again
	fateWritten        // the batch landed after all
	fateLost           // unknown, or this kernel stops: count them dropped
)

// auditFailed undoes c's records after its commit failed: the head stays
// where it was (no gap, no fork), the ops' calls go back to the API
// layer, which queues their record with the failure their callers get,
// and the queued records are dealt with as fate says. The loop only.
func (k *Kernel) auditFailed(c *Changes, batch []*op, fate int) {
	for _, o := range batch {
		if o.audit != nil {
			o.audit.state.CompareAndSwap(auditPending, o.auditPrev)
		}
	}
	queued := c.Audit[:c.auditQueued]
	switch fate {
	case fateWritten:
		return
	case fateLost:
		k.auditDropped.Add(uint64(len(queued)))
		return
	}
	for _, r := range queued {
		r.Seq, r.PrevHash, r.Hash, r.Kernel = 0, nil, nil, ""
		k.auditKeep(r)
	}
}

// auditKeep keeps r for the next batch, or counts it dropped when as
// many as the queue holds are kept already (a store refusing writes).
// The loop only.
func (k *Kernel) auditKeep(r *pb.AuditRecord) {
	if len(k.auditRetry) >= AuditQueue {
		k.auditDropped.Add(1)
		return
	}
	k.auditRetry = append(k.auditRetry, r)
}

// AuditHash returns the chain hash of r: sha256(r.prev_hash || the
// deterministic protobuf encoding of r with hash unset). r is not
// changed.
func AuditHash(r *pb.AuditRecord) []byte {
	return auditHashTo(make([]byte, sha256.Size), r)
}

// auditHashTo writes AuditHash(r) into dst (sha256.Size bytes) and
// returns it.
func auditHashTo(dst []byte, r *pb.AuditRecord) []byte {
	var buf [512]byte // most records: no allocation
	b := append(buf[:0], r.GetPrevHash()...)
	b = AppendAuditRecord(b, r, OmitHash)
	sum := sha256.Sum256(b)
	return dst[:copy(dst, sum[:])]
}

func clipMessage(s string) string {
	if len(s) <= AuditMessageMax {
		return s
	}
	s = s[:AuditMessageMax]
	for len(s) > 0 && !utf8Start(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	if len(s) > 0 {
		s = s[:len(s)-1] // the cut rune's first byte
	}
	return s
}

func utf8Start(b byte) bool { return b < 0x80 || b >= 0xC0 }

func capTargets(ts []string) []string {
	if len(ts) <= AuditTargetsMax {
		return ts
	}
	out := append([]string(nil), ts[:AuditTargetsMax-1]...)
	return append(out, fmt.Sprintf("+%d more", len(ts)-(AuditTargetsMax-1)))
}

// appendTarget appends id to ts unless it is empty or already there.
func appendTarget(ts []string, id string) []string {
	if id == "" {
		return ts
	}
	for _, t := range ts {
		if t == id {
			return ts
		}
	}
	return append(ts[:len(ts):len(ts)], id)
}

// eventTarget is the id an event is about.
func eventTarget(e *pb.Event) string {
	switch {
	case e.GetTask() != nil:
		return e.GetTask().GetId()
	case e.GetAllocation() != nil:
		return e.GetAllocation().GetId()
	case e.GetVolume() != nil:
		return e.GetVolume().GetName()
	case e.GetAgent() != nil:
		return e.GetAgent().GetId()
	case e.GetState() != nil:
		return e.GetState().GetKey()
	case e.GetLeader() != nil:
		return e.GetLeader().GetElection()
	}
	return ""
}

// AuditList answers the records after req.after_seq that match req's
// filters, read from the store after the queued records were written (a
// refusal answered just before is listed). Operators only (the API's
// door).
func (k *Kernel) AuditList(ctx context.Context, _ Principal, req *pb.AuditListRequest) (*pb.AuditListResponse, error) {
	as, ok := k.cfg.Store.(AuditStore)
	if !ok {
		return nil, errorf(Unimplemented, "this kernel's store keeps no audit trail")
	}
	limit := int(req.GetLimit())
	switch {
	case limit == 0:
		limit = auditListDefault
	case limit > AuditListMax:
		return nil, fieldError("limit", "at most %d, got %d", AuditListMax, limit)
	}
	var since time.Time
	if s := req.GetSince(); s != nil {
		if err := s.CheckValid(); err != nil {
			return nil, fieldError("since", "%v", err)
		}
		since = s.AsTime()
	}
	if len(req.GetPrincipal()) > MaxStringLen || len(req.GetCall()) > MaxStringLen {
		return nil, fieldError("principal", "principal and call: at most %d bytes", MaxStringLen)
	}
	// Flush the queue: an op-less round of the loop writes it. Best
	// effort: a store that refuses writes (a full disk) is still read.
	k.do(ctx, func(*Table, *Changes, time.Time) error { return nil }, nil)
	resp := &pb.AuditListResponse{LastSeq: req.GetAfterSeq()}
	// Scan at most a few pages per answer: filters may match little.
	for scanned := 0; scanned < 4*AuditListMax; {
		page := min(limit, 1000)
		recs, anchor, err := as.AuditRange(ctx, resp.LastSeq, page)
		if err != nil {
			return nil, errorf(Unavailable, "audit list: %v", err)
		}
		resp.Anchor = anchor
		scanned += len(recs)
		for _, r := range recs {
			resp.LastSeq = r.GetSeq()
			if auditMatch(r, req, since) {
				resp.Records = append(resp.Records, r)
				if len(resp.Records) == limit {
					break
				}
			}
		}
		if len(recs) < page && (len(recs) == 0 || resp.LastSeq == recs[len(recs)-1].GetSeq()) {
			return resp, nil
		}
		if len(resp.Records) == limit {
			break
		}
	}
	more, _, err := as.AuditRange(ctx, resp.LastSeq, 1)
	if err != nil {
		return nil, errorf(Unavailable, "audit list: %v", err)
	}
	resp.More = len(more) > 0
	return resp, nil
}

func auditMatch(r *pb.AuditRecord, req *pb.AuditListRequest, since time.Time) bool {
	if req.GetPrincipal() != "" && r.GetPrincipal() != req.GetPrincipal() {
		return false
	}
	if req.GetCall() != "" && !strings.EqualFold(r.GetCall(), req.GetCall()) {
		return false
	}
	return since.IsZero() || !r.GetTime().AsTime().Before(since)
}

// auditPruneLoop deletes, every AuditPruneInterval, the records older
// than the retention, AuditPruneChunk per transaction. Run's goroutine.
func (k *Kernel) auditPruneLoop(ctx context.Context) {
	as, ok := k.cfg.Store.(AuditStore)
	if !ok || k.cfg.NoAudit || k.cfg.AuditRetention <= 0 {
		return
	}
	every := k.cfg.AuditPruneInterval
	if every <= 0 {
		every = DefaultAuditPruneInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for k.auditPruneOnce(ctx, as) {
		}
		select {
		case <-ctx.Done():
			return
		case <-k.done:
			return
		case <-t.C:
		}
	}
}

// auditPruneOnce deletes one chunk of expired records; it reports whether
// it deleted a whole chunk (there may be more).
func (k *Kernel) auditPruneOnce(ctx context.Context, as AuditStore) bool {
	last, err := as.AuditExpired(ctx, k.cfg.Clock().Add(-k.cfg.AuditRetention), AuditPruneChunk)
	if err != nil || last == nil {
		return false
	}
	p := &AuditPrune{Through: last.GetSeq(), Hash: last.GetHash()}
	_, err = k.do(ctx, func(_ *Table, c *Changes, _ time.Time) error {
		c.AuditPrune = p
		return nil
	}, nil)
	if err != nil {
		k.log.Warn("audit retention: delete expired records", "err", err)
		return false
	}
	return true
}

// auditLoad reads the chain's head from the store. New and reload.
func (k *Kernel) auditLoad(ctx context.Context) error {
	k.auditRetry = nil
	as, ok := k.cfg.Store.(AuditStore)
	if !ok {
		return nil
	}
	seq, h, err := as.AuditHead(ctx)
	if err != nil {
		return fmt.Errorf("audit head: %w", err)
	}
	k.auditSeq, k.auditHash = seq, h
	return nil
}
