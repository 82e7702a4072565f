package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/kclient"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// opsStep is one command block of docs/operations.md's "Setting up a
// cluster": the host it runs on (its first line, "# HOST") and its
// command lines.
type opsStep struct {
	host  string
	lines []string
}

// opsSteps reads the setup section's ```sh blocks, in order.
func opsSteps(t testing.TB) []opsStep {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Setting up a cluster\n")
	if !ok {
		t.Fatal(`docs/operations.md has no "## Setting up a cluster" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var steps []opsStep
	var cur *opsStep
	sc := bufio.NewScanner(strings.NewReader(section))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case l == "```sh":
			steps = append(steps, opsStep{})
			cur = &steps[len(steps)-1]
		case l == "```":
			cur = nil
		case cur != nil && cur.host == "":
			h, ok := strings.CutPrefix(l, "# ")
			if !ok {
				t.Fatalf("docs/operations.md: a setup block does not start with # HOST: %q", l)
			}
			cur.host = h
		case cur != nil && strings.TrimSpace(l) != "":
			cur.lines = append(cur.lines, l)
		}
	}
	return steps
}

// TestOpsDoc follows docs/operations.md's "Setting up a cluster"
// literally — the cluster CA and the etcd members' certificates, 3 etcd
// members over TLS with client certificates, 3 kernels, login, 2 agents
// joined with the bootstrap's join token, a task — with the doc's host
// names mapped to loopback addresses (127.0.0.1xx), its /var/lib,
// /etc/etcd and /root paths to a directory of the test's per host, and
// its `ssh HOST CMD` and `scp SRC… HOST:DST` to running CMD, and copying,
// between those directories; no file is written by hand. Then a token revoked through one
// kernel is refused by every kernel within 1 s.
func TestOpsDoc(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	steps := opsSteps(t)
	addr := map[string]string{
		"etcd-1": "127.0.0.121", "etcd-2": "127.0.0.122", "etcd-3": "127.0.0.123",
		"kernel-1": "127.0.0.111", "kernel-2": "127.0.0.112", "kernel-3": "127.0.0.113",
	}
	hostRE := regexp.MustCompile(`\b(etcd|kernel)-[123]\b`)
	vars := map[string]string{}
	subst := func(host, l string) string {
		l = hostRE.ReplaceAllStringFunc(l, func(h string) string { return addr[h] })
		l = strings.ReplaceAll(l, "/var/lib/etcd", e.path(host, "etcd"))
		l = strings.ReplaceAll(l, "/var/lib/dcos", e.path(host, "dcos"))
		l = strings.ReplaceAll(l, "/etc/etcd", e.path(host, "etc-etcd"))
		l = strings.ReplaceAll(l, "/root/dcos-ca", e.path(host, "dcos-ca"))
		for k, v := range vars {
			l = strings.ReplaceAll(l, "$"+k, v)
		}
		return l
	}
	e.extraEnv = append(e.extraEnv, "PATH="+bin.dir+":"+os.Getenv("PATH"))
	sh := func(host, line string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", subst(host, line))
		cmd.Env = e.baseEnv()
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return string(out) + stderr.String(), err
		}
		return string(out), nil
	}
	var kernels []string
	var k1 *proc
	nodes := 0
	for _, st := range steps {
		for _, l := range st.lines {
			line := subst(st.host, l)
			switch {
			case strings.HasPrefix(l, "ssh "):
				// ssh HOST CMD: CMD with HOST's paths.
				f := strings.SplitN(l, " ", 3)
				if out, err := sh(f[1], f[2]); err != nil {
					t.Fatalf("%s: %s: %v\n%s", st.host, line, err, out)
				}
			case strings.HasPrefix(l, "scp "):
				// scp [-p|-rp] SRC... HOST:DST: cp from this host's paths
				// to HOST's.
				f := strings.Fields(l)
				host, dst, ok := strings.Cut(f[len(f)-1], ":")
				if !ok {
					t.Fatalf("docs/operations.md: %q: the last argument is not HOST:PATH", l)
				}
				args := []string{"-p"}
				if f[1] == "-rp" {
					args = []string{"-rp"}
				}
				for _, src := range f[1 : len(f)-1] {
					if !strings.HasPrefix(src, "-") {
						args = append(args, subst(st.host, src))
					}
				}
				args = append(args, subst(host, dst))
				if out, err := exec.Command("cp", args...).CombinedOutput(); err != nil {
					t.Fatalf("%s: %s: cp %q: %v\n%s", st.host, line, args, err, out)
				}
			case strings.HasPrefix(l, "dcosd ca issue "):
				// Test only: loopback peers dial each other from
				// 127.0.0.1, not from their 127.0.0.12x, and etcd checks
				// a peer's certificate against its source address.
				if out, err := sh(st.host, l+" --ip 127.0.0.1"); err != nil {
					t.Fatalf("%s: %s: %v\n%s", st.host, line, err, out)
				}
			case strings.HasPrefix(l, "etcd "):
				os.MkdirAll(e.path(st.host), 0o700)
				e.startVia([]string{"/bin/sh", "-c", "exec " + line + " >" + e.path(st.host, "etcd.log") + " 2>&1"}, st.host, "")
			case strings.HasPrefix(l, "dcosd kernel "):
				if len(kernels) == 0 {
					pki := e.path("etcd-1", "etc-etcd", "pki")
					waitEtcd(t, []string{"--cacert", filepath.Join(pki, "ca.crt"), "--cert", filepath.Join(pki, addr["etcd-1"]+".crt"), "--key", filepath.Join(pki, addr["etcd-1"]+".key")},
						"https://127.0.0.121:2379", "https://127.0.0.122:2379", "https://127.0.0.123:2379")
				}
				p, url := e.startVia([]string{"/bin/sh", "-c", "exec " + line}, "dcosd kernel on "+st.host, "dcos kernel: listening at ")
				kernels = append(kernels, url)
				if k1 == nil {
					k1 = p
					// The bootstrap's lines, as the doc says to keep them.
					e.eventually("kernel-1's bootstrap lines", func() (bool, string) {
						out := p.stdout.String()
						login := regexp.MustCompile(`dcosctl login \S+ --token (\S+) --ca-fingerprint (sha256:[0-9a-f]{64})`).FindStringSubmatch(out)
						join := regexp.MustCompile(`dcosd agent --kernel \S+ --token (\S+)`).FindStringSubmatch(out)
						if login == nil || join == nil {
							return false, out
						}
						vars["OPERATOR_TOKEN"], vars["JOIN_TOKEN"], vars["CA_FINGERPRINT"] = login[1], join[1], login[2]
						return true, ""
					})
					// The test's own clients trust the cluster CA, as dcosctl
					// does once logged in.
					e.trustCA(e.path(st.host, "dcos", "pki", "ca.crt"))
				} else if strings.Contains(p.stdout.String(), "dcosctl login") {
					t.Errorf("%s bootstrapped again:\n%s", st.host, p.stdout.String())
				}
			case strings.HasPrefix(l, "dcosd agent "):
				nodes++
				dir := e.path(st.host, "dcos", "agent")
				e.mu.Lock()
				e.agentDirs = append(e.agentDirs, dir)
				e.mu.Unlock()
				// Test isolation only: the agents' task cgroups and BPF
				// pins where the harness cleans them up.
				extra := fmt.Sprintf(" --label e2e=%s --cgroup-parent %s/%s --bpf-pin-dir %s/%s", st.host, e.cgParent, st.host, e.pinDir, st.host)
				e.startVia([]string{"/bin/sh", "-c", "exec " + line + extra}, "dcosd agent on "+st.host, "")
				if nodes == 1 {
					e.mu.Lock()
					e.url, e.opToken = strings.Join(kernels, ","), vars["OPERATOR_TOKEN"]
					e.mu.Unlock()
				}
			default:
				if strings.HasPrefix(l, "dcosctl agents") {
					e.eventually("2 agents UP", func() (bool, string) {
						res, err := e.op().ListAgents(context.Background(), connect.NewRequest(&pb.ListAgentsRequest{}))
						if err != nil {
							return false, err.Error()
						}
						up := 0
						for _, a := range res.Msg.GetAgents() {
							if a.GetState() == pb.AgentState_AGENT_STATE_UP {
								up++
							}
						}
						return up == 2, sprint(res.Msg.GetAgents())
					})
				}
				out, err := sh(st.host, l)
				if err != nil {
					t.Fatalf("%s: %s: %v\n%s", st.host, line, err, out)
				}
				t.Logf("%s$ %s\n%s", st.host, l, out)
				switch {
				case strings.HasPrefix(l, "dcosctl kernels"):
					if strings.Count(out, "leader") != 1 || len(strings.Split(strings.TrimSpace(out), "\n")) != 4 {
						t.Errorf("dcosctl kernels: want 3 kernels, one leader:\n%s", out)
					}
				case strings.HasPrefix(l, "dcosctl agents"):
					if strings.Count(out, "UP") != 2 {
						t.Errorf("dcosctl agents: want 2 agents UP:\n%s", out)
					}
				case strings.HasPrefix(l, "dcosctl run"):
					if !strings.Contains(out, "t-") {
						t.Errorf("dcosctl run printed no task:\n%s", out)
					}
				}
			}
		}
	}
	if len(kernels) != 3 || nodes != 2 {
		t.Fatalf("the doc started %d kernels and %d agents, want 3 and 2", len(kernels), nodes)
	}
	if !k1.running() {
		t.Fatalf("kernel-1 exited: %v", k1.err)
	}

	// A framework token, used, then revoked: every kernel refuses it
	// within a second (each kernel's own address, not the list).
	out, err := sh("workstation", "dcosctl token create --role framework --name drill")
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	fw := strings.TrimSpace(strings.Split(strings.TrimSpace(out), "\n")[0])
	if _, err := e.client(fw).ListAllocations(context.Background(), connect.NewRequest(&pb.ListAllocationsRequest{})); err != nil {
		t.Fatalf("the new framework token: %v", err)
	}
	if out, err := sh("workstation", "dcosctl token revoke --name drill"); err != nil {
		t.Fatalf("token revoke: %v\n%s", err, out)
	}
	revoked := time.Now()
	for _, k := range kernels {
		c := kclient.NewTLS(k, fw, e.tls)
		for {
			_, err := c.ClusterInfo(context.Background(), connect.NewRequest(&pb.ClusterInfoRequest{}))
			if connect.CodeOf(err) == connect.CodeUnauthenticated {
				break
			}
			if time.Since(revoked) > time.Second {
				t.Fatalf("kernel %s still accepts the revoked token %v after the revocation (err %v)", k, time.Since(revoked).Round(time.Millisecond), err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// waitEtcd waits until every etcd client URL answers /health to curl
// with tlsArgs (its --cacert, --cert and --key).
func waitEtcd(t testing.TB, tlsArgs []string, urls ...string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		ok := 0
		for _, u := range urls {
			if out, err := exec.Command("curl", append(append([]string{"-sf", "--max-time", "1"}, tlsArgs...), u+"/health")...).Output(); err == nil && strings.Contains(string(out), `"true"`) {
				ok++
			}
		}
		if ok == len(urls) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("etcd %v not healthy within %v", urls, waitTimeout)
}
