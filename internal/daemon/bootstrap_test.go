package daemon

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	"github.com/dcos-kernel/dcos/internal/store"
	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

var discard = slog.New(slog.DiscardHandler)

func startEtcd(t *testing.T) *clientv3.Client {
	t.Helper()
	e, err := store.StartEmbedded(store.EmbeddedConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e.Client()
}

var (
	loginLine = regexp.MustCompile(`(?m)^\s*dcosctl login (\S+) --token (\S+) --ca-fingerprint sha256:[0-9a-f]{64}$`)
	agentLine = regexp.MustCompile(`(?m)^\s*dcosd agent --kernel (\S+) --token (\S+) --ca-fingerprint sha256:[0-9a-f]{64}$`)
)

// TestStartTokens_BootstrapOnce: three kernels start at once on one etcd
// without an operator token in a tokens file; exactly one prints the
// bootstrap tokens, and every kernel accepts them.
func TestStartTokens_BootstrapOnce(t *testing.T) {
	ctx := context.Background()
	cli3 := startEtcd(t)
	file, err := api.NewTokens(nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	outs := make([]bytes.Buffer, n)
	kts := make([]*kernelTokens, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kt, err := startTokens(ctx, discard, &outs[i], cli3, "/dcos/", file, "https://127.0.0.1:7070", "sha256:"+strings.Repeat("ab", 32))
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(kt.Close)
			kts[i] = kt
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	printed := -1
	for i := range n {
		if outs[i].Len() == 0 {
			continue
		}
		if printed >= 0 {
			t.Fatalf("kernels %d and %d both printed bootstrap tokens", printed, i)
		}
		printed = i
	}
	if printed < 0 {
		t.Fatal("no kernel printed bootstrap tokens")
	}
	out := outs[printed].String()
	login, join := loginLine.FindStringSubmatch(out), agentLine.FindStringSubmatch(out)
	if login == nil || join == nil || login[1] != "https://127.0.0.1:7070" || join[1] != login[1] {
		t.Fatalf("bootstrap output lacks the login or agent line:\n%s", out)
	}
	for i, kt := range kts {
		if p, ok := kt.registry.Lookup(login[2]); !ok || p.Role != kernel.RoleOperator {
			t.Errorf("kernel %d: operator token = %v, %v", i, p, ok)
		}
		if p, ok := kt.registry.Lookup(join[2]); !ok || p.Role != kernel.RoleAgentJoin {
			t.Errorf("kernel %d: join token = %v, %v", i, p, ok)
		}
	}
	// A kernel started later, or one whose tokens file has an operator
	// token, prints nothing.
	var later bytes.Buffer
	kt, err := startTokens(ctx, discard, &later, cli3, "/dcos/", file, "https://127.0.0.1:7070", "sha256:"+strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	kt.Close()
	withOp, err := api.NewTokens([]api.TokenEntry{{Token: kerneltest.OperatorToken, Name: "ops", Role: "operator"}})
	if err != nil {
		t.Fatal(err)
	}
	kt, err = startTokens(ctx, discard, &later, cli3, "/other/", withOp, "https://127.0.0.1:7070", "sha256:00")
	if err != nil {
		t.Fatal(err)
	}
	kt.Close()
	if later.Len() != 0 {
		t.Errorf("later kernels printed %q", later.String())
	}
}

// TestAgentToken: a join token is traded for the agent's own token, saved
// 0600 in the data dir and reused from then on; an ordinary agent token is
// used as it is.
func TestAgentToken(t *testing.T) {
	ctx := context.Background()
	cli3 := startEtcd(t)
	file, err := api.NewTokens(kerneltest.DefaultTokens())
	if err != nil {
		t.Fatal(err)
	}
	kt, err := startTokens(ctx, discard, io.Discard, cli3, "", file, "https://x", "sha256:00")
	if err != nil {
		t.Fatal(err)
	}
	defer kt.Close()
	srv := kerneltest.Start(t, kerneltest.Options{API: func(c *api.Config) { *c = kt.config(*c) }})
	join, _, err := kt.store.Create(ctx, kernel.RoleAgentJoin, "joiner", 0, "test")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for _, ok := kt.registry.Lookup(join); !ok; _, ok = kt.registry.Lookup(join) {
		if time.Now().After(deadline) {
			t.Fatal("join token not seen within 1s")
		}
		time.Sleep(10 * time.Millisecond)
	}

	dir := filepath.Join(t.TempDir(), "agent")
	tok, err := agentToken(ctx, discard, srv.URL, join, dir, "Node_1.example", nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok == join {
		t.Fatal("agentToken returned the join token")
	}
	fi, err := os.Stat(filepath.Join(dir, agentTokenFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved token: %v, %v; want mode 0600", fi, err)
	}
	if p, ok := kt.registry.Lookup(tok); !ok || p != (kernel.Principal{Name: "agent-node-1.example", Role: kernel.RoleAgent}) {
		t.Errorf("joined token's principal = %v, %v", p, ok)
	}
	if _, err := kclient.New(srv.URL, tok).RegisterAgent(ctx, connect.NewRequest(&pb.RegisterAgentRequest{
		Hostname: "node-1", Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 30}})); err != nil {
		t.Errorf("RegisterAgent with the joined token: %v", err)
	}
	// A restart reuses the saved token, whatever --token says.
	for _, given := range []string{join, kerneltest.AgentToken, ""} {
		if again, err := agentToken(ctx, discard, srv.URL, given, dir, "node-1", nil); err != nil || again != tok {
			t.Errorf("agentToken(--token %q) after a join = %q, %v; want the saved token", given, again, err)
		}
	}
	// An ordinary agent token is used as it is, and nothing is saved.
	dir2 := t.TempDir()
	if got, err := agentToken(ctx, discard, srv.URL, kerneltest.AgentToken, dir2, "node-2", nil); err != nil || got != kerneltest.AgentToken {
		t.Errorf("agentToken(agent token) = %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir2, agentTokenFile)); !os.IsNotExist(err) {
		t.Errorf("a token file was saved for an ordinary agent token: %v", err)
	}
	if _, err := agentToken(ctx, discard, srv.URL, "", t.TempDir(), "node-3", nil); err == nil || !strings.Contains(err.Error(), "--token") {
		t.Errorf("agentToken without a token = %v, want an error naming --token", err)
	}
	if _, err := agentToken(ctx, discard, srv.URL, "wrong-token-0123456789", t.TempDir(), "node-3", nil); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("agentToken(unknown token) = %v, want Unauthenticated", err)
	}
}

func TestJoinHostname(t *testing.T) {
	for in, want := range map[string]string{"web1": "web1", "Web_1.Example.COM": "web-1.example.com", "-x-": "x", "a b": "a-b"} {
		if got := joinHostname(in); got != want {
			t.Errorf("joinHostname(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLoadKernelTokens: a missing default tokens file is no tokens; a
// missing --tokens file is an error.
func TestLoadKernelTokens(t *testing.T) {
	dir := t.TempDir()
	load := func(args ...string) (api.TokensFile, error) {
		var tf api.TokensFile
		var lerr error
		app := &cli.App{Flags: []cli.Flag{&cli.StringFlag{Name: "tokens"}}, Writer: io.Discard, ErrWriter: io.Discard,
			Action: func(c *cli.Context) error { tf, lerr = loadKernelTokens(c, dir); return nil }}
		if err := app.Run(append([]string{"dcosd"}, args...)); err != nil {
			t.Fatal(err)
		}
		return tf, lerr
	}
	if tf, err := load(); err != nil || len(tf.Tokens) != 0 {
		t.Errorf("no tokens file: %v, %v; want none, no error", tf, err)
	}
	if _, err := load("--tokens", filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "--tokens") {
		t.Errorf("missing --tokens file: %v, want an error naming --tokens", err)
	}
	path := filepath.Join(dir, "tokens.json")
	if err := api.SaveTokensFile(path, api.TokensFile{Tokens: kerneltest.DefaultTokens()}); err != nil {
		t.Fatal(err)
	}
	if tf, err := load(); err != nil || len(tf.Tokens) != len(kerneltest.DefaultTokens()) {
		t.Errorf("default tokens file: %v, %v", tf, err)
	}
}
