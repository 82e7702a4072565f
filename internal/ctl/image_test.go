package ctl

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	"github.com/dcos-kernel/dcos/kernel"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

const (
	webRef    = "127.0.0.1:5000/web:1"
	webDigest = "sha256:4c1f0e3a9d7b2c58e6a1f0d9b3c7e2a54c1f0e3a9d7b2c58e6a1f0d9b3c7e2a5"
	apiRef    = "127.0.0.1:5000/api:2"
	apiDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000002"
)

// imageNode plays an agent's side of the image protocol against the real
// kernel: it heartbeats its image list and, for each removal the kernel
// answers, drops the images it names that no task uses, as the agent
// (agent/images.go) and an image driver do.
type imageNode struct {
	id     string
	mu     sync.Mutex
	images []*syscallsv1.ImageInfo
}

func (n *imageNode) run(ctx context.Context, t *testing.T, k syscallsv1connect.KernelClient) {
	for ctx.Err() == nil {
		n.mu.Lock()
		list := &syscallsv1.ImageList{}
		for _, im := range n.images {
			list.Images = append(list.Images, proto.Clone(im).(*syscallsv1.ImageInfo))
		}
		n.mu.Unlock()
		resp, err := k.Heartbeat(ctx, connect.NewRequest(&syscallsv1.HeartbeatRequest{AgentId: n.id, Images: list}))
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("heartbeat %s: %v", n.id, err)
			}
			return
		}
		n.mu.Lock()
		for _, ref := range resp.Msg.GetRemoveImages() {
			var kept []*syscallsv1.ImageInfo
			for _, im := range n.images {
				if (im.GetRef() == ref || im.GetDigest() == ref) && im.GetTasks() == 0 {
					continue
				}
				kept = append(kept, im)
			}
			n.images = kept
		}
		n.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestRun_Image(t *testing.T) {
	isolate(t)
	srv := kerneltest.Start(t, kerneltest.Options{Kernel: func(c *kernel.Config) { c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil)) }})
	op := kclient.New(srv.URL, kerneltest.OperatorToken)
	ctx := context.Background()
	used := timestamppb.New(testNow.Add(-5 * time.Minute))
	nodes := []*imageNode{
		{images: []*syscallsv1.ImageInfo{
			{Ref: webRef, Digest: webDigest, SizeBytes: 5 << 20, Tasks: 1, Driver: "oci", LastUsed: used},
			{Ref: apiRef, Digest: apiDigest, SizeBytes: 1 << 30, Driver: "oci"},
		}},
		{images: []*syscallsv1.ImageInfo{{Ref: webRef, Digest: webDigest, SizeBytes: 5 << 20, Driver: "oci"}}},
	}
	for i, n := range nodes {
		reg, err := op.RegisterAgent(ctx, connect.NewRequest(&syscallsv1.RegisterAgentRequest{Hostname: "node", Resources: &syscallsv1.Resources{Cpus: 1, MemBytes: 1 << 30}}))
		if err != nil {
			t.Fatal(err)
		}
		n.id = reg.Msg.GetAgentId()
		if _, err := op.Heartbeat(ctx, connect.NewRequest(&syscallsv1.HeartbeatRequest{AgentId: n.id, Images: &syscallsv1.ImageList{Images: n.images}})); err != nil {
			t.Fatalf("node %d heartbeat: %v", i, err)
		}
	}
	a1, a2 := nodes[0].id, nodes[1].id
	ctl := func(args ...string) result {
		t.Helper()
		return runCtl(t, ctx, "", append([]string{"--kernel", srv.URL, "--token", kerneltest.OperatorToken, "image"}, args...)...)
	}

	t.Run("ls", func(t *testing.T) {
		r := ctl("ls")
		want := [][]string{
			{"AGENT", "DRIVER", "IMAGE", "DIGEST", "SIZE", "TASKS", "LAST", "USED"},
			{a1, "oci", apiRef, "sha256:000000000000", "1Gi", "0", "never"},
			{a1, "oci", webRef, "sha256:4c1f0e3a9d7b", "5Mi", "1", "5m", "ago"},
			{a2, "oci", webRef, "sha256:4c1f0e3a9d7b", "5Mi", "0", "never"},
		}
		if got := rows(r.stdout); r.code != 0 || !equalRows(got, want) {
			t.Errorf("exit %d %s\ngot\n%s\nwant %q", r.code, r.stderr, r.stdout, want)
		}
		r = ctl("ls", "--agent", a2, "-o", "json")
		var out struct {
			Images []map[string]any `json:"images"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); r.code != 0 || err != nil {
			t.Fatalf("ls -o json: exit %d, %v:\n%s%s", r.code, err, r.stdout, r.stderr)
		}
		if len(out.Images) != 1 || out.Images[0]["agentId"] != a2 || out.Images[0]["digest"] != webDigest || out.Images[0]["ref"] != webRef {
			t.Errorf("ls --agent %s -o json = %v, want its one image with agentId and the full digest", a2, out.Images)
		}
		if r := ctl("ls", "--agent", "agent-99"); r.code != 1 || !strings.Contains(r.stderr, "no agent agent-99") {
			t.Errorf("ls --agent agent-99: exit %d, stderr %q; want 1 naming the agent", r.code, r.stderr)
		}
	})

	t.Run("rm errors", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{"rm"}, 2, "want one REF"},
			{[]string{"rm", "a", "b"}, 2, "want one REF"},
			{[]string{"rm", "x", "--wait", "-1s"}, 2, "--wait"},
			{[]string{"rm", "web 1"}, 1, "InvalidArgument: ref:"},
			{[]string{"rm", webRef, "--agent", "agent-99"}, 1, "NotFound: agent_id:"},
			{[]string{"rm", "127.0.0.1:5000/nope:1"}, 1, "no agent lists image 127.0.0.1:5000/nope:1"},
			{[]string{"rm", apiRef, "--agent", a2}, 1, "agent " + a2 + " does not list image " + apiRef},
		} {
			if r := ctl(tc.args...); r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("image %s: exit %d, stderr %q; want %d with %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.code, tc.want)
			}
		}
	})

	// From here the nodes carry out removals.
	nctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() { n.run(nctx, t, op) })
	}
	t.Cleanup(func() { cancel(); wg.Wait() })

	t.Run("rm unused", func(t *testing.T) {
		r := ctl("rm", apiRef)
		if r.code != 0 || strings.TrimSpace(r.stdout) != apiRef+" removed from "+a1 {
			t.Errorf("rm %s: exit %d, stdout %q, stderr %q", apiRef, r.code, r.stdout, r.stderr)
		}
	})
	t.Run("rm in use", func(t *testing.T) {
		r := ctl("rm", webDigest, "--wait", "2s")
		want := "still listed by " + a1 + " (" + webRef + ", 1 tasks)"
		if r.code != 1 || !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, a2) {
			t.Errorf("rm %s: exit %d, stderr %q; want 1 naming only %s", webDigest, r.code, r.stderr, want)
		}
		if r := ctl("ls"); len(rows(r.stdout)) != 2 {
			t.Errorf("ls after rm:\n%s\nwant only %s on %s", r.stdout, webRef, a1)
		}
	})
	t.Run("rm no wait", func(t *testing.T) {
		r := ctl("rm", webRef, "--wait", "0")
		if r.code != 0 || strings.TrimSpace(r.stdout) != "removal of "+webRef+" sent to "+a1 {
			t.Errorf("rm --wait 0: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("help", func(t *testing.T) {
		r := ctl("rm", "--help")
		for _, s := range []string{"dcosctl image rm", "--wait", "--agent", "a task runs is kept"} {
			if r.code != 0 || !strings.Contains(r.stdout, s) {
				t.Errorf("rm --help: exit %d, lacks %q:\n%s", r.code, s, r.stdout)
			}
		}
	})
}
