package imagetest

import (
	"net/http"
	"os"
	"testing"
)

func TestStartRegistry(t *testing.T) {
	r := StartRegistry(t)
	ref, digest := r.PushLayers(t, "tiny:1", Config{Cmd: []string{"/x"}}, Tar(t, Entry{Name: "x", Body: "hi"}))
	if ref != r.Addr+"/tiny:1" || len(digest) != len("sha256:")+64 {
		t.Fatalf("push = %q, %q", ref, digest)
	}
	ls := r.LayerDigests(t, ref)
	if len(ls) != 1 {
		t.Fatalf("layers = %v, want 1", ls)
	}
	if _, err := os.Stat(r.BlobPath(ls[0])); err != nil {
		t.Fatalf("blob not in storage: %v", err)
	}
	r.PushMalformed(t, "bad", "v1")
}

func TestStartRegistryAuth(t *testing.T) {
	r := StartRegistryAuth(t, "alice", "s3cret")
	resp, err := http.Get("http://" + r.Addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous /v2/ = %s, want 401", resp.Status)
	}
	r.PushLayers(t, "tiny:1", Config{}, Tar(t, Entry{Name: "x", Body: "hi"}))
}

func TestStaticServerImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go program")
	}
	r := StartRegistry(t)
	ref, _ := StaticServerImage(t, r)
	if ref != r.Addr+"/static:test" {
		t.Fatalf("ref = %q", ref)
	}
	if n := len(r.LayerDigests(t, ref)); n != 1 {
		t.Fatalf("layers = %d, want 1", n)
	}
}
