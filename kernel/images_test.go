package kernel

import (
	"slices"
	"strings"
	"testing"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

const (
	webRef    = "127.0.0.1:5000/web:1"
	webDigest = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
	apiRef    = "127.0.0.1:5000/api:2"
)

// imageCluster is two agents, agent-1 with web and api, agent-2 with web
// under another tag (same digest), as reported in heartbeats.
func imageCluster(t *testing.T) *Table {
	t.Helper()
	tb := cluster(t, agentReq(4, 1024, nil), agentReq(4, 1024, nil))
	for id, ims := range map[string][]*pb.ImageInfo{
		"agent-1": {{Ref: webRef, Digest: webDigest, SizeBytes: 5 << 20, Tasks: 1, Driver: "oci"}, {Ref: apiRef, Digest: "sha256:02", Driver: "oci"}},
		"agent-2": {{Ref: "127.0.0.1:5000/web:latest", Digest: webDigest, Driver: "oci"}},
	} {
		if err := tb.Heartbeat(ops, &pb.HeartbeatRequest{AgentId: id, Images: &pb.ImageList{Images: ims}}, t0); err != nil {
			t.Fatal(err)
		}
	}
	return tb
}

func agentImages(tb *Table, id string) []string {
	var refs []string
	for _, g := range tb.Agents() {
		if g.GetId() == id {
			for _, im := range g.GetImages() {
				refs = append(refs, im.GetRef())
			}
		}
	}
	slices.Sort(refs)
	return refs
}

func TestTable_HeartbeatImages(t *testing.T) {
	tb := imageCluster(t)
	if got, want := agentImages(tb, "agent-1"), []string{apiRef, webRef}; !slices.Equal(got, want) {
		t.Errorf("agent-1 images = %v, want %v", got, want)
	}
	for _, g := range tb.Agents() {
		if g.GetId() == "agent-1" {
			for _, im := range g.GetImages() {
				if im.GetRef() == webRef && (im.GetTasks() != 1 || im.GetSizeBytes() != 5<<20 || im.GetDriver() != "oci") {
					t.Errorf("agent-1 %s = %v, want the heartbeat's fields", webRef, im)
				}
			}
		}
	}
	// Without images the list is kept; with an empty list it is emptied.
	if err := tb.Heartbeat(ops, &pb.HeartbeatRequest{AgentId: "agent-1"}, t0); err != nil {
		t.Fatal(err)
	}
	if got := agentImages(tb, "agent-1"); len(got) != 2 {
		t.Errorf("agent-1 images after a heartbeat without a list = %v, want kept", got)
	}
	if err := tb.Heartbeat(ops, &pb.HeartbeatRequest{AgentId: "agent-1", Images: &pb.ImageList{}}, t0); err != nil {
		t.Fatal(err)
	}
	if got := agentImages(tb, "agent-1"); len(got) != 0 {
		t.Errorf("agent-1 images after an empty list = %v, want none", got)
	}
}

func TestTable_RemoveImage(t *testing.T) {
	tests := []struct {
		name      string
		p         Principal
		req       *pb.RemoveImageRequest
		wantCode  Code // for errors
		wantField string
		wantIDs   []string
		queued    map[string][]string // what the next heartbeats deliver
	}{
		{name: "by ref, all agents", p: ops, req: &pb.RemoveImageRequest{Ref: webRef},
			wantIDs: []string{"agent-1"}, queued: map[string][]string{"agent-1": {webRef}}},
		{name: "by digest, all agents", p: ops, req: &pb.RemoveImageRequest{Ref: webDigest},
			wantIDs: []string{"agent-1", "agent-2"}, queued: map[string][]string{"agent-1": {webDigest}, "agent-2": {webDigest}}},
		{name: "one agent", p: ops, req: &pb.RemoveImageRequest{AgentId: "agent-2", Ref: webDigest},
			wantIDs: []string{"agent-2"}, queued: map[string][]string{"agent-2": {webDigest}}},
		{name: "agent without it", p: ops, req: &pb.RemoveImageRequest{AgentId: "agent-2", Ref: apiRef}},
		{name: "nobody has it", p: ops, req: &pb.RemoveImageRequest{Ref: "127.0.0.1:5000/nope:1"}},
		{name: "framework", p: fwA, req: &pb.RemoveImageRequest{Ref: webRef}, wantCode: PermissionDenied},
		{name: "agent token", p: Principal{Name: "a", Role: RoleAgent}, req: &pb.RemoveImageRequest{Ref: webRef}, wantCode: PermissionDenied},
		{name: "unknown agent", p: ops, req: &pb.RemoveImageRequest{AgentId: "agent-9", Ref: webRef}, wantCode: NotFound, wantField: "agent_id"},
		{name: "bad agent id", p: ops, req: &pb.RemoveImageRequest{AgentId: "a b", Ref: webRef}, wantCode: InvalidArgument, wantField: "agent_id"},
		{name: "empty ref", p: ops, req: &pb.RemoveImageRequest{}, wantCode: InvalidArgument, wantField: "ref"},
		{name: "long ref", p: ops, req: &pb.RemoveImageRequest{Ref: strings.Repeat("a", MaxImageRef+1)}, wantCode: InvalidArgument, wantField: "ref"},
		{name: "ref with space", p: ops, req: &pb.RemoveImageRequest{Ref: "web 1"}, wantCode: InvalidArgument, wantField: "ref"},
		{name: "ref with NUL", p: ops, req: &pb.RemoveImageRequest{Ref: "web\x001"}, wantCode: InvalidArgument, wantField: "ref"},
		{name: "ref with newline", p: ops, req: &pb.RemoveImageRequest{Ref: "web\n"}, wantCode: InvalidArgument, wantField: "ref"},
		{name: "ref not UTF-8", p: ops, req: &pb.RemoveImageRequest{Ref: "web\xff"}, wantCode: InvalidArgument, wantField: "ref"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := imageCluster(t)
			resp, err := tb.RemoveImage(tt.p, tt.req)
			if tt.wantCode != Internal || tt.wantField != "" {
				if err == nil || CodeOf(err) != tt.wantCode || !strings.HasPrefix(err.Error(), tt.wantField) {
					t.Fatalf("RemoveImage = %v, %v; want %s naming %q", resp, err, tt.wantCode, tt.wantField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(resp.GetAgentIds(), tt.wantIDs) {
				t.Errorf("agent_ids = %v, want %v", resp.GetAgentIds(), tt.wantIDs)
			}
			for _, id := range []string{"agent-1", "agent-2"} {
				if got := tb.TakeImageRemovals(id); !slices.Equal(got, tt.queued[id]) {
					t.Errorf("removals for %s = %v, want %v", id, got, tt.queued[id])
				}
				if again := tb.TakeImageRemovals(id); len(again) != 0 {
					t.Errorf("removals for %s delivered twice: %v", id, again)
				}
			}
		})
	}
}

func TestTable_RemoveImageQueue(t *testing.T) {
	tb := imageCluster(t)
	for range 3 { // asked again before the agent heartbeats: queued once
		if _, err := tb.RemoveImage(ops, &pb.RemoveImageRequest{Ref: webRef}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.RemoveImage(ops, &pb.RemoveImageRequest{Ref: apiRef}); err != nil {
		t.Fatal(err)
	}
	if got, want := tb.TakeImageRemovals("agent-1"), []string{webRef, apiRef}; !slices.Equal(got, want) {
		t.Errorf("removals = %v, want %v (once each, in order)", got, want)
	}

	// A full queue refuses new refs until the agent takes it.
	var ims []*pb.ImageInfo
	for i := range MaxImageRemovals + 1 {
		ims = append(ims, &pb.ImageInfo{Ref: "r/" + strings.Repeat("x", i+1)})
	}
	if err := tb.Heartbeat(ops, &pb.HeartbeatRequest{AgentId: "agent-1", Images: &pb.ImageList{Images: ims}}, t0); err != nil {
		t.Fatal(err)
	}
	for _, im := range ims[:MaxImageRemovals] {
		if _, err := tb.RemoveImage(ops, &pb.RemoveImageRequest{Ref: im.GetRef()}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.RemoveImage(ops, &pb.RemoveImageRequest{Ref: ims[MaxImageRemovals].GetRef()}); CodeOf(err) != ResourceExhausted {
		t.Errorf("removal beyond the queue: err = %v, want ResourceExhausted", err)
	}
	if _, err := tb.RemoveImage(ops, &pb.RemoveImageRequest{Ref: ims[0].GetRef()}); err != nil {
		t.Errorf("a removal already queued, asked again on a full queue: %v", err)
	}
	if got := tb.TakeImageRemovals("agent-1"); len(got) != MaxImageRemovals {
		t.Errorf("took %d removals, want %d", len(got), MaxImageRemovals)
	}
}

func TestValidateHeartbeat_Images(t *testing.T) {
	im := func(f func(*pb.ImageInfo)) *pb.HeartbeatRequest {
		i := &pb.ImageInfo{Ref: webRef, Digest: webDigest, Driver: "oci"}
		f(i)
		return &pb.HeartbeatRequest{AgentId: "agent-1", Images: &pb.ImageList{Images: []*pb.ImageInfo{i}}}
	}
	for _, tc := range []struct {
		name string
		req  *pb.HeartbeatRequest
		want string // field named; "" for valid
	}{
		{"valid", im(func(*pb.ImageInfo) {}), ""},
		{"no digest", im(func(i *pb.ImageInfo) { i.Digest = "" }), ""},
		{"too many", &pb.HeartbeatRequest{Images: &pb.ImageList{Images: make([]*pb.ImageInfo, MaxImages+1)}}, "images:"},
		{"empty ref", im(func(i *pb.ImageInfo) { i.Ref = "" }), "images.images[0].ref"},
		{"ref with tab", im(func(i *pb.ImageInfo) { i.Ref = "a\tb" }), "images.images[0].ref"},
		{"long digest", im(func(i *pb.ImageInfo) { i.Digest = strings.Repeat("d", MaxImageRef+1) }), "images.images[0].digest"},
		{"long driver", im(func(i *pb.ImageInfo) { i.Driver = strings.Repeat("d", MaxStringLen+1) }), "images.images[0].driver"},
		{"negative size", im(func(i *pb.ImageInfo) { i.SizeBytes = -1 }), "images.images[0]"},
		{"negative tasks", im(func(i *pb.ImageInfo) { i.Tasks = -1 }), "images.images[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateHeartbeat(tc.req)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			if CodeOf(err) != InvalidArgument || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("err = %v, want InvalidArgument naming %q", err, tc.want)
			}
		})
	}
}
