package transport

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// kernelStub answers like a kernel: as the leader (echoing the body) or
// as a standby naming leader.
func kernelStub(t *testing.T, leading *atomic.Bool, leader *atomic.Value, hits *atomic.Int64) *httptest.Server {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		if !leading.Load() {
			w.Header().Set(StandbyHeader, "1")
			if l, _ := leader.Load().(string); l != "" {
				w.Header().Set(LeaderHeader, l)
			}
			http.Error(w, "standby", http.StatusServiceUnavailable)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestCluster_FollowsLeaderAndFailsOver(t *testing.T) {
	t.Parallel()
	var leadA, leadB atomic.Bool
	var leader atomic.Value
	var hitsA, hitsB atomic.Int64
	a := kernelStub(t, &leadA, &leader, &hitsA)
	b := kernelStub(t, &leadB, &leader, &hitsB)
	// A dead endpoint: a port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "https://" + ln.Addr().String()
	ln.Close()

	cl, err := ParseCluster(dead + "," + strings.TrimPrefix(a.URL, "https://") + "/," + b.URL)
	if err != nil {
		t.Fatal(err)
	}
	// Kernels serve TLS; the stubs' certificate is httptest's.
	cl.WithTLS(a.Client().Transport.(*http.Transport).TLSClientConfig)
	if got := cl.Endpoints(); len(got) != 3 || got[1] != a.URL {
		t.Fatalf("endpoints %v", got)
	}
	hc := cl.HTTPClient()
	post := func(body string) string {
		t.Helper()
		resp, err := hc.Post(cl.URL()+"/x", "text/plain", bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, got)
		}
		return string(got)
	}
	// B leads; A is a standby that names it. The dead endpoint is skipped.
	leadB.Store(true)
	leader.Store(b.URL)
	if got := post("one"); got != "one" {
		t.Fatalf("answer %q", got)
	}
	if cl.Leader() != b.URL {
		t.Fatalf("leader %s, want %s", cl.Leader(), b.URL)
	}
	// Sticky: the next call goes straight to B.
	a0 := hitsA.Load()
	post("two")
	if hitsA.Load() != a0 {
		t.Fatal("a call went to the standby after the leader was learnt")
	}
	// Failover: B steps down, nobody leads for a while, then A leads.
	leadB.Store(false)
	leader.Store("")
	go func() {
		time.Sleep(300 * time.Millisecond)
		leadA.Store(true)
		leader.Store(a.URL)
	}()
	if got := post("three"); got != "three" {
		t.Fatalf("answer %q", got)
	}
	if cl.Leader() != a.URL {
		t.Fatalf("leader %s, want %s", cl.Leader(), a.URL)
	}

	// Nothing can be dialled: the error comes at once, not after the wait.
	only, err := ParseCluster(dead)
	if err != nil {
		t.Fatal(err)
	}
	// (With no deadline the wait would be DefaultFailoverWait; the error
	// must be the dial's, not the context's.)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, dead+"/x", nil)
	_, err = only.HTTPClient().Do(req)
	if err == nil || ctx.Err() != nil || !isDialError(err) {
		t.Fatalf("a call to a dead kernel: %v (context: %v), want the dial error at once", err, ctx.Err())
	}
}

func TestParseCluster_Errors(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "a:1,,b:2", "ftp://x:1", "http://x:1/path", "http://"} {
		if _, err := ParseCluster(in); err == nil {
			t.Errorf("ParseCluster(%q) accepted", in)
		}
	}
}
