package kernel

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Coordination: leader elections and framework state, per principal (the
// calls Campaign, Resign, Leader and StateGet/Put/Delete/List). Every
// record belongs to one owner, a principal name; a framework acts on its
// own only, an operator on anyone's (the requests' owner field).

// Limits of the coordination calls.
const (
	// DefaultElection is the election an empty name means.
	DefaultElection = "default"
	// DefaultElectionTTL is a leadership lease's length when a Campaign
	// asks for none; MinElectionTTL and MaxElectionTTL bound it.
	DefaultElectionTTL = 10 * time.Second
	MinElectionTTL     = time.Second
	MaxElectionTTL     = 5 * time.Minute
	// MaxElections is how many elections one principal may have.
	MaxElections = 64
	// MaxElectionName, MaxCandidateLen and MaxAddressLen bound an
	// election's name, a candidate and the address it advertises.
	MaxElectionName = 63
	MaxCandidateLen = 128
	MaxAddressLen   = 256
	// MaxStateKeyLen and MaxStateValue bound one state key and its value;
	// MaxStateKeys and MaxStateBytes bound what one principal holds (the
	// sum of its values' sizes).
	MaxStateKeyLen = 256
	MaxStateValue  = 256 << 10
	MaxStateKeys   = 10_000
	MaxStateBytes  = 32 << 20
	// MaxBatchStateBytes bounds the state values one loop transaction
	// writes, under etcd's request limit (64 MiB embedded; an external
	// cluster needs --max-request-bytes above it): a StatePut past it,
	// after others in its batch, is Unavailable and may be retried.
	MaxBatchStateBytes = 16 << 20
	// MaxObjectLabels bounds the labels of an allocation or task, and
	// MaxLabelValue their values' length.
	MaxObjectLabels = 32
	MaxLabelValue   = 256
)

var (
	electionRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	candidateRE = regexp.MustCompile(`^[A-Za-z0-9._:-]+$`)
)

// ElectionKey names an election: its owner (a principal name) and name.
type ElectionKey struct{ Owner, Name string }

// StateKey names a framework state key: its owner and key.
type StateKey struct{ Owner, Key string }

// ownerState is one principal's framework state.
type ownerState struct {
	entries map[string]*pb.StateEntry
	bytes   int64 // sum of the values' sizes
}

// restoreCoord loads the coordination records of s; a held lease gets
// its full ttl from now (renewals are not persisted, see Campaign), as
// agents get a fresh heartbeat timeout.
func (t *Table) restoreCoord(s *State, now time.Time) {
	for _, l := range s.Elections {
		if l.GetHolder() != "" && l.GetTtl() != nil {
			l.Expires = timestamppb.New(now.Add(l.GetTtl().AsDuration()))
		}
		t.elections[ElectionKey{l.GetOwner(), l.GetElection()}] = l
	}
	for _, e := range s.StateEntries {
		os := t.ownerState(e.GetOwner())
		os.entries[e.GetKey()] = e
		os.bytes += int64(len(e.GetValue()))
	}
}

func (t *Table) ownerState(owner string) *ownerState {
	os := t.state[owner]
	if os == nil {
		os = &ownerState{entries: map[string]*pb.StateEntry{}}
		t.state[owner] = os
	}
	return os
}

// scope returns the principal whose coordination records p's call acts
// on: p's own, or, for an operator, owner's. A framework naming another
// principal is PermissionDenied.
func scope(p Principal, owner string) (string, error) {
	if owner == "" || owner == p.Name {
		return p.Name, nil
	}
	if p.Role != RoleOperator {
		return "", errorf(PermissionDenied, "owner: a %s acts on its own elections and state only, not %q's", p.Role, clip(owner))
	}
	if err := validateName("owner", owner, true); err != nil {
		return "", err
	}
	return owner, nil
}

// electionName validates an election name and returns it with "" as
// DefaultElection.
func electionName(field, name string) (string, error) {
	if name == "" {
		return DefaultElection, nil
	}
	if len(name) > MaxElectionName || !electionRE.MatchString(name) {
		return "", fieldError(field, "want [a-z0-9][a-z0-9._-]*, at most %d bytes, got %q", MaxElectionName, clip(name))
	}
	return name, nil
}

func validateCandidate(c string) error {
	if len(c) == 0 || len(c) > MaxCandidateLen || !candidateRE.MatchString(c) {
		return fieldError("candidate", "want 1 to %d bytes of [A-Za-z0-9._:-], got %q", MaxCandidateLen, clip(c))
	}
	return nil
}

// validateFence checks a request's fence (nil: none).
func validateFence(f *pb.Fence) error {
	if f == nil {
		return nil
	}
	if _, err := electionName("fence.election", f.GetElection()); err != nil {
		return err
	}
	if f.GetEpoch() < 1 {
		return fieldError("fence.epoch", "must be at least 1 (an epoch a Campaign won), got %d", f.GetEpoch())
	}
	return nil
}

// validateStateKey checks a state key: 1 to MaxStateKeyLen bytes of
// printable ASCII without spaces.
func validateStateKey(field, k string, required bool) error {
	if k == "" {
		if required {
			return fieldError(field, "required")
		}
		return nil
	}
	if len(k) > MaxStateKeyLen {
		return fieldError(field, "at most %d bytes, got %d", MaxStateKeyLen, len(k))
	}
	for i := 0; i < len(k); i++ {
		if k[i] <= ' ' || k[i] > '~' {
			return fieldError(field, "want printable ASCII without spaces, got byte %#x at %d in %q", k[i], i, clip(k))
		}
	}
	return nil
}

func validateExpected(field string, exp *int64) error {
	if exp != nil && *exp < 0 {
		return fieldError(field, "must be >= 0 (0: the key must not exist), got %d", *exp)
	}
	return nil
}

// validateLabels checks an allocation's or task's labels: at most
// MaxObjectLabels, keys as agent labels, values at most MaxLabelValue
// bytes.
func validateLabels(m map[string]string) error {
	if len(m) > MaxObjectLabels {
		return fieldError("labels", "at most %d, got %d", MaxObjectLabels, len(m))
	}
	for k, v := range m {
		if err := validateName("labels", k, true); err != nil {
			return err
		}
		if len(v) > MaxLabelValue {
			return fieldError("labels["+k+"]", "at most %d bytes, got %d", MaxLabelValue, len(v))
		}
	}
	return nil
}

// ValidateCampaign checks a Campaign request and returns its election name
// and lease length with defaults applied.
func ValidateCampaign(r *pb.CampaignRequest) (name string, ttl time.Duration, err error) {
	if name, err = electionName("election", r.GetElection()); err != nil {
		return "", 0, err
	}
	if err := validateCandidate(r.GetCandidate()); err != nil {
		return "", 0, err
	}
	ttl = DefaultElectionTTL
	if r.Ttl != nil {
		if err := r.Ttl.CheckValid(); err != nil {
			return "", 0, fieldError("ttl", "%v", err)
		}
		if ttl = r.Ttl.AsDuration(); ttl < MinElectionTTL || ttl > MaxElectionTTL {
			return "", 0, fieldError("ttl", "must be between %v and %v, got %v", MinElectionTTL, MaxElectionTTL, ttl)
		}
	}
	if len(r.GetAddress()) > MaxAddressLen {
		return "", 0, fieldError("address", "at most %d bytes, got %d", MaxAddressLen, len(r.GetAddress()))
	}
	if strings.ContainsRune(r.GetAddress(), 0) {
		return "", 0, fieldError("address", "contains a NUL byte")
	}
	return name, ttl, nil
}

// ValidateStatePut checks a StatePut request.
func ValidateStatePut(r *pb.StatePutRequest) error {
	if err := validateStateKey("key", r.GetKey(), true); err != nil {
		return err
	}
	if n := len(r.GetValue()); n > MaxStateValue {
		return fieldError("value", "at most %d bytes, got %d", MaxStateValue, n)
	}
	if err := validateExpected("expected_revision", r.ExpectedRevision); err != nil {
		return err
	}
	return validateFence(r.GetFence())
}

// ValidateStateDelete checks a StateDelete request.
func ValidateStateDelete(r *pb.StateDeleteRequest) error {
	if err := validateStateKey("key", r.GetKey(), true); err != nil {
		return err
	}
	if err := validateExpected("expected_revision", r.ExpectedRevision); err != nil {
		return err
	}
	return validateFence(r.GetFence())
}

// checkFence refuses a write fenced by f (nil: not fenced) once owner's
// election f names has an epoch past f's: FailedPrecondition "deposed". An
// epoch the election never had is FailedPrecondition too. A fence stays
// valid while its epoch is the election's latest, even after the lease
// lapsed: it is refused once another replica has won.
func (t *Table) checkFence(owner string, f *pb.Fence) error {
	if f == nil {
		return nil
	}
	name, _ := electionName("fence.election", f.GetElection()) // validated
	l := t.elections[ElectionKey{owner, name}]
	switch {
	case l == nil || f.GetEpoch() > l.GetEpoch():
		return errorf(FailedPrecondition, "fence: election %q has no epoch %d", name, f.GetEpoch())
	case l.GetEpoch() > f.GetEpoch():
		return errorf(FailedPrecondition, "deposed: epoch %d < %d", f.GetEpoch(), l.GetEpoch())
	}
	return nil
}

// leads reports whether l has a holder whose lease has not ended at now.
func leads(l *pb.Leadership, now time.Time) bool {
	return l.GetHolder() != "" && now.Before(l.GetExpires().AsTime())
}

func (t *Table) leaderEvent(l *pb.Leadership, now time.Time, reason string, c *Changes) {
	c.Elections[ElectionKey{l.GetOwner(), l.GetElection()}] = l
	e := event(pb.EventKind_EVENT_KIND_LEADER_CHANGED, now, reason)
	e.Leader = proto.Clone(l).(*pb.Leadership)
	c.Events = append(c.Events, e)
}

// Campaign runs candidate's campaign in owner's election name: it wins
// when nobody leads (no holder, or the holder's lease ended at now) with
// the election's next epoch, and renews its lease (same epoch) when it
// already leads. A loser changes nothing. It returns the election (live)
// and whether candidate leads. A new election past MaxElections is
// ResourceExhausted.
func (t *Table) Campaign(owner, name, candidate, address string, ttl time.Duration, now time.Time, c *Changes) (*pb.Leadership, bool, error) {
	key := ElectionKey{owner, name}
	l := t.elections[key]
	if l == nil {
		n := 0
		for k := range t.elections {
			if k.Owner == owner {
				n++
			}
		}
		if n >= MaxElections {
			return nil, false, errorf(ResourceExhausted, "election: principal %q has %d elections, the limit is %d", owner, n, MaxElections)
		}
		l = &pb.Leadership{Owner: owner, Election: name}
		t.elections[key] = l
	}
	switch {
	case leads(l, now) && l.GetHolder() == candidate: // renewal
		// Only the expiry moves, in memory: a renewal every few
		// seconds per framework replica is not worth an etcd write
		// (etcd does not log its lease keep-alives either). Restore
		// gives a held lease its full ttl again.
		l.Expires = timestamppb.New(now.Add(ttl))
		if c.renewed == nil {
			c.renewed = map[ElectionKey]*pb.Leadership{}
		}
		c.renewed[key] = l
		if l.GetAddress() != address || l.GetTtl().AsDuration() != ttl {
			l.Address, l.Ttl = address, durationpb.New(ttl)
			c.Elections[key] = l
		}
		return l, true, nil
	case leads(l, now):
		return l, false, nil
	}
	l.Holder, l.Epoch, l.Expires, l.Address, l.Ttl = candidate, l.GetEpoch()+1, timestamppb.New(now.Add(ttl)), address, durationpb.New(ttl)
	t.leaderEvent(l, now, "elected", c)
	return l, true, nil
}

// Resign ends candidate's leadership of owner's election name won with
// epoch; anything else (another holder, another epoch, no election) is a
// no-op. The epoch counter stays.
func (t *Table) Resign(owner, name, candidate string, epoch int64, now time.Time, c *Changes) {
	l := t.elections[ElectionKey{owner, name}]
	if l == nil || l.GetHolder() != candidate || l.GetEpoch() != epoch {
		return
	}
	l.Holder, l.Expires, l.Address = "", nil, ""
	t.leaderEvent(l, now, "resigned", c)
}

// expireLeaders ends the leaderships whose lease ran out (LEADER_CHANGED
// with reason "lease expired").
func (t *Table) expireLeaders(now time.Time, c *Changes) {
	for _, l := range t.elections {
		if l.GetHolder() != "" && !leads(l, now) {
			l.Holder, l.Expires, l.Address = "", nil, ""
			t.leaderEvent(l, now, "lease expired", c)
		}
	}
}

// Leader returns a clone of owner's election name as of now: a holder
// whose lease ended is not shown. An election nobody campaigned in has
// epoch 0.
func (t *Table) Leader(owner, name string, now time.Time) *pb.Leadership {
	l := t.elections[ElectionKey{owner, name}]
	if l == nil {
		return &pb.Leadership{Owner: owner, Election: name}
	}
	cl := proto.Clone(l).(*pb.Leadership)
	if cl.GetHolder() != "" && !leads(l, now) {
		cl.Holder, cl.Expires, cl.Address = "", nil, ""
	}
	return cl
}

// checkExpected compares a key's entry (nil: absent) with a CAS condition
// (nil: none). A key written earlier in the same batch has revision 0 and
// never matches a condition.
func checkExpected(key string, cur *pb.StateEntry, exp *int64) error {
	if exp == nil {
		return nil
	}
	switch {
	case cur == nil && *exp == 0:
		return nil
	case cur == nil:
		return errorf(Aborted, "state key %q: absent, expected revision %d", clip(key), *exp)
	case cur.GetRevision() == 0:
		return errorf(Aborted, "state key %q: written by a call committing now, expected revision %d", clip(key), *exp)
	case *exp == 0:
		return errorf(Aborted, "state key %q: revision %d, expected it absent", clip(key), cur.GetRevision())
	case cur.GetRevision() != *exp:
		return errorf(Aborted, "state key %q: revision %d, expected %d", clip(key), cur.GetRevision(), *exp)
	}
	return nil
}

func (t *Table) stateEvent(e *pb.StateEntry, deleted bool, now time.Time, c *Changes) {
	ev := event(pb.EventKind_EVENT_KIND_STATE_CHANGED, now, "")
	// The revision is the event's own: the store sets it when it reads
	// the event back.
	ev.State = &pb.StateEntry{Key: e.GetKey(), Owner: e.GetOwner(), Deleted: deleted}
	c.Events = append(c.Events, ev)
}

// StatePut writes owner's key r.key (validated): fenced (checkFence),
// conditional (r.expected_revision: Aborted on a mismatch), within
// MaxStateKeys and MaxStateBytes (ResourceExhausted). Refusals change
// nothing. The entry's revision is set when the batch commits.
func (t *Table) StatePut(owner string, r *pb.StatePutRequest, now time.Time, c *Changes) error {
	if err := t.checkFence(owner, r.GetFence()); err != nil {
		return err
	}
	os := t.ownerState(owner)
	cur := os.entries[r.GetKey()]
	if err := checkExpected(r.GetKey(), cur, r.ExpectedRevision); err != nil {
		return err
	}
	if cur == nil && len(os.entries) >= MaxStateKeys {
		return errorf(ResourceExhausted, "key: principal %q holds %d state keys, the limit is %d", owner, len(os.entries), MaxStateKeys)
	}
	size := os.bytes - int64(len(cur.GetValue())) + int64(len(r.GetValue()))
	if size > MaxStateBytes {
		return errorf(ResourceExhausted, "value: principal %q would hold %d bytes of state, the limit is %d", owner, size, MaxStateBytes)
	}
	if n := int64(len(r.GetValue())); c.stateBytes > 0 && c.stateBytes+n > MaxBatchStateBytes {
		return errorf(Unavailable, "value: the kernel's current transaction already writes %d bytes of state; retry", c.stateBytes)
	}
	e := &pb.StateEntry{Key: r.GetKey(), Value: slices.Clone(r.GetValue()), Owner: owner, Secret: r.GetSecret()}
	os.entries[e.Key], os.bytes = e, size
	c.stateBytes += int64(len(e.Value))
	c.State[StateKey{owner, e.Key}] = e
	t.stateEvent(e, false, now, c)
	return nil
}

// StateDelete deletes owner's key r.key, with the conditions of StatePut.
// Deleting an absent key without a condition changes nothing.
func (t *Table) StateDelete(owner string, r *pb.StateDeleteRequest, now time.Time, c *Changes) error {
	if err := t.checkFence(owner, r.GetFence()); err != nil {
		return err
	}
	os := t.ownerState(owner)
	cur := os.entries[r.GetKey()]
	if err := checkExpected(r.GetKey(), cur, r.ExpectedRevision); err != nil {
		return err
	}
	if cur == nil {
		return nil
	}
	delete(os.entries, r.GetKey())
	os.bytes -= int64(len(cur.GetValue()))
	c.State[StateKey{owner, r.GetKey()}] = nil
	t.stateEvent(cur, true, now, c)
	return nil
}

// StateGet returns a clone of owner's key, or nil.
func (t *Table) StateGet(owner, key string) *pb.StateEntry {
	if os := t.state[owner]; os != nil {
		if e := os.entries[key]; e != nil {
			return proto.Clone(e).(*pb.StateEntry)
		}
	}
	return nil
}

// StateList returns clones of owner's keys under prefix, in key order,
// without values when keysOnly.
func (t *Table) StateList(owner, prefix string, keysOnly bool) []*pb.StateEntry {
	os := t.state[owner]
	if os == nil {
		return nil
	}
	keys := make([]string, 0, len(os.entries))
	for k := range os.entries {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	out := make([]*pb.StateEntry, len(keys))
	for i, k := range keys {
		e := os.entries[k]
		if keysOnly {
			out[i] = &pb.StateEntry{Key: e.GetKey(), Revision: e.GetRevision(), Owner: e.GetOwner()}
		} else {
			out[i] = proto.Clone(e).(*pb.StateEntry)
		}
	}
	return out
}

// StateUsage returns the number of keys and bytes of values owner holds.
func (t *Table) StateUsage(owner string) (keys int, bytes int64) {
	if os := t.state[owner]; os != nil {
		return len(os.entries), os.bytes
	}
	return 0, 0
}

// Campaign runs req's campaign (see Table.Campaign) in the election of
// p, or of req.owner for an operator. The response's leader is the
// election after the call; elected says whether the candidate leads.
func (k *Kernel) Campaign(ctx context.Context, p Principal, req *pb.CampaignRequest) (*pb.CampaignResponse, error) {
	owner, err := scope(p, req.GetOwner())
	if err != nil {
		return nil, err
	}
	name, ttl, err := ValidateCampaign(req)
	if err != nil {
		return nil, err
	}
	resp := &pb.CampaignResponse{}
	rev, err := k.do(ctx, func(t *Table, c *Changes, now time.Time) error {
		l, elected, err := t.Campaign(owner, name, req.GetCandidate(), req.GetAddress(), ttl, now, c)
		if err == nil {
			resp.Leader, resp.Elected = proto.Clone(l).(*pb.Leadership), elected
		}
		return err
	}, nil)
	if err != nil {
		return nil, err
	}
	resp.Revision = rev
	return resp, nil
}

// Resign gives up req.candidate's leadership won with req.epoch; see
// Table.Resign. Idempotent.
func (k *Kernel) Resign(ctx context.Context, p Principal, req *pb.ResignRequest) (*pb.ResignResponse, error) {
	owner, err := scope(p, req.GetOwner())
	if err != nil {
		return nil, err
	}
	name, err := electionName("election", req.GetElection())
	if err != nil {
		return nil, err
	}
	if err := validateCandidate(req.GetCandidate()); err != nil {
		return nil, err
	}
	if req.GetEpoch() < 1 {
		return nil, fieldError("epoch", "must be at least 1 (the epoch Campaign won), got %d", req.GetEpoch())
	}
	rev, err := k.do(ctx, func(t *Table, c *Changes, now time.Time) error {
		t.Resign(owner, name, req.GetCandidate(), req.GetEpoch(), now, c)
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	return &pb.ResignResponse{Revision: rev}, nil
}

// Leader returns an election's current state; see Table.Leader.
func (k *Kernel) Leader(_ context.Context, p Principal, req *pb.LeaderRequest) (*pb.LeaderResponse, error) {
	owner, err := scope(p, req.GetOwner())
	if err != nil {
		return nil, err
	}
	name, err := electionName("election", req.GetElection())
	if err != nil {
		return nil, err
	}
	var resp *pb.LeaderResponse
	k.view.read(func(t *Table) {
		resp = &pb.LeaderResponse{Leader: t.Leader(owner, name, k.cfg.Clock()), Revision: t.Revision()}
	})
	return resp, nil
}

// StateGet reads one key of p's state (or, for an operator, req.owner's);
// an absent key is NotFound.
func (k *Kernel) StateGet(_ context.Context, p Principal, req *pb.StateGetRequest) (*pb.StateGetResponse, error) {
	owner, err := scope(p, req.GetOwner())
	if err != nil {
		return nil, err
	}
	if err := validateStateKey("key", req.GetKey(), true); err != nil {
		return nil, err
	}
	var e *pb.StateEntry
	var rev int64
	k.view.read(func(t *Table) { e, rev = t.StateGet(owner, req.GetKey()), t.Revision() })
	if e == nil {
		return nil, errorf(NotFound, "key: no state key %q", clip(req.GetKey()))
	}
	return &pb.StateGetResponse{Entry: e, Revision: rev}, nil
}

// StatePut writes a key of p's state (or req.owner's); see
// Table.StatePut. The response's revision is the key's new revision.
func (k *Kernel) StatePut(ctx context.Context, p Principal, req *pb.StatePutRequest) (*pb.StatePutResponse, error) {
	owner, err := scope(p, req.GetOwner())
	if err != nil {
		return nil, err
	}
	if err := ValidateStatePut(req); err != nil {
		return nil, err
	}
	if req.GetSecret() && k.cfg.Sealer == nil {
		return nil, errNoKEK("secret") // the store seals it (internal/store)
	}
	rev, err := k.do(ctx, func(t *Table, c *Changes, now time.Time) error {
		return t.StatePut(owner, req, now, c)
	}, nil)
	if err != nil {
		return nil, err
	}
	return &pb.StatePutResponse{Revision: rev}, nil
}

// StateDelete deletes a key of p's state (or req.owner's); see
// Table.StateDelete.
func (k *Kernel) StateDelete(ctx context.Context, p Principal, req *pb.StateDeleteRequest) (*pb.StateDeleteResponse, error) {
	owner, err := scope(p, req.GetOwner())
	if err != nil {
		return nil, err
	}
	if err := ValidateStateDelete(req); err != nil {
		return nil, err
	}
	rev, err := k.do(ctx, func(t *Table, c *Changes, now time.Time) error {
		return t.StateDelete(owner, req, now, c)
	}, nil)
	if err != nil {
		return nil, err
	}
	return &pb.StateDeleteResponse{Revision: rev}, nil
}

// StateList lists the keys of p's state (or req.owner's) under
// req.prefix, in key order.
func (k *Kernel) StateList(_ context.Context, p Principal, req *pb.StateListRequest) (*pb.StateListResponse, error) {
	owner, err := scope(p, req.GetOwner())
	if err != nil {
		return nil, err
	}
	if err := validateStateKey("prefix", req.GetPrefix(), false); err != nil {
		return nil, err
	}
	var resp *pb.StateListResponse
	k.view.read(func(t *Table) {
		resp = &pb.StateListResponse{Entries: t.StateList(owner, req.GetPrefix(), req.GetKeysOnly()), Revision: t.Revision()}
	})
	return resp, nil
}
