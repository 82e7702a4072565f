package e2e

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

var (
	bootLogin = regexp.MustCompile(`(?m)^\s*dcosctl login (\S+) --token (\S+)\s*$`)
	bootAgent = regexp.MustCompile(`(?m)^\s*dcosd agent --kernel (\S+) --token (\S+)\s*$`)
)

// TestTokenJoin sets a cluster up the way docs/operations.md says, with
// no file written by hand: dcosd kernel without a tokens file bootstraps
// the cluster and prints the login and agent lines; dcosctl login with the
// operator token; dcosd agent with the join token registers with a token
// of its own, saved in its data dir and reused on restart; a framework
// token made by dcosctl token create works, and once revoked is refused
// within a second.
func TestTokenJoin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, url := e.start("dcosd kernel", "dcos kernel: listening at ",
		"kernel", "--data-dir", e.path("kernel"), "--listen", "127.0.0.1:0")
	out := k.stdout.String()
	login, join := bootLogin.FindStringSubmatch(out), bootAgent.FindStringSubmatch(out)
	if login == nil || join == nil {
		t.Fatalf("dcosd kernel did not print the bootstrap lines; stdout:\n%s", out)
	}
	if login[1] != url || join[1] != url {
		t.Errorf("bootstrap lines name %s and %s, want the kernel's %s", login[1], join[1], url)
	}
	opTok, joinTok := login[2], join[2]

	e.mu.Lock()
	e.url, e.opToken, e.ccPath = url, opTok, e.path("xdg-config", "dcos", "config.json")
	e.mu.Unlock()
	e.mustCtl("login", login[1], "--token", opTok)
	if b, err := os.ReadFile(e.ccPath); err != nil || !strings.Contains(string(b), opTok) {
		t.Fatalf("client config after login: %q, %v", b, err)
	}
	if got := e.mustCtl("agents"); !strings.HasPrefix(got, "ID") {
		t.Errorf("dcosctl agents after login: %q", got)
	}

	// The agent trades the join token for its own.
	a, id := e.startAgent("a1", joinTok)
	tokFile := e.path("agents", "a1", "agent-token")
	fi, err := os.Stat(tokFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("agent token file: %v, %v; want mode 0600", fi, err)
	}
	own, _ := os.ReadFile(tokFile)
	if strings.TrimSpace(string(own)) == joinTok {
		t.Fatal("the agent saved the join token, not a token of its own")
	}
	host, _ := os.Hostname()
	var principal string
	for _, ag := range listAgents(t, e.op()).GetAgents() {
		if ag.GetId() == id {
			principal = ag.GetPrincipal()
		}
	}
	if !strings.HasPrefix(principal, "agent-") {
		t.Errorf("agent %s registered as principal %q, want its joined token's agent-%s", id, principal, host)
	}
	// A restart reuses the saved token: same agent, no second join.
	a.stop(10 * time.Second)
	_, id2 := e.startAgent("a1", joinTok)
	if id2 != id {
		t.Errorf("restarted agent registered as %s, want %s", id2, id)
	}
	ls, n := e.mustCtl("token", "ls"), 0
	for _, line := range strings.Split(ls, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[2] == "agent" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("token ls shows %d agent tokens, want 1:\n%s", n, ls)
	}

	// A framework token: created, used, revoked.
	secret := strings.TrimSpace(e.mustCtl("token", "create", "--role", "framework", "--name", "fw-e2e"))
	fw := e.client(secret)
	eventually(t, "the new framework token works", func() (bool, string) {
		_, err := fw.ListAllocations(ctx(t), connect.NewRequest(&pb.ListAllocationsRequest{}))
		return err == nil, sprint(err)
	})
	var fwID string
	for _, line := range strings.Split(e.mustCtl("token", "ls"), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[1] == "fw-e2e" && f[2] == "framework" {
			fwID = f[0]
		}
	}
	if fwID == "" {
		t.Fatalf("token ls lacks fw-e2e:\n%s", e.mustCtl("token", "ls"))
	}
	e.mustCtl("token", "revoke", fwID)
	deadline := time.Now().Add(time.Second)
	for {
		_, err := fw.ListAllocations(ctx(t), connect.NewRequest(&pb.ListAllocationsRequest{}))
		if connect.CodeOf(err) == connect.CodeUnauthenticated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revoked token still answered %v a second after token revoke", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The operator token still works, and stays the only operator.
	if out := e.mustCtl("token", "ls"); !strings.Contains(out, "bootstrap") {
		t.Errorf("token ls lacks the bootstrap tokens:\n%s", out)
	}
}
