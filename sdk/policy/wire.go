package policy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// Wire format, ABI version 2 (docs/policy-abi.md is the reference). All
// integers little-endian; every section follows the previous one with no
// gap; record sizes are fixed; strings are (offset, length) references into
// the strings section, and equal strings share one copy.
const (
	batchMagic    = 0x32504344 // "DCP2"
	decisionMagic = 0x324f4344 // "DCO2"

	resSize            = 32 // i64 millicpu, mem, disk, ports
	batchHeaderSize    = 96
	agentSize          = 80
	requestSize        = 56
	roleSize           = 80
	allocationSize     = 48
	constraintSize     = 24
	labelSize          = 16
	refSize            = 8
	decisionHeaderSize = 24

	// flagAgentsUnchanged is bit 0 of the batch header's flags: the
	// agents, their labels and their strings are those of the previous
	// batch sent to the same instance, but for the free resources.
	flagAgentsUnchanged = 1 << 0

	// StatusOK and StatusError are a Decision's status word.
	StatusOK    = 0
	StatusError = 1
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed policy wire data")

var le = binary.LittleEndian

// batchLayout is the section sizes of an encoded batch.
type batchLayout struct {
	agents, requests, roles, allocations, constraints, labels, refs, strings uint64
}

func (l batchLayout) offsets() (agents, requests, roles, allocations, constraints, labels, refs, strs, end uint64) {
	agents = batchHeaderSize
	requests = agents + l.agents*agentSize
	roles = requests + l.requests*requestSize
	allocations = roles + l.roles*roleSize
	constraints = allocations + l.allocations*allocationSize
	labels = constraints + l.constraints*constraintSize
	refs = labels + l.labels*labelSize
	strs = refs + l.refs*refSize
	end = strs + l.strings
	return
}

// Encoder encodes batches, reusing its buffers between calls. It is not
// safe for concurrent use.
type Encoder struct {
	buf  []byte
	strs []byte // the strings section: the agents' strings first
	// agentIdx indexes the agents' strings (strs[:agentStrs]), extraIdx
	// the others of the current batch.
	agentIdx, extraIdx map[string]uint32
	agentStrs          int
	// The encoded agents and labels of the last batch, for
	// EncodeBatchSameAgents.
	agentRecs, labelRecs []byte
	haveAgents           bool
}

// EncodeBatch encodes b and returns the bytes, valid until the next call.
// The header's agents-unchanged flag is clear.
func (e *Encoder) EncodeBatch(b *Batch) []byte {
	e.encodeAgents(b)
	return e.encode(b, 0)
}

// EncodeBatchSameAgents returns what EncodeBatch(b) would, for a batch
// whose agents are those of the batch of e's previous call (the same
// number, ids, labels and totals, in the same order) but for their free
// resources, which may differ. It reuses the encoding of the agents, their
// labels and strings and only rewrites the free resources: O(agents)
// stores instead of a string lookup per id, label key and value. The
// caller vouches for the agents being the same; without a previous call,
// or with another number of agents, it is EncodeBatch.
//
// The bytes differ from EncodeBatch's in one bit: the header's
// agents-unchanged flag is set, so a caller must send the result to the
// instance that received the previous batch of e (docs/policy-abi.md,
// AGENTS_UNCHANGED).
func (e *Encoder) EncodeBatchSameAgents(b *Batch) []byte {
	if !e.haveAgents || len(e.agentRecs) != len(b.Agents)*agentSize {
		return e.EncodeBatch(b)
	}
	for i := range b.Agents {
		putRes(e.agentRecs[i*agentSize+resSize:], b.Agents[i].Free)
	}
	return e.encode(b, flagAgentsUnchanged)
}

// encodeAgents encodes b's agents and labels into e.agentRecs and
// e.labelRecs, and their strings into e.strs, from scratch.
func (e *Encoder) encodeAgents(b *Batch) {
	if e.agentIdx == nil {
		e.agentIdx = map[string]uint32{}
	}
	clear(e.agentIdx)
	e.strs, e.agentStrs = e.strs[:0], 0
	nl := 0
	for i := range b.Agents {
		nl += len(b.Agents[i].Labels)
	}
	e.agentRecs = resizeBytes(e.agentRecs, len(b.Agents)*agentSize)
	e.labelRecs = resizeBytes(e.labelRecs, nl*labelSize)
	labelAt := 0
	for i := range b.Agents {
		a := &b.Agents[i]
		p := e.agentRecs[i*agentSize:]
		putRes(p[0:], a.Total)
		putRes(p[32:], a.Free)
		e.putRef(p[64:], a.ID, e.agentIdx)
		le.PutUint32(p[72:], uint32(labelAt))
		le.PutUint32(p[76:], uint32(len(a.Labels)))
		for _, lb := range a.Labels {
			q := e.labelRecs[labelAt*labelSize:]
			e.putRef(q[0:], lb.Key, e.agentIdx)
			e.putRef(q[refSize:], lb.Value, e.agentIdx)
			labelAt++
		}
	}
	e.agentStrs, e.haveAgents = len(e.strs), true
}

func resizeBytes(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// encode encodes b around the agents and labels already encoded, with
// the header flags.
func (e *Encoder) encode(b *Batch, flags uint32) []byte {
	if e.extraIdx == nil {
		e.extraIdx = map[string]uint32{}
	}
	clear(e.extraIdx)
	e.strs = e.strs[:e.agentStrs]
	var l batchLayout
	l.agents, l.requests, l.roles, l.allocations = uint64(len(b.Agents)), uint64(len(b.Requests)), uint64(len(b.Roles)), uint64(len(b.Allocations))
	l.labels = uint64(len(e.labelRecs) / labelSize)
	for i := range b.Requests {
		l.constraints += uint64(len(b.Requests[i].Constraints))
		for j := range b.Requests[i].Constraints {
			l.refs += uint64(len(b.Requests[i].Constraints[j].Values))
		}
	}
	agentsOff, reqOff, rolesOff, allocOff, consOff, labelsOff, refsOff, strsOff, _ := l.offsets()
	size := int(strsOff)
	if cap(e.buf) < size {
		e.buf = make([]byte, size, size+size/4)
	}
	buf := e.buf[:size]
	clear(buf[:batchHeaderSize])
	le.PutUint32(buf[0:], batchMagic)
	le.PutUint32(buf[4:], ABIVersion)
	le.PutUint64(buf[8:], b.Seed)
	le.PutUint32(buf[16:], uint32(l.agents))
	le.PutUint32(buf[20:], uint32(l.requests))
	le.PutUint32(buf[24:], uint32(l.roles))
	le.PutUint32(buf[28:], uint32(l.allocations))
	le.PutUint32(buf[32:], uint32(l.constraints))
	le.PutUint32(buf[36:], uint32(l.refs))
	le.PutUint32(buf[40:], uint32(l.labels))
	le.PutUint32(buf[48:], flags)
	putRes(buf[64:], b.NoRoleUsage)
	copy(buf[agentsOff:reqOff], e.agentRecs)
	copy(buf[labelsOff:refsOff], e.labelRecs)

	consAt, refAt := consOff, refsOff
	for i := range b.Requests {
		r := &b.Requests[i]
		p := buf[reqOff+uint64(i)*requestSize:]
		putRes(p[0:], r.Resources)
		le.PutUint32(p[32:], uint32(r.Priority))
		le.PutUint32(p[36:], r.Role)
		le.PutUint32(p[40:], r.Group)
		le.PutUint32(p[44:], uint32((consAt-consOff)/constraintSize))
		le.PutUint32(p[48:], uint32(len(r.Constraints)))
		le.PutUint32(p[52:], r.GangMin)
		for _, c := range r.Constraints {
			q := buf[consAt:]
			le.PutUint32(q[0:], uint32(c.Op))
			le.PutUint32(q[4:], uint32(len(c.Values)))
			e.putRef(q[8:], c.Label, e.extraIdx)
			le.PutUint32(q[16:], uint32((refAt-refsOff)/refSize))
			le.PutUint32(q[20:], 0)
			for _, v := range c.Values {
				e.putRef(buf[refAt:], v, e.extraIdx)
				refAt += refSize
			}
			consAt += constraintSize
		}
	}
	for i := range b.Roles {
		r := &b.Roles[i]
		p := buf[rolesOff+uint64(i)*roleSize:]
		e.putRef(p[0:], r.Name, e.extraIdx)
		le.PutUint64(p[8:], math.Float64bits(r.Weight))
		putRes(p[16:], r.Usage)
		putRes(p[48:], r.Quota)
	}
	for i := range b.Allocations {
		a := &b.Allocations[i]
		p := buf[allocOff+uint64(i)*allocationSize:]
		le.PutUint32(p[0:], a.Agent)
		le.PutUint32(p[4:], a.Role)
		le.PutUint32(p[8:], uint32(a.Priority))
		le.PutUint32(p[12:], 0)
		putRes(p[16:], a.Resources)
	}
	le.PutUint32(buf[44:], uint32(len(e.strs)))
	e.buf = append(buf, e.strs...)
	return e.buf
}

// putRef writes a reference to s, adding s to the string table once:
// agents' strings are looked up in e.agentIdx, then in idx, where a new
// string is added.
func (e *Encoder) putRef(p []byte, s string, idx map[string]uint32) {
	off, ok := e.agentIdx[s]
	if !ok {
		if off, ok = idx[s]; !ok {
			off = uint32(len(e.strs))
			e.strs = append(e.strs, s...)
			idx[s] = off
		}
	}
	le.PutUint32(p[0:], off)
	le.PutUint32(p[4:], uint32(len(s)))
}

func putRes(p []byte, r Resources) {
	le.PutUint64(p[0:], uint64(r.MilliCPU))
	le.PutUint64(p[8:], uint64(r.Mem))
	le.PutUint64(p[16:], uint64(r.Disk))
	le.PutUint64(p[24:], uint64(r.Ports))
}

// Decoder decodes batches, reusing its storage between calls: a decoded
// Batch is valid until the next DecodeBatch and only while the input buffer
// is unchanged (its strings point into it). It is not safe for concurrent
// use.
//
// It keeps the agents it decoded: when a batch's header says the agents
// are unchanged (and their counts agree), it only reads their free
// resources and sets Batch.AgentsUnchanged. Their strings then point into
// the Decoder's own copy of the agents' strings, as do the batch's other
// strings that lie there, so that equal strings still share one copy.
type Decoder struct {
	b      Batch
	labels []Label
	cons   []Constraint
	vals   []string
	// agentStrs is a copy of the start of the strings section of the
	// last batch decoded in full, up to the end of the last string an
	// agent or label refers to.
	agentStrs []byte
	// haveAgents: b.Agents and labels are that batch's agents, viewing
	// agentStrs.
	haveAgents bool
}

// DecodeBatch checks and decodes an encoded batch. Every count, index and
// reference is bounds-checked: malformed input is an error wrapping
// ErrMalformed, never a panic.
func (d *Decoder) DecodeBatch(buf []byte) (*Batch, error) {
	if len(buf) < batchHeaderSize {
		return nil, fmt.Errorf("%w: batch of %d bytes is shorter than its header", ErrMalformed, len(buf))
	}
	if m := le.Uint32(buf[0:]); m != batchMagic {
		if m&0xffffff == batchMagic&0xffffff {
			return nil, fmt.Errorf("%w: batch magic %q is another ABI version (this SDK speaks %d)", ErrMalformed, buf[:4], ABIVersion)
		}
		return nil, fmt.Errorf("%w: bad batch magic %#x", ErrMalformed, m)
	}
	if v := le.Uint32(buf[4:]); v != ABIVersion {
		return nil, fmt.Errorf("%w: batch ABI version %d, want %d", ErrMalformed, v, ABIVersion)
	}
	l := batchLayout{
		agents: uint64(le.Uint32(buf[16:])), requests: uint64(le.Uint32(buf[20:])), roles: uint64(le.Uint32(buf[24:])),
		allocations: uint64(le.Uint32(buf[28:])), constraints: uint64(le.Uint32(buf[32:])), refs: uint64(le.Uint32(buf[36:])),
		labels: uint64(le.Uint32(buf[40:])), strings: uint64(le.Uint32(buf[44:])),
	}
	agentsOff, reqOff, rolesOff, allocOff, consOff, labelsOff, refsOff, strsOff, end := l.offsets()
	if end != uint64(len(buf)) {
		d.haveAgents = false
		return nil, fmt.Errorf("%w: counts describe %d bytes, batch has %d", ErrMalformed, end, len(buf))
	}
	flags := le.Uint32(buf[48:])
	reuse := flags&flagAgentsUnchanged != 0 && d.haveAgents && len(d.b.Agents) == int(l.agents) &&
		len(d.labels) == int(l.labels) && len(d.agentStrs) <= int(l.strings)
	d.haveAgents = false // until this batch decodes
	// The loops below are written out by hand, without helper calls that
	// the compiler would not inline: in a Go wasm guest every call costs far
	// more than the loads, and decoding runs on every cycle. Strings are
	// views into buf, not copies (see Decoder).
	strs := buf[strsOff:]
	nStrs := uint64(len(strs))
	b := &d.b
	b.Seed = le.Uint64(buf[8:])
	b.NoRoleUsage = Resources{i64(buf, 64), i64(buf, 72), i64(buf, 80), i64(buf, 88)}
	b.AgentsUnchanged = reuse
	b.Requests = grow(b.Requests, int(l.requests))
	b.Roles = grow(b.Roles, int(l.roles))
	b.Allocations = grow(b.Allocations, int(l.allocations))
	d.cons = grow(d.cons, int(l.constraints))
	d.vals = grow(d.vals, int(l.refs))

	if reuse {
		for i, p := 0, buf[agentsOff:reqOff]; i < len(b.Agents); i, p = i+1, p[agentSize:] {
			b.Agents[i].Free = Resources{i64(p, 32), i64(p, 40), i64(p, 48), i64(p, 56)}
		}
	} else if err := d.decodeAgents(buf[agentsOff:reqOff], buf[labelsOff:refsOff], strs, l); err != nil {
		return nil, err
	}
	// Strings within the agents' part of the strings section view the
	// copy, like the agents' own: equal strings keep one address.
	shared := d.agentStrs
	nShared := uint64(len(shared))
	for i, p := 0, buf[refsOff:strsOff]; i < len(d.vals); i, p = i+1, p[refSize:] {
		o, n := u32(p, 0), u32(p, 4)
		switch e := uint64(o) + uint64(n); {
		case e <= nShared:
			d.vals[i] = view(shared, o, n)
		case e <= nStrs:
			d.vals[i] = view(strs, o, n)
		default:
			return nil, errString2(i, "constraint value")
		}
	}
	for i, p := 0, buf[consOff:labelsOff]; i < len(d.cons); i, p = i+1, p[constraintSize:] {
		c := &d.cons[i]
		c.Op = Op(u32(p, 0))
		if c.Op < OpEquals || c.Op > OpIn {
			return nil, fmt.Errorf("%w: constraint %d has op %d", ErrMalformed, i, c.Op)
		}
		lo, ln, vs, vn := u32(p, 8), u32(p, 12), u32(p, 16), u32(p, 4)
		if uint64(lo)+uint64(ln) > nStrs || uint64(vs)+uint64(vn) > l.refs {
			return nil, errString2(i, "constraint")
		}
		if uint64(lo)+uint64(ln) <= nShared {
			c.Label = view(shared, lo, ln)
		} else {
			c.Label = view(strs, lo, ln)
		}
		c.Values = d.vals[vs : vs+vn : vs+vn]
	}
	for i, p := 0, buf[reqOff:rolesOff]; i < len(b.Requests); i, p = i+1, p[requestSize:] {
		r := &b.Requests[i]
		r.Resources = Resources{i64(p, 0), i64(p, 8), i64(p, 16), i64(p, 24)}
		r.Priority, r.Role, r.Group, r.GangMin = int32(u32(p, 32)), u32(p, 36), u32(p, 40), u32(p, 52)
		cs, cn := u32(p, 44), u32(p, 48)
		if (r.Role != NoRole && uint64(r.Role) >= l.roles) || uint64(cs)+uint64(cn) > l.constraints {
			return nil, errString2(i, "request")
		}
		r.Constraints = d.cons[cs : cs+cn : cs+cn]
	}
	for i, p := 0, buf[rolesOff:allocOff]; i < len(b.Roles); i, p = i+1, p[roleSize:] {
		r := &b.Roles[i]
		no, nn := u32(p, 0), u32(p, 4)
		if uint64(no)+uint64(nn) > nStrs {
			return nil, errString2(i, "role")
		}
		if uint64(no)+uint64(nn) <= nShared {
			r.Name = view(shared, no, nn)
		} else {
			r.Name = view(strs, no, nn)
		}
		r.Weight = math.Float64frombits(uint64(i64(p, 8)))
		r.Usage = Resources{i64(p, 16), i64(p, 24), i64(p, 32), i64(p, 40)}
		r.Quota = Resources{i64(p, 48), i64(p, 56), i64(p, 64), i64(p, 72)}
	}
	for i, p := 0, buf[allocOff:consOff]; i < len(b.Allocations); i, p = i+1, p[allocationSize:] {
		a := &b.Allocations[i]
		a.Agent, a.Role, a.Priority = u32(p, 0), u32(p, 4), int32(u32(p, 8))
		a.Resources = Resources{i64(p, 16), i64(p, 24), i64(p, 32), i64(p, 40)}
		if uint64(a.Agent) >= l.agents || (a.Role != NoRole && uint64(a.Role) >= l.roles) {
			return nil, errString2(i, "allocation")
		}
	}
	d.haveAgents = true
	return b, nil
}

// decodeAgents decodes the agents and labels sections in full, copying
// the part of the strings section they refer to into d.agentStrs.
func (d *Decoder) decodeAgents(agents, labels, strs []byte, l batchLayout) error {
	b := &d.b
	b.Agents = grow(b.Agents, int(l.agents))
	d.labels = grow(d.labels, int(l.labels))
	nStrs := uint64(len(strs))
	// First the bounds, and how far the agents' strings reach.
	var reach uint64
	for i, p := 0, labels; i < len(d.labels); i, p = i+1, p[labelSize:] {
		ke, ve := uint64(u32(p, 0))+uint64(u32(p, 4)), uint64(u32(p, 8))+uint64(u32(p, 12))
		if ke > nStrs || ve > nStrs {
			return errString2(i, "label")
		}
		reach = max(reach, ke, ve)
	}
	for i, p := 0, agents; i < len(b.Agents); i, p = i+1, p[agentSize:] {
		ie := uint64(u32(p, 64)) + uint64(u32(p, 68))
		if ie > nStrs || uint64(u32(p, 72))+uint64(u32(p, 76)) > l.labels {
			return errString2(i, "agent")
		}
		reach = max(reach, ie)
	}
	d.agentStrs = append(d.agentStrs[:0], strs[:reach]...)
	shared := d.agentStrs
	for i, p := 0, labels; i < len(d.labels); i, p = i+1, p[labelSize:] {
		lb := &d.labels[i] // field by field: a struct literal with pointers costs a typedmemmove call in wasm (10x here)
		lb.Key = view(shared, u32(p, 0), u32(p, 4))
		lb.Value = view(shared, u32(p, 8), u32(p, 12))
	}
	for i, p := 0, agents; i < len(b.Agents); i, p = i+1, p[agentSize:] {
		a := &b.Agents[i]
		a.Total = Resources{i64(p, 0), i64(p, 8), i64(p, 16), i64(p, 24)}
		a.Free = Resources{i64(p, 32), i64(p, 40), i64(p, 48), i64(p, 56)}
		ls, ln := u32(p, 72), u32(p, 76)
		a.ID = view(shared, u32(p, 64), u32(p, 68))
		a.Labels = d.labels[ls : ls+ln : ls+ln]
	}
	return nil
}

// errString2 reports a record whose references fall outside the batch.
func errString2(i int, what string) error {
	return fmt.Errorf("%w: %s %d refers outside the batch", ErrMalformed, what, i)
}

// view returns strs[o:o+n] as a string without copying; the caller has
// checked the bounds.
func view(strs []byte, o, n uint32) string {
	if n == 0 {
		return ""
	}
	return unsafe.String(&strs[o], n)
}

// grow returns s resized to n, reusing its storage. It does not zero
// reused elements: the decoder assigns every field of every element, and
// clearing pointer-holding memory is slow in a wasm guest.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// EncodeDecision appends the encoding of d (or of a policy error, when
// perr is not nil) to buf and returns it.
func EncodeDecision(buf []byte, d *Decision, perr error) []byte {
	var msg string
	status := uint32(StatusOK)
	if perr != nil {
		status, msg = StatusError, perr.Error()
		d = &Decision{}
	}
	var h [decisionHeaderSize]byte
	le.PutUint32(h[0:], decisionMagic)
	le.PutUint32(h[4:], status)
	le.PutUint32(h[8:], uint32(len(d.Placements)))
	le.PutUint32(h[12:], uint32(len(d.Revocations)))
	le.PutUint32(h[16:], uint32(len(d.Unplaced)))
	le.PutUint32(h[20:], uint32(len(msg)))
	buf = append(buf, h[:]...)
	for _, p := range d.Placements {
		buf = le.AppendUint32(buf, p.Request)
		buf = le.AppendUint32(buf, p.Agent)
	}
	for _, r := range d.Revocations {
		buf = le.AppendUint32(buf, r)
	}
	for _, u := range d.Unplaced {
		buf = le.AppendUint32(buf, u.Request)
		buf = le.AppendUint32(buf, uint32(u.Verdict))
	}
	return append(buf, msg...)
}

// PolicyError is a policy's own report of failure, decoded from a
// Decision with StatusError.
type PolicyError struct{ Msg string }

func (e *PolicyError) Error() string { return "policy error: " + e.Msg }

// DecodeDecision checks and decodes a policy's answer into d (reusing its
// storage). A policy that reported failure yields a *PolicyError.
// Malformed bytes yield an error wrapping ErrMalformed; indices are not
// checked against the batch here (the kernel validates every placement).
func DecodeDecision(buf []byte, d *Decision) error {
	d.Reset()
	if len(buf) < decisionHeaderSize {
		return fmt.Errorf("%w: decision of %d bytes is shorter than its header", ErrMalformed, len(buf))
	}
	if m := le.Uint32(buf[0:]); m != decisionMagic {
		if m&0xffffff == decisionMagic&0xffffff {
			return fmt.Errorf("%w: decision magic %q is another ABI version (this kernel speaks %d)", ErrMalformed, buf[:4], ABIVersion)
		}
		return fmt.Errorf("%w: bad decision magic %#x", ErrMalformed, m)
	}
	status := le.Uint32(buf[4:])
	np, nr, nu, nm := uint64(le.Uint32(buf[8:])), uint64(le.Uint32(buf[12:])), uint64(le.Uint32(buf[16:])), uint64(le.Uint32(buf[20:]))
	if want := decisionHeaderSize + np*8 + nr*4 + nu*8 + nm; want != uint64(len(buf)) {
		return fmt.Errorf("%w: counts describe %d bytes, decision has %d", ErrMalformed, want, len(buf))
	}
	p := buf[decisionHeaderSize:]
	switch status {
	case StatusOK:
	case StatusError:
		return &PolicyError{Msg: string(p[np*8+nr*4+nu*8:])}
	default:
		return fmt.Errorf("%w: unknown status %d", ErrMalformed, status)
	}
	for i := uint64(0); i < np; i++ {
		d.Placements = append(d.Placements, Placement{le.Uint32(p[i*8:]), le.Uint32(p[i*8+4:])})
	}
	p = p[np*8:]
	for i := uint64(0); i < nr; i++ {
		d.Revocations = append(d.Revocations, le.Uint32(p[i*4:]))
	}
	p = p[nr*4:]
	for i := uint64(0); i < nu; i++ {
		v := Verdict(le.Uint32(p[i*8+4:]))
		if v != NotNow && v != Never {
			return fmt.Errorf("%w: unplaced verdict %d", ErrMalformed, v)
		}
		d.Unplaced = append(d.Unplaced, Unplaced{le.Uint32(p[i*8:]), v})
	}
	return nil
}
