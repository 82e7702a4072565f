package e2e

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// auditRow is what the scripted session compares of a record.
type auditRow struct{ Principal, Call, Code string }

// TestAudit_ScriptedSession runs a fixed session of dcosctl commands
// against a dcosd kernel on a real etcd — mutating calls that succeed,
// one the kernel refuses, one call the door refuses for a framework
// token, one with a bad token, and reads — and checks that "dcosctl audit
// -o json" lists exactly the mutating and refused calls, in order. Then
// it alters one stored record directly in etcd, and removes another:
// "dcosctl audit --verify" names each.
func TestAudit_ScriptedSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	endpoint, etcdPKI := e.startEtcd()
	k, url := e.start("dcosd kernel", "dcos kernel: listening at ",
		append([]string{"kernel", "--data-dir", e.path("kernel"), "--listen", "127.0.0.1:0", "--etcd-endpoints", endpoint}, e.kernelPKI(etcdPKI)...)...)
	login := bootLogin.FindStringSubmatch(k.stdout.String())
	if login == nil {
		t.Fatalf("dcosd kernel did not print the bootstrap lines; stdout:\n%s", k.stdout.String())
	}
	e.mu.Lock()
	e.url, e.opToken, e.ccPath = url, login[2], e.path("xdg-config", "dcos", "config.json")
	e.mu.Unlock()
	e.mustCtl("login", url, "--token", login[2], "--ca-fingerprint", login[3])

	// The session.
	fw := strings.TrimSpace(e.mustCtl("token", "create", "--role", "framework", "--name", "spark"))
	e.mustCtl("role", "set", "batch", "--weight", "2")
	var alloc pb.AllocateResponse
	unmarshalJSON(t, e.mustCtl("--token", fw, "-o", "json", "alloc", "--cpus", "0.1", "--mem", "16Mi", "--role", "batch"), &alloc)
	if len(alloc.GetAllocations()) != 1 {
		t.Fatalf("alloc: %v", &alloc)
	}
	id := alloc.GetAllocations()[0].GetId()
	e.mustCtl("--token", fw, "allocs") // a read: not recorded
	if _, _, code := e.ctl("--token", fw, "launch", id, "--", "true"); code == 0 {
		t.Fatal("launch into a pending allocation succeeded")
	}
	if _, _, code := e.ctl("--token", fw, "role", "set", "batch", "--weight", "3"); code == 0 {
		t.Fatal("a framework set a role")
	}
	if _, _, code := e.ctl("--token", "not-a-token-0123456789abcdef", "agents"); code == 0 {
		t.Fatal("a bad token listed agents")
	}
	e.mustCtl("--token", fw, "revoke", id)
	e.mustCtl("agents") // a read: not recorded

	var got []auditRow
	var list pb.AuditListResponse
	unmarshalJSON(t, e.mustCtl("-o", "json", "audit"), &list)
	for _, r := range list.GetRecords() {
		got = append(got, auditRow{r.GetPrincipal(), r.GetCall(), r.GetCode()})
	}
	want := []auditRow{
		{"admin", "TokenCreate", "ok"},
		{"admin", "RoleSet", "ok"},
		{"spark", "Allocate", "ok"},
		{"spark", "Launch", "failed_precondition"},
		{"spark", "RoleSet", "permission_denied"},
		{"", "ListAgents", "unauthenticated"},
		{"spark", "Revoke", "ok"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("audit trail:\n got %v\nwant %v", got, want)
	}
	recs := list.GetRecords()
	if !slices.Contains(recs[2].GetTargets(), id) || !slices.Contains(recs[6].GetTargets(), id) || !slices.Contains(recs[0].GetTargets(), "spark") {
		t.Errorf("targets: Allocate %v, Revoke %v, TokenCreate %v; want %s, %s, spark", recs[2].GetTargets(), recs[6].GetTargets(), recs[0].GetTargets(), id, id)
	}
	for i, r := range recs {
		if r.GetSeq() != uint64(i+1) || r.GetKernel() != url || r.GetTime() == nil {
			t.Errorf("record %d: seq %d, kernel %q, time %v; want seq %d, kernel %s", i, r.GetSeq(), r.GetKernel(), r.GetTime(), i+1, url)
		}
	}
	// Filters.
	var only pb.AuditListResponse
	unmarshalJSON(t, e.mustCtl("-o", "json", "audit", "--principal", "spark", "--call", "RoleSet"), &only)
	if n := len(only.GetRecords()); n != 1 || only.GetRecords()[0].GetCode() != "permission_denied" {
		t.Errorf("audit --principal spark --call RoleSet: %v", &only)
	}
	if out := e.mustCtl("audit", "--verify"); !strings.HasPrefix(out, fmt.Sprintf("audit trail verified: %d records, seq 1–%d", len(recs), len(recs))) {
		t.Errorf("audit --verify on an intact trail: %q", out)
	}

	// Tampering, straight in etcd.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, TLS: etcdPKI.tlsConfig(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	// Records are stored one key per transaction (internal/store/audit.go):
	// edit them in their batch.
	edit := func(seq uint64, change func(*pb.AuditRecord) *pb.AuditRecord) (restore func()) {
		t.Helper()
		res, err := cli.Get(ctx, "/dcos/audit/0", clientv3.WithRange("/dcos/audit/:"))
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range res.Kvs {
			var recs []*pb.AuditRecord
			rd := bytes.NewReader(kv.Value)
			found := false
			for rd.Len() > 0 {
				r := &pb.AuditRecord{}
				if err := protodelim.UnmarshalFrom(rd, r); err != nil {
					t.Fatalf("stored records of %s: %v", kv.Key, err)
				}
				if r.GetSeq() == seq {
					found = true
					if r = change(r); r == nil {
						continue
					}
				}
				recs = append(recs, r)
			}
			if !found {
				continue
			}
			var buf bytes.Buffer
			for _, r := range recs {
				protodelim.MarshalTo(&buf, r)
			}
			if _, err := cli.Put(ctx, string(kv.Key), buf.String()); err != nil {
				t.Fatal(err)
			}
			orig := kv
			return func() {
				if _, err := cli.Put(ctx, string(orig.Key), string(orig.Value)); err != nil {
					t.Fatal(err)
				}
			}
		}
		t.Fatalf("record %d not found in etcd", seq)
		return nil
	}
	// The refused Launch made to look successful.
	restore := edit(4, func(r *pb.AuditRecord) *pb.AuditRecord { r.Code = "ok"; return r })
	out, errOut, code := e.ctl("audit", "--verify")
	if code == 0 || !strings.Contains(errOut, "record 4 was altered: stored hash") {
		t.Errorf("audit --verify after record 4 was altered: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	restore()
	edit(5, func(*pb.AuditRecord) *pb.AuditRecord { return nil })
	out, errOut, code = e.ctl("audit", "--verify")
	if code == 0 || !strings.Contains(errOut, "records 5 to 5 are missing") {
		t.Errorf("audit --verify after record 5 was deleted: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func unmarshalJSON(t *testing.T, s string, m proto.Message) {
	t.Helper()
	if err := protojson.Unmarshal([]byte(s), m); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
}
