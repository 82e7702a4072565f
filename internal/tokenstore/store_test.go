package tokenstore

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/dcos-kernel/dcos/kernel"
)

// startEtcd starts an etcd member in this process, listening on a free
// loopback port, and returns a client of its own for each of n callers
// (as n kernel processes would have).
func startEtcd(t testing.TB, n int) []*clientv3.Client {
	t.Helper()
	ec := embed.NewConfig()
	ec.Dir = filepath.Join(t.TempDir(), "etcd")
	ec.LogLevel = "fatal"
	ec.TickMs, ec.ElectionMs = 10, 100
	loop := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{loop}, []url.URL{loop}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{loop}, []url.URL{loop}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	e, err := embed.StartEtcd(ec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd not ready after 30s")
	}
	ep := "http://" + e.Clients[0].Addr().String()
	var clis []*clientv3.Client
	for range n {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		clis = append(clis, c)
	}
	return clis
}

func codeOf(err error) kernel.Code { return kernel.CodeOf(err) }

func TestStore_CreateListRevoke(t *testing.T) {
	ctx := context.Background()
	s := New(startEtcd(t, 1)[0], "/t/")
	secret, info, err := s.Create(ctx, kernel.RoleFramework, "fw-a", 0, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) != 64 || info.GetId() != ID(secret) || info.GetRole() != "framework" || info.GetCreatedBy() != "ops" || info.GetExpires() != nil {
		t.Errorf("Create = %q, %v", secret, info)
	}
	if _, _, err := s.Create(ctx, kernel.RoleFramework, "fw-a", time.Hour, "ops"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(ctx, kernel.RoleAgentJoin, "join", 0, "ops"); err != nil {
		t.Fatal(err)
	}
	// The secret is nowhere in the store.
	resp, err := s.cli.Get(ctx, "/t/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if string(kv.Key) == s.Prefix()+secret || strings.Contains(string(kv.Value), secret) {
			t.Fatalf("secret stored at %s", kv.Key)
		}
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("List = %v, %v; want 3 tokens", list, err)
	}
	if list[0].GetId() != info.GetId() {
		t.Errorf("List[0] = %v, want the first created, %v", list[0], info)
	}
	revoked, err := s.Revoke(ctx, "", "fw-a")
	if err != nil || len(revoked) != 2 {
		t.Fatalf("Revoke(name fw-a) = %v, %v; want both fw-a tokens", revoked, err)
	}
	if _, err := s.Revoke(ctx, info.GetId(), ""); codeOf(err) != kernel.NotFound {
		t.Errorf("Revoke(revoked id) = %v, want NotFound", err)
	}
	list, _ = s.List(ctx)
	if len(list) != 1 || list[0].GetName() != "join" {
		t.Fatalf("List after revoke = %v", list)
	}
	if revoked, err := s.Revoke(ctx, list[0].GetId(), ""); err != nil || len(revoked) != 1 {
		t.Errorf("Revoke(id) = %v, %v", revoked, err)
	}
}

func TestStore_BadInput(t *testing.T) {
	ctx := context.Background()
	s := New(startEtcd(t, 1)[0], "")
	tests := []struct {
		name  string
		err   func() error
		field string
	}{
		{"no role", func() error { _, _, err := s.Create(ctx, 0, "x", 0, "ops"); return err }, "role"},
		{"no name", func() error { _, _, err := s.Create(ctx, kernel.RoleFramework, "", 0, "ops"); return err }, "name"},
		{"bad name", func() error { _, _, err := s.Create(ctx, kernel.RoleFramework, "a b", 0, "ops"); return err }, "name"},
		{"negative ttl", func() error { _, _, err := s.Create(ctx, kernel.RoleFramework, "a", -time.Second, "ops"); return err }, "ttl"},
		{"revoke nothing", func() error { _, err := s.Revoke(ctx, "", ""); return err }, "id"},
		{"revoke both", func() error { _, err := s.Revoke(ctx, "abcdef123456", "x"); return err }, "id"},
		{"revoke non-hex", func() error { _, err := s.Revoke(ctx, "zzzzzzzzzzzz", ""); return err }, "id"},
		{"revoke short id", func() error { _, err := s.Revoke(ctx, "abc", ""); return err }, "id"},
		{"join no host", func() error { _, _, err := s.Join(ctx, "", "j"); return err }, "hostname"},
		{"join bad host", func() error { _, _, err := s.Join(ctx, "web_1", "j"); return err }, "hostname"},
		{"join slash", func() error { _, _, err := s.Join(ctx, "../etc", "j"); return err }, "hostname"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.err()
			if codeOf(err) != kernel.InvalidArgument || !strings.HasPrefix(err.Error(), tt.field+": ") {
				t.Errorf("err = %v, want InvalidArgument naming %s", err, tt.field)
			}
		})
	}
	if _, err := s.Revoke(ctx, "", "nobody"); codeOf(err) != kernel.NotFound {
		t.Errorf("Revoke(unknown name) = %v, want NotFound", err)
	}
}

// TestStore_BootstrapOnce: three kernels bootstrap one store at once;
// exactly one creates the tokens, and later calls create none.
func TestStore_BootstrapOnce(t *testing.T) {
	ctx := context.Background()
	clis := startEtcd(t, 3)
	var wg sync.WaitGroup
	results := make([]bool, len(clis))
	errs := make([]error, len(clis))
	boots := make([]Bootstrapped, len(clis))
	for i, c := range clis {
		wg.Add(1)
		go func() {
			defer wg.Done()
			boots[i], results[i], errs[i] = New(c, "/dcos/").Bootstrap(ctx)
		}()
	}
	wg.Wait()
	won := -1
	for i := range clis {
		if errs[i] != nil {
			t.Fatalf("Bootstrap %d: %v", i, errs[i])
		}
		if results[i] {
			if won >= 0 {
				t.Fatalf("Bootstrap won by %d and %d", won, i)
			}
			won = i
		}
	}
	if won < 0 {
		t.Fatal("no Bootstrap created the tokens")
	}
	if _, ok, err := New(clis[0], "/dcos/").Bootstrap(ctx); ok || err != nil {
		t.Errorf("a later Bootstrap = %v, %v; want false, nil", ok, err)
	}
	s := New(clis[0], "/dcos/")
	list, err := s.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %v, %v; want the 2 bootstrap tokens", list, err)
	}
	r, err := StartRegistry(ctx, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b := boots[won]
	if p, ok := r.Lookup(b.Operator); !ok || p != (kernel.Principal{Name: BootstrapOperator, Role: kernel.RoleOperator}) {
		t.Errorf("Lookup(operator) = %v, %v", p, ok)
	}
	if p, ok := r.Lookup(b.Join); !ok || p != (kernel.Principal{Name: BootstrapJoin, Role: kernel.RoleAgentJoin}) {
		t.Errorf("Lookup(join) = %v, %v", p, ok)
	}
}

// TestStore_Join: joins of one hostname get distinct names, also at once,
// and a name is not handed out again after its token is revoked.
func TestStore_Join(t *testing.T) {
	ctx := context.Background()
	s := New(startEtcd(t, 1)[0], "")
	if _, _, err := s.Create(ctx, kernel.RoleAgent, "agent-web1", 0, "ops"); err != nil {
		t.Fatal(err)
	}
	const n = 4
	names := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			secret, info, err := s.Join(ctx, "WEB1", "agent-join")
			if err != nil {
				t.Error(err)
				return
			}
			if info.GetRole() != "agent" || info.GetCreatedBy() != "agent-join" || info.GetId() != ID(secret) {
				t.Errorf("Join = %v", info)
			}
			names <- info.GetName()
		}()
	}
	wg.Wait()
	close(names)
	got := map[string]bool{}
	for name := range names {
		if got[name] {
			t.Errorf("name %s handed out twice", name)
		}
		got[name] = true
	}
	for i := 2; i <= n+1; i++ {
		if name := fmt.Sprintf("agent-web1-%d", i); !got[name] {
			t.Errorf("names %v lack %s", got, name)
		}
	}
	if _, err := s.Revoke(ctx, "", "agent-web1-2"); err != nil {
		t.Fatal(err)
	}
	_, info, err := s.Join(ctx, "web1", "agent-join")
	if err != nil || info.GetName() != fmt.Sprintf("agent-web1-%d", n+2) {
		t.Errorf("Join after revoke = %v, %v; want a new name", info, err)
	}
}
