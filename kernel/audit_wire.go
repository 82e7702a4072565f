package kernel

import (
	"google.golang.org/protobuf/encoding/protowire"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// AuditOmit names the AuditRecord fields AppendAuditRecord leaves out.
type AuditOmit uint16

// The fields AppendAuditRecord can leave out.
const (
	OmitSeq AuditOmit = 1 << iota
	OmitTime
	OmitKernel
	OmitPrevHash
	OmitHash
	OmitPrincipal
	OmitRole
	OmitCall
	OmitCode
	// TagHash writes the hash's first AuditHashTag bytes only (with
	// OmitHash, nothing).
	TagHash
)

// AuditHashTag is how many bytes of a record's hash a store may keep
// when the full hash can be recomputed from the chain and a later record
// or batch holds a full one: enough to name which record was altered,
// while the full hashes carry the chain's strength.
const AuditHashTag = 4

// AppendAuditRecord appends to b the deterministic protobuf encoding of r
// (what proto.MarshalOptions{Deterministic: true} produces: the set fields
// in field-number order, r's unknown fields last) without the fields omit
// names, and returns the extended buffer.
//
// The trail's chain hash (AuditHash) and the store's batch encoding use it
// on the kernel loop's serial path, where proto.Marshal and proto.Clone
// per record cost a tenth of a group-committed call's time
// (docs/benchmarks.md, "Audit trail"); it allocates nothing beyond b's
// growth. TestAppendAuditRecord and FuzzAppendAuditRecord hold it to
// proto.Marshal's bytes.
func AppendAuditRecord(b []byte, r *pb.AuditRecord, omit AuditOmit) []byte {
	if v := r.GetSeq(); v != 0 && omit&OmitSeq == 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, v)
	}
	if t := r.GetTime(); t != nil && omit&OmitTime == 0 {
		unk := t.ProtoReflect().GetUnknown()
		n := len(unk)
		if t.Seconds != 0 {
			n += 1 + protowire.SizeVarint(uint64(t.Seconds))
		}
		if t.Nanos != 0 {
			n += 1 + protowire.SizeVarint(uint64(int64(t.Nanos)))
		}
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(n))
		if t.Seconds != 0 {
			b = protowire.AppendTag(b, 1, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(t.Seconds))
		}
		if t.Nanos != 0 {
			b = protowire.AppendTag(b, 2, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(int64(t.Nanos)))
		}
		b = append(b, unk...)
	}
	if omit&OmitPrincipal == 0 {
		b = appendString(b, 3, r.GetPrincipal())
	}
	if omit&OmitRole == 0 {
		b = appendString(b, 4, r.GetRole())
	}
	if omit&OmitCall == 0 {
		b = appendString(b, 5, r.GetCall())
	}
	for _, t := range r.GetTargets() { // repeated: an empty element is encoded too
		b = protowire.AppendTag(b, 6, protowire.BytesType)
		b = protowire.AppendString(b, t)
	}
	if omit&OmitCode == 0 {
		b = appendString(b, 7, r.GetCode())
	}
	b = appendString(b, 8, r.GetMessage())
	if omit&OmitKernel == 0 {
		b = appendString(b, 9, r.GetKernel())
	}
	if omit&OmitPrevHash == 0 {
		b = appendBytes(b, 10, r.GetPrevHash())
	}
	if h := r.GetHash(); omit&OmitHash == 0 {
		if omit&TagHash != 0 && len(h) > AuditHashTag {
			h = h[:AuditHashTag]
		}
		b = appendBytes(b, 11, h)
	}
	return append(b, r.ProtoReflect().GetUnknown()...)
}

// appendString appends a proto3 string field, left out when empty.
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendBytes appends a proto3 bytes field, left out when empty.
func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}
