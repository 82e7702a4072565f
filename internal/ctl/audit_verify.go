package ctl

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	"google.golang.org/protobuf/proto"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// AuditChain is what VerifyAuditChain found: how many records, their
// first and last seq, and the last record's hash.
type AuditChain struct {
	Records     int
	First, Last uint64
	Head        []byte
}

// auditHash is the chain hash of r, as the kernel computes it
// (syscalls.proto, AuditRecord): sha256(prev_hash || the deterministic
// encoding of r with hash unset). Computed here again, not imported from
// the kernel: the verifier is a second implementation of the contract.
func auditHash(r *syscallsv1.AuditRecord) []byte {
	cl := proto.Clone(r).(*syscallsv1.AuditRecord)
	cl.Hash = nil
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(cl)
	h := sha256.New()
	h.Write(r.GetPrevHash())
	h.Write(b)
	return h.Sum(nil)
}

// VerifyAuditChain checks records, in the order given, against the
// chain that starts after anchor (nil: at seq 1 with an empty hash): the
// seqs follow each other, each record's prev_hash is its predecessor's
// hash, and each stored hash is the one its content gives. It returns an
// error naming the first record at fault. records come from outside (the
// store, through a kernel): any content is handled, none panics.
func VerifyAuditChain(anchor *syscallsv1.AuditAnchor, records []*syscallsv1.AuditRecord) (AuditChain, error) {
	seq, prev := anchor.GetSeq(), anchor.GetHash()
	var sum AuditChain
	for _, r := range records {
		if r == nil {
			return sum, fmt.Errorf("record after seq %d is missing", seq)
		}
		switch {
		case r.GetSeq() == seq:
			return sum, fmt.Errorf("record %d appears twice (a record was inserted)", r.GetSeq())
		case r.GetSeq() < seq:
			return sum, fmt.Errorf("record %d comes after record %d (the trail is out of order)", r.GetSeq(), seq)
		case r.GetSeq() != seq+1:
			return sum, fmt.Errorf("records %d to %d are missing (removed from the trail)", seq+1, r.GetSeq()-1)
		}
		if r.GetCode() == "corrupt" && len(r.GetHash()) == 0 {
			return sum, fmt.Errorf("record %d was altered: %s", r.GetSeq(), r.GetMessage())
		}
		if !bytes.Equal(r.GetPrevHash(), prev) {
			return sum, fmt.Errorf("record %d does not follow record %d: its previous hash %x is not %x (a record was removed, replaced or inserted)", r.GetSeq(), seq, r.GetPrevHash(), prev)
		}
		if got := auditHash(r); !bytes.Equal(got, r.GetHash()) {
			return sum, fmt.Errorf("record %d was altered: stored hash %x, computed %x", r.GetSeq(), r.GetHash(), got)
		}
		if sum.Records == 0 {
			sum.First = r.GetSeq()
		}
		sum.Records++
		seq, prev = r.GetSeq(), r.GetHash()
		sum.Last, sum.Head = seq, prev
	}
	return sum, nil
}
