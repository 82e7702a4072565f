package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestBadInput_OverTheWire sends malformed and hostile requests as raw
// HTTP/JSON to dcosd dev: each gets the right code and a message naming
// the field at fault, and afterwards the daemon still serves with its
// state (allocations, tasks, store revision) unchanged.
func TestBadInput_OverTheWire(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startDev("--resources", "cpus=2,mem=1Gi")
	op := e.op()
	valid := allocateOne(t, op, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.5, MemBytes: 64 * mi}})
	allocsBefore, tasksBefore := listAllocations(t, op), listTasks(t, op)
	started := time.Now()

	const okRes = `"resources":{"cpus":0.5,"memBytes":"67108864"}`
	huge := `{"resources":{"cpus":0.5,"memBytes":"67108864"},"role":"` + strings.Repeat("x", 5<<20) + `"}`
	tests := []struct {
		name, method, body string
		// want is the expected code; ResourceExhausted also accepts
		// InvalidArgument (the oversized request).
		want connect.Code
		// field must appear in the message; "" only for malformed JSON.
		field string
	}{
		{"negative cpus", "Allocate", `{"resources":{"cpus":-1,"memBytes":"67108864"}}`, connect.CodeInvalidArgument, "resources.cpus"},
		{"NaN cpus", "Allocate", `{"resources":{"cpus":"NaN","memBytes":"67108864"}}`, connect.CodeInvalidArgument, "resources.cpus"},
		{"infinite cpus", "Allocate", `{"resources":{"cpus":"Infinity","memBytes":"67108864"}}`, connect.CodeInvalidArgument, "resources.cpus"},
		{"zero cpus", "Allocate", `{"resources":{"cpus":0,"memBytes":"67108864"}}`, connect.CodeInvalidArgument, "resources.cpus"},
		{"absurd memory", "Allocate", `{"resources":{"cpus":0.5,"memBytes":"4611686018427387904"}}`, connect.CodeInvalidArgument, "resources.mem_bytes"},
		{"negative memory", "Allocate", `{"resources":{"cpus":0.5,"memBytes":"-1"}}`, connect.CodeInvalidArgument, "resources.mem_bytes"},
		{"no resources", "Allocate", `{}`, connect.CodeInvalidArgument, "resources"},
		{"negative count", "Allocate", `{` + okRes + `,"count":-1}`, connect.CodeInvalidArgument, "count"},
		{"huge count", "Allocate", `{` + okRes + `,"count":2147483647}`, connect.CodeInvalidArgument, "count"},
		{"bad role", "Allocate", `{` + okRes + `,"role":"../root"}`, connect.CodeInvalidArgument, "role"},
		{"constraint without op", "Allocate", `{` + okRes + `,"constraints":[{"label":"zone","values":["a"]}]}`, connect.CodeInvalidArgument, "constraints[0].op"},
		{"tiny lease", "Allocate", `{` + okRes + `,"leaseTtl":"0.000001s"}`, connect.CodeInvalidArgument, "lease_ttl"},
		{"wrong type", "Allocate", `{"resources":{"cpus":"lots","memBytes":"67108864"}}`, connect.CodeInvalidArgument, "cpus"},
		{"malformed JSON", "Allocate", `{"resources":{"cpus":0.5,`, connect.CodeInvalidArgument, ""},
		{"oversized request", "Allocate", huge, connect.CodeResourceExhausted, ""},
		{"empty command", "Launch", fmt.Sprintf(`{"allocationId":%q,"command":""}`, valid.GetId()), connect.CodeInvalidArgument, "command"},
		{"blank command", "Launch", fmt.Sprintf(`{"allocationId":%q,"command":"  "}`, valid.GetId()), connect.CodeInvalidArgument, "command"},
		{"NUL in args", "Launch", fmt.Sprintf(`{"allocationId":%q,"command":"echo","args":["a\u0000b"]}`, valid.GetId()), connect.CodeInvalidArgument, "args[0]"},
		{"negative task cpus", "Launch", fmt.Sprintf(`{"allocationId":%q,"command":"true","resources":{"cpus":-1}}`, valid.GetId()), connect.CodeInvalidArgument, "resources.cpus"},
		{"unknown allocation", "Launch", `{"allocationId":"a-999999","command":"true"}`, connect.CodeNotFound, "allocation_id"},
		{"no allocation id", "Launch", `{"command":"true"}`, connect.CodeInvalidArgument, "allocation_id"},
		{"revoke unknown id", "Revoke", `{"id":"a-999999"}`, connect.CodeNotFound, "a-999999"},
		{"revoke malformed id", "Revoke", `{"id":"x-1"}`, connect.CodeInvalidArgument, "id"},
		{"revoke without id", "Revoke", `{}`, connect.CodeInvalidArgument, "id"},
		{"revoke with a long reason", "Revoke", fmt.Sprintf(`{"id":%q,"reason":%q}`, valid.GetId(), strings.Repeat("r", 300)), connect.CodeInvalidArgument, "reason"},
		{"keep alive too many ids", "KeepAlive", `{"allocationIds":["` + strings.Repeat(valid.GetId()+`","`, 10_001) + `a-1"]}`, connect.CodeInvalidArgument, "allocation_ids"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, msg := postJSON(t, e.url, e.opToken, tt.method, tt.body)
			if tt.name == "oversized request" {
				t.Logf("5 MiB request: code %v, message %q", code, msg)
				if code != connect.CodeResourceExhausted && code != connect.CodeInvalidArgument {
					t.Errorf("code %v (%q), want ResourceExhausted or InvalidArgument", code, msg)
				}
				return
			}
			if code != tt.want {
				t.Errorf("code %v (%q), want %v", code, msg, tt.want)
			}
			if msg == "" || !strings.Contains(msg, tt.field) {
				t.Errorf("message %q does not name %q", msg, tt.field)
			}
		})
	}
	t.Run("watch from the future", func(t *testing.T) {
		st, err := op.Watch(ctx(t), connect.NewRequest(&pb.WatchRequest{AfterRevision: 1 << 40}))
		if err == nil {
			for st.Receive() {
			}
			err = st.Err()
			st.Close()
		}
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "after_revision") {
			t.Errorf("Watch after 2^40: %v, want InvalidArgument naming after_revision", err)
		}
	})

	// Still serving, and nothing changed but the audit trail, which
	// records each refused call (and nothing else).
	allocsAfter, tasksAfter := listAllocations(t, op), listTasks(t, op)
	revBefore, revAfter := allocsBefore.GetRevision(), allocsAfter.GetRevision()
	allocsBefore.Revision, allocsAfter.Revision, tasksBefore.Revision, tasksAfter.Revision = 0, 0, 0, 0
	if !proto.Equal(allocsAfter, allocsBefore) {
		t.Errorf("ListAllocations changed:\nbefore %v\nafter  %v", allocsBefore, allocsAfter)
	}
	if !proto.Equal(tasksAfter, tasksBefore) {
		t.Errorf("ListTasks changed:\nbefore %v\nafter  %v", tasksBefore, tasksAfter)
	}
	if revAfter != revBefore {
		audit, err := op.AuditList(ctx(t), connect.NewRequest(&pb.AuditListRequest{Limit: 10000}))
		if err != nil {
			t.Fatal(err)
		}
		refused := 0
		for _, r := range audit.Msg.GetRecords() {
			if r.GetTime().AsTime().After(started) {
				if r.GetCode() == "ok" {
					t.Errorf("a bad input's call succeeded (audit record %v)", r)
				}
				refused++
			}
		}
		if refused == 0 {
			t.Errorf("store revision moved from %d to %d, and not by audit records of the refusals", revBefore, revAfter)
		}
	}
	allocateOne(t, op, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.5, MemBytes: 64 * mi}})
}

// postJSON makes a unary call with the Connect protocol's HTTP/JSON form
// (what curl does) and returns the error code (0 on success) and message.
func postJSON(t testing.TB, url, token, method, body string) (connect.Code, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx(t), "POST", url+"/dcos.syscalls.v1.Kernel/"+method, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := kernelHTTP.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", method, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode == http.StatusOK {
		return 0, ""
	}
	var ce struct{ Code, Message string }
	if err := json.Unmarshal(b, &ce); err != nil {
		t.Fatalf("POST %s: HTTP %d with a body that is not a Connect error: %q", method, res.StatusCode, clipBytes(b))
	}
	var code connect.Code
	if err := code.UnmarshalText([]byte(ce.Code)); err != nil {
		t.Fatalf("POST %s: unknown code %q", method, ce.Code)
	}
	return code, ce.Message
}

func clipBytes(b []byte) []byte {
	if len(b) > 400 {
		return append(bytes.Clone(b[:400]), "..."...)
	}
	return b
}
