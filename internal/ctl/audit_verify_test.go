package ctl

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// chain makes n chained records after anchor.
func chain(anchor *syscallsv1.AuditAnchor, n int) []*syscallsv1.AuditRecord {
	seq, prev := anchor.GetSeq(), anchor.GetHash()
	var recs []*syscallsv1.AuditRecord
	for i := range n {
		seq++
		r := &syscallsv1.AuditRecord{Seq: seq, Time: timestamppb.New(testNow), Principal: "ops", Role: "operator", Call: "Launch",
			Targets: []string{"a-" + string(rune('0'+i))}, Code: "ok", PrevHash: prev}
		r.Hash = auditHash(r)
		prev = r.Hash
		recs = append(recs, r)
	}
	return recs
}

func TestVerifyAuditChain(t *testing.T) {
	anchor := &syscallsv1.AuditAnchor{Seq: 10, Hash: []byte("anchor-hash")}
	tests := []struct {
		name   string
		anchor *syscallsv1.AuditAnchor
		edit   func([]*syscallsv1.AuditRecord) []*syscallsv1.AuditRecord
		want   string // "" is intact
	}{
		{name: "intact", edit: func(r []*syscallsv1.AuditRecord) []*syscallsv1.AuditRecord { return r }},
		{name: "intact after an anchor", anchor: anchor, edit: func(r []*syscallsv1.AuditRecord) []*syscallsv1.AuditRecord { return r }},
		{name: "empty", edit: func([]*syscallsv1.AuditRecord) []*syscallsv1.AuditRecord { return nil }},
		{name: "altered code", edit: func(r []*syscallsv1.AuditRecord) []*syscallsv1.AuditRecord {
			r[2].Code = "permission_denied"
			return r
		}, want: "record 3 was altered: stored hash"},
		{name: "altered and rehashed", edit: func(r []*syscallsv1.AuditRecord) []*syscallsv1.AuditRecord {
			r[2].Principal = "someone-else"
			r[2].Hash = auditHash(r[2])
			return r
		}, want: "record 4 does not follow record 3"},
		{name: "removed", edit: func(r []*syscallsv1.AuditRecord) []*syscallsv1.AuditRecord {
			return append(r[:1], r[2:]...)
		}, want: "records 2 to 2 are missing"},
		{name: "removed and renumbered", edit: func(r []*syscallsv1.AuditRecord) []*syscallsv1.AuditRecord {
			r = append(r[:1], r[2:]...)
			for i, x := range r {
				x.Seq = uint64(i + 1)
				x.Hash = auditHash(x)
			}
			return r
		}, want: "record 2 does not follow record 1"},
		{name: "first removed", edit: func(r []*syscallsv1.AuditRecord) []*syscallsv1.AuditRecord { return r[1:] },
			want: "records 1 to 1 are missing"},
		{name: "duplicated", edit: func(r []*syscallsv1.AuditRecord) []*syscallsv1.AuditRecord {
			return append(r[:2], append([]*syscallsv1.AuditRecord{proto.Clone(r[1]).(*syscallsv1.AuditRecord)}, r[2:]...)...)
		}, want: "record 2 appears twice"},
		{name: "undecodable", edit: func(r []*syscallsv1.AuditRecord) []*syscallsv1.AuditRecord {
			r[1] = &syscallsv1.AuditRecord{Seq: 2, Code: "corrupt", Message: "stored record does not decode"}
			return r
		}, want: "record 2 was altered: stored record does not decode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := tt.edit(chain(tt.anchor, 5))
			sum, err := VerifyAuditChain(tt.anchor, recs)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("intact chain: %v", err)
			case tt.want == "" && sum.Records != len(recs):
				t.Fatalf("verified %d records, want %d", sum.Records, len(recs))
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// FuzzVerifyAuditChain: the verifier reads records from outside (the
// store): arbitrary records never make it panic, and a chain it accepts
// is one whose links it checked.
func FuzzVerifyAuditChain(f *testing.F) {
	for _, r := range chain(nil, 3) {
		b, _ := proto.Marshal(r)
		f.Add(b, b, uint64(0), []byte(nil))
	}
	f.Add([]byte{0xff, 0x01}, []byte{}, uint64(7), []byte("x"))
	f.Fuzz(func(t *testing.T, a, b []byte, anchorSeq uint64, anchorHash []byte) {
		var recs []*syscallsv1.AuditRecord
		for _, raw := range [][]byte{a, b} {
			r := &syscallsv1.AuditRecord{}
			if proto.Unmarshal(raw, r) != nil {
				recs = append(recs, nil)
				continue
			}
			recs = append(recs, r)
		}
		anchor := &syscallsv1.AuditAnchor{Seq: anchorSeq, Hash: anchorHash}
		sum, err := VerifyAuditChain(anchor, recs)
		if err == nil && sum.Records != len(recs) {
			t.Fatalf("accepted %d of %d records", sum.Records, len(recs))
		}
	})
}
