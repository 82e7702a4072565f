package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/kclient"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

var (
	bootLogin = regexp.MustCompile(`(?m)^\s*dcosctl login (\S+) --token (\S+) --ca-fingerprint (sha256:[0-9a-f]{64})\s*$`)
	bootAgent = regexp.MustCompile(`(?m)^\s*dcosd agent --kernel (\S+) --token (\S+) --ca-fingerprint (sha256:[0-9a-f]{64})\s*$`)
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
	if login[3] != join[3] {
		t.Errorf("bootstrap lines pin different CAs: %s and %s", login[3], join[3])
	}
	opTok, joinTok := login[2], join[2]

	e.mu.Lock()
	e.url, e.opToken, e.ccPath = url, opTok, e.path("xdg-config", "dcos", "config.json")
	e.mu.Unlock()
	// login pins the CA by the printed fingerprint (and refuses without).
	if _, errOut, code := e.ctl("login", login[1], "--token", opTok); code == 0 || !strings.Contains(errOut, "--ca-fingerprint") {
		t.Errorf("login without a pinned CA: exit %d, stderr %q", code, errOut)
	}
	e.mustCtl("login", login[1], "--token", opTok, "--ca-fingerprint", login[3])
	if b, err := os.ReadFile(e.ccPath); err != nil || !strings.Contains(string(b), opTok) || !strings.Contains(string(b), "BEGIN CERTIFICATE") {
		t.Fatalf("client config after login: %q, %v", b, err)
	}
	e.trustCA(e.path("kernel", "pki", "ca.crt"))
	if got := e.mustCtl("agents"); !strings.HasPrefix(got, "ID") {
		t.Errorf("dcosctl agents after login: %q", got)
	}

	// The agent pins the CA as printed and trades the join token for
	// a token and a certificate of its own.
	a, id := e.startAgent("a1", joinTok, "--ca-fingerprint", join[3])
	for _, f := range []string{"ca.crt", "agent.crt", "agent.key"} {
		if _, err := os.Stat(e.path("agents", "a1", f)); err != nil {
			t.Errorf("the joined agent's %s: %v", f, err)
		}
	}
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
	_, id2 := e.startAgent("a1", joinTok) // its saved ca.crt is the pin now
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

// TestTokenRevokeEveryKernel: three dcosd kernels start at once on one
// etcd (Debian's etcd-server, as an operator runs it) with no tokens file:
// exactly one bootstraps the cluster; a framework token created through
// one is accepted by every kernel, and once revoked is refused by every
// kernel within a second; so is an agent's token, with its certificate.
func TestTokenRevokeEveryKernel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	endpoint, etcdPKI := e.startEtcd()
	const n = 3
	procs, urls := make([]*proc, n), make([]string, n)
	// Started back to back, not waiting for each to be ready: they
	// bootstrap at once.
	for i := range n {
		procs[i], _ = e.start(fmt.Sprintf("dcosd kernel %d", i), "",
			append([]string{"kernel", "--data-dir", e.path(fmt.Sprintf("kernel%d", i)), "--listen", "127.0.0.1:0", "--etcd-endpoints", endpoint}, e.kernelPKI(etcdPKI)...)...)
	}
	ready := regexp.MustCompile(`(?m)^dcos kernel: listening at (\S+)$`)
	for i, p := range procs {
		e.eventually(p.name+" listening", func() (bool, string) {
			if !p.running() {
				t.Fatalf("%s exited: %v; stderr:\n%s", p.name, p.err, tail(p.stderr.String(), 50))
			}
			m := ready.FindStringSubmatch(p.stdout.String())
			if m == nil {
				return false, p.stdout.String()
			}
			urls[i] = m[1]
			return true, ""
		})
	}
	var login []string
	for i, p := range procs {
		if m := bootLogin.FindStringSubmatch(p.stdout.String()); m != nil {
			if login != nil {
				t.Fatalf("two kernels bootstrapped the cluster; kernel %d printed:\n%s", i, p.stdout.String())
			}
			login = m
		}
	}
	if login == nil {
		t.Fatal("no kernel printed the bootstrap lines")
	}
	all := strings.Join(urls, ",")
	e.mu.Lock()
	e.url, e.opToken, e.ccPath = all, login[2], e.path("xdg-config", "dcos", "config.json")
	e.mu.Unlock()
	e.mustCtl("login", all, "--token", login[2], "--ca-fingerprint", login[3])

	secret := strings.TrimSpace(e.mustCtl("token", "create", "--role", "framework", "--name", "fw-ha"))
	// ClusterInfo is answered by leader and standbys alike, after the
	// door has authenticated the caller.
	clusterInfo := func(url, token string) error {
		_, err := kclient.NewTLS(url, token, kernelTLS).ClusterInfo(ctx(t), connect.NewRequest(&pb.ClusterInfoRequest{}))
		return err
	}
	for _, u := range urls {
		eventually(t, "kernel "+u+" accepts the new token", func() (bool, string) {
			err := clusterInfo(u, secret)
			return err == nil, sprint(err)
		})
	}
	// An agent, with its certificate (issue 17: a revoked agent is
	// refused on every kernel within a second).
	agentTok := strings.TrimSpace(e.mustCtl("token", "create", "--role", "agent", "--name", "node-ha"))
	agentConf := e.agentTLS(agentTok)
	agentInfo := func(url string) error {
		_, err := kclient.NewTLS(url, agentTok, agentConf).ClusterInfo(ctx(t), connect.NewRequest(&pb.ClusterInfoRequest{}))
		return err
	}
	for _, u := range urls {
		eventually(t, "kernel "+u+" accepts the agent", func() (bool, string) {
			err := agentInfo(u)
			return err == nil, sprint(err)
		})
	}
	e.mustCtl("token", "revoke", "--name", "fw-ha")
	e.mustCtl("token", "revoke", "--name", "node-ha")
	deadline := time.Now().Add(time.Second)
	for who, call := range map[string]func(string) error{"framework": func(u string) error { return clusterInfo(u, secret) }, "agent": agentInfo} {
		for _, u := range urls {
			for {
				err := call(u)
				if connect.CodeOf(err) == connect.CodeUnauthenticated {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("kernel %s still answered %v to the revoked %s a second after token revoke", u, err, who)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	// The operator token still works everywhere.
	for _, u := range urls {
		if err := clusterInfo(u, login[2]); err != nil {
			t.Errorf("kernel %s: operator ClusterInfo: %v", u, err)
		}
	}
}

// startEtcd runs a one-member etcd (Debian's etcd-server binary) on free
// loopback ports with its data in the env's dir, serving TLS with client
// certificates of a cluster CA (etcdPKI), stopped at cleanup like the
// daemons, and returns its client URL once it is healthy, and its CA.
func (e *env) startEtcd() (string, *etcdPKI) {
	e.t.Helper()
	path, err := exec.LookPath("etcd")
	if err != nil {
		e.t.Fatalf("etcd not installed (Debian package etcd-server; scripts/test installs it): %v", err)
	}
	client, peer := "https://"+freeAddr(e.t), "https://"+freeAddr(e.t)
	ca := newEtcdPKI(e.t, e.path("etcd-ca"), "127.0.0.1", "e2e")
	p := &proc{name: "etcd", exited: make(chan struct{})}
	p.cmd = exec.Command(path, append([]string{"--name", "e2e", "--data-dir", e.path("etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "e2e=" + peer, "--log-level", "error"}, ca.memberFlags("e2e")...)...)
	p.cmd.Env = e.baseEnv()
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		e.t.Fatalf("start etcd: %v", err)
	}
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	tr := &http.Transport{TLSClientConfig: ca.tlsConfig()}
	defer tr.CloseIdleConnections()
	e.eventually("etcd healthy", func() (bool, string) {
		if !p.running() {
			e.t.Fatalf("etcd exited: %v; stderr:\n%s", p.err, tail(p.stderr.String(), 50))
		}
		res, err := (&http.Client{Transport: tr}).Get(client + "/health")
		if err != nil {
			return false, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode == http.StatusOK && strings.Contains(string(b), `"health":"true"`), string(b)
	})
	return client, ca
}

// freeAddr returns a loopback address with a port free at the time of the
// call.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
