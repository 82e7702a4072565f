package api

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/kernel"
)

// testTokens are FuzzDoor's callers: an operator, a framework and an agent.
var testTokens = []TokenEntry{
	{Token: "operator-token-0123456789", Name: "ops", Role: "operator"},
	{Token: "framework-a-token-0123456", Name: "fw-a", Role: "framework"},
	{Token: "agent-token-0123456789abc", Name: "agents", Role: "agent"},
}

// FuzzDoor feeds arbitrary request heads (procedure, Authorization,
// Content-Length, Content-Type, protocol) to the front door. It must never
// panic; a request it lets through must carry a known token whose role may
// call the procedure, within that procedure's size limit, with the
// principal in its context; one it refuses must get an error status and
// never reach the service.
func FuzzDoor(f *testing.F) {
	procs := make([]string, 0, len(allowed))
	for p := range allowed {
		procs = append(procs, p)
	}
	slices.Sort(procs)
	for i, tok := range testTokens {
		f.Add(uint8(i), "Bearer "+tok.Token, int64(100), "application/json", true)
	}
	f.Add(uint8(3), "Bearer "+testTokens[0].Token, int64(47<<20), "application/grpc", false)
	f.Add(uint8(0), "bearer x", int64(-1), "", true)
	f.Add(uint8(200), "Bearer ", int64(1<<62), "application/proto", false)
	tokens, err := NewTokens(testTokens)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, pi uint8, authz string, length int64, ctype string, http1 bool) {
		path := "/not/a/procedure"
		if int(pi) < len(procs) {
			path = procs[pi]
		}
		var reached *kernel.Principal
		next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := principal(r.Context())
			reached = &p
			w.WriteHeader(http.StatusOK)
		})
		d := &door{tokens: tokens, limiter: newRateLimiter(map[kernel.Role]RateLimit{}, nil), errw: connect.NewErrorWriter(), next: next}
		r := httptest.NewRequest(http.MethodPost, "http://kernel"+path, strings.NewReader("{}"))
		r.Header.Set("Authorization", authz)
		r.Header.Set("Content-Type", ctype)
		r.ContentLength = length
		if length >= 0 {
			r.Header.Set("Content-Length", strconv.FormatInt(length, 10))
		}
		if !http1 {
			r.ProtoMajor, r.ProtoMinor, r.Proto = 2, 0, "HTTP/2.0"
		}
		w := httptest.NewRecorder()
		d.ServeHTTP(w, r)
		roles, known := allowed[path]
		if !known {
			if reached == nil {
				t.Fatalf("%s is not a syscall: the door must pass it on (reflection, /healthz)", path)
			}
			return
		}
		tok, _ := strings.CutPrefix(authz, "Bearer ")
		p, ok := tokens.Lookup(tok)
		okRole := ok && slices.Contains(roles, p.Role)
		okSize := length <= requestLimit(path, p)+envelopeSlack
		if reached != nil {
			if !strings.HasPrefix(authz, "Bearer ") || !okRole || !okSize || *reached != p {
				t.Fatalf("let through %s with %q, %d bytes as %+v", path, authz, length, *reached)
			}
			return
		}
		if okRole && okSize {
			t.Fatalf("refused a good request: %s as %+v, %d bytes: %d %s", path, p, length, w.Code, w.Body.String())
		}
		if w.Code == http.StatusOK && !strings.Contains(w.Header().Get("Content-Type"), "grpc") {
			t.Fatalf("refused with status 200: %s", w.Body.String())
		}
	})
}
