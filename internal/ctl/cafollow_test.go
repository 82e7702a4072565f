package ctl

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/clientconfig"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/sdk/transport"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// caAdmin is the API's CA of a rotatingKernel: CARotate only.
type caAdmin struct{ rk *kerneltest.Rotating }

func (a caAdmin) IssueFor(kernel.Principal, []byte) ([]byte, []byte, error) {
	return nil, nil, errors.New("no client certificates in this test")
}

func (a caAdmin) RotateCA(ctx context.Context, overlap, validity time.Duration) (*pb.CARotateResponse, error) {
	prev := a.rk.Auth.State()
	st, err := a.rk.Auth.Rotate(ctx, overlap, validity)
	if err != nil {
		return nil, err
	}
	return &pb.CARotateResponse{Ca: &pb.CertInfo{Fingerprint: st.Active.ID()}, Previous: &pb.CertInfo{Fingerprint: prev.Active.ID()}, RetireAt: timestamppb.New(st.RetireAt)}, nil
}

func (a caAdmin) ListCerts(context.Context) (*pb.CertListResponse, error) {
	return &pb.CertListResponse{}, nil
}

// startRotatingKernel is kerneltest.StartRotating answering CARotate
// (caAdmin); its URL is "https://" + Addr.
func startRotatingKernel(t *testing.T) *kerneltest.Rotating {
	return kerneltest.StartRotating(t, func(c *api.Config, rk *kerneltest.Rotating) { c.Certs = caAdmin{rk} })
}

// closeAllIdle closes the idle connections of every CA bundle's clients,
// so that the next command makes new ones (each dcosctl run is a new
// process outside tests).
func closeAllIdle() {
	caTLSs.Range(func(_, conf any) bool {
		transport.CloseIdleConnections(conf.(*tls.Config))
		return true
	})
}

// TestCA_ClientConfigFollowsRotation: a client config written as dcosd
// dev writes it follows a CA rotation: "dcosctl ca rotate" rewrites its
// CA at once (mode 0600 kept, said once on stderr); commands work after
// the previous CA retired; the next check, CACheckInterval later, takes
// the retired bundle; a copy of the config that was not used during the
// overlap (what every config was before) fails after the retirement and
// is not touched.
func TestCA_ClientConfigFollowsRotation(t *testing.T) {
	isolate(t)
	rk := startRotatingKernel(t)
	dir := t.TempDir()
	path, stale := filepath.Join(dir, "config.json"), filepath.Join(dir, "stale.json")
	first := clientconfig.Config{Kernel: "https://" + rk.Addr, Token: kerneltest.OperatorToken, CA: string(rk.Auth.State().Bundle.PEM())}
	for _, p := range []string{path, stale} {
		if err := clientconfig.Save(p, first); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	ctl := func(cfg string, args ...string) result {
		t.Helper()
		closeAllIdle()
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"dcosctl", "--config", cfg}, args...),
			&env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, now: func() time.Time { return now }})
		return result{out.String(), errb.String(), code}
	}
	load := func(p string) clientconfig.Config {
		t.Helper()
		c, err := clientconfig.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	for _, p := range []string{path, stale} {
		if r := ctl(p, "agents"); r.code != 0 || strings.Contains(r.stderr, "changed") {
			t.Fatalf("agents before the rotation: %+v", r)
		}
	}
	if c := load(path); c.CA != first.CA || !c.CACheckedAt.Equal(now) {
		t.Fatalf("after the first command, CA changed %v, checked at %v; want the same CA checked at %v", c.CA != first.CA, c.CACheckedAt, now)
	}

	r := ctl(path, "ca", "rotate", "--overlap", api.MinCAOverlap.String())
	if r.code != 0 {
		t.Fatalf("ca rotate: %+v", r)
	}
	overlap := string(rk.Auth.State().Bundle.PEM())
	if c := load(path); c.CA != overlap {
		t.Fatalf("after ca rotate, the config's CA is not the overlap's bundle of 2 CAs")
	}
	if n := strings.Count(r.stderr, "CA bundle changed"); n != 1 {
		t.Errorf("ca rotate said %d times that the bundle changed, want once:\n%s", n, r.stderr)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the rewritten config: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}

	rk.Retire(t)
	if r := ctl(path, "agents"); r.code != 0 || strings.Contains(r.stderr, "changed") {
		t.Fatalf("agents after the retirement, with the overlap's bundle, no check due: %+v", r)
	}
	if r := ctl(stale, "agents"); r.code == 0 || !strings.Contains(r.stderr, "x509") {
		t.Errorf("a config not used during the overlap, after the retirement: %+v, want an x509 error", r)
	}
	if c := load(stale); c.CA != first.CA {
		t.Errorf("the stale config was rewritten")
	}

	now = now.Add(clientconfig.CACheckInterval)
	r = ctl(path, "agents")
	if r.code != 0 || strings.Count(r.stderr, "CA bundle changed") != 1 {
		t.Fatalf("agents with a check due after the retirement: %+v, want success and one notice", r)
	}
	if c := load(path); c.CA != string(rk.Auth.State().Bundle.PEM()) || c.CAFingerprint() != rk.Auth.State().Fingerprint() || !c.CACheckedAt.Equal(now) {
		t.Errorf("after the check, the config's CA is not the retired bundle of the new CA alone, or not checked at %v", now)
	}
	if r := ctl(path, "agents"); r.code != 0 || r.stderr != "" {
		t.Errorf("the next command: %+v, want success and nothing on stderr", r)
	}
}

// TestFollowCA_RefusesBadBundle: a ClusterInfo answer whose bundle does
// not match its fingerprint, or holds no certificate, leaves the config
// as it was, with a warning; a kernel that answers no fingerprint (an
// older one) only records the check.
func TestFollowCA_RefusesBadBundle(t *testing.T) {
	isolate(t)
	k := &fakeKernel{}
	url, caFile, _ := k.serveTLS(t)
	pinned := string(mustRead(t, caFile))
	other := "not a bundle"
	tests := []struct {
		name, wantStderr string
		res              *pb.ClusterInfoResponse
	}{
		{"fingerprint mismatch", "does not match its fingerprint", &pb.ClusterInfoResponse{CaBundle: []byte(pinned + pinned), CaBundleFingerprint: clientconfig.Config{CA: pinned + "x"}.CAFingerprint()}},
		{"no certificate", "holds no PEM certificate", &pb.ClusterInfoResponse{CaBundle: []byte(other), CaBundleFingerprint: clientconfig.Config{CA: other}.CAFingerprint()}},
		{"older kernel", "", &pb.ClusterInfoResponse{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k.replyWith("ClusterInfo", tt.res, nil)
			path := filepath.Join(t.TempDir(), "config.json")
			if err := clientconfig.Save(path, clientconfig.Config{Kernel: url, Token: "t", CA: pinned}); err != nil {
				t.Fatal(err)
			}
			r := runCtl(t, context.Background(), "", "--config", path, "agents")
			if r.code != 0 {
				t.Fatalf("agents: %+v", r)
			}
			if tt.wantStderr == "" && r.stderr != "" || !strings.Contains(r.stderr, tt.wantStderr) {
				t.Errorf("stderr %q, want %q", r.stderr, tt.wantStderr)
			}
			c, err := clientconfig.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if c.CA != pinned {
				t.Errorf("the config's CA was rewritten")
			}
			if checked := !c.CACheckedAt.IsZero(); checked != (tt.wantStderr == "") {
				t.Errorf("check recorded: %v, want %v", checked, tt.wantStderr == "")
			}
		})
	}
}

// TestFollowCA_UnreachableRecordsTheCheck: a check that cannot reach the
// kernels records its time, so that the commands that follow do not each
// wait for it again before their own call fails.
func TestFollowCA_UnreachableRecordsTheCheck(t *testing.T) {
	isolate(t)
	k := &fakeKernel{}
	_, caFile, _ := k.serveTLS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "https://" + ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	path := filepath.Join(t.TempDir(), "config.json")
	if err := clientconfig.Save(path, clientconfig.Config{Kernel: dead, Token: "t", CA: string(mustRead(t, caFile))}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if r := runCtl(t, ctx, "", "--config", path, "agents"); r.code == 0 {
		t.Fatalf("agents against a closed port succeeded: %+v", r)
	}
	c, err := clientconfig.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.CACheckedAt.IsZero() {
		t.Error("the failed check was not recorded")
	}
}
