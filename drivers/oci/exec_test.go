package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/dcos-kernel/dcos/internal/imagetest"
	"github.com/dcos-kernel/dcos/sdk/plugin"
)

// probeSrc is a static program for an image: "probe sleep" sleeps (the
// task), "probe" prints what an exec sees and exits 7.
const probeSrc = `package main

import (
	"encoding/json"
	"os"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "sleep" {
		time.Sleep(time.Hour)
		return
	}
	host, _ := os.Hostname()
	cwd, _ := os.Getwd()
	_, err := os.Stat("/bin/probe")
	json.NewEncoder(os.Stdout).Encode(map[string]any{"host": host, "uid": os.Getuid(), "pid": os.Getpid(),
		"cwd": cwd, "x": os.Getenv("X"), "in_image": err == nil})
	os.Stderr.WriteString("to stderr\n")
	os.Exit(7)
}
`

// probeImage builds probeSrc into /bin/probe of an image whose entrypoint
// is "probe sleep" and pushes it.
func probeImage(t *testing.T, reg *imagetest.Registry) string {
	t.Helper()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(probeSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module probe\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rootfs := t.TempDir()
	for _, d := range []string{"bin", "tmp", "etc"} {
		if err := os.Mkdir(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(gobin, "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(rootfs, "bin", "probe"), ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build probe: %v: %s", err, out)
	}
	ref, _ := reg.PushDir(t, "probe:test", rootfs, imagetest.Config{Entrypoint: []string{"probe", "sleep"},
		Env: []string{"PATH=/bin"}})
	return ref
}

// TestDriver_ExecTask: exec into a container task runs inside the
// container: its root (the command found in the image, not on the node),
// hostname, user, pid namespace.
func TestDriver_ExecTask(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	reg := imagetest.StartRegistry(t)
	ref := probeImage(t, reg)
	d := newDriver(t, t.TempDir())
	cfg := taskConfig(t, "ex-1", ref, nil)
	h, err := d.StartTask(ctx, cfg)
	if err != nil {
		t.Fatalf("StartTask: %v", err)
	}
	t.Cleanup(func() { d.DestroyTask(context.Background(), "ex-1", true) })
	var out, errb bytes.Buffer
	r, err := d.ExecTask(ctx, &plugin.ExecOptions{TaskID: "ex-1", Command: "probe", Env: map[string]string{"X": "y"}},
		plugin.ExecIO{Stdout: &out, Stderr: &errb})
	if err != nil {
		t.Fatalf("ExecTask: %v", err)
	}
	if r.ExitCode != 7 || errb.String() != "to stderr\n" {
		t.Fatalf("exit %+v, stderr %q, stdout %q", r, errb.String(), out.String())
	}
	var got struct {
		Host    string `json:"host"`
		UID     int    `json:"uid"`
		Pid     int    `json:"pid"`
		Cwd     string `json:"cwd"`
		X       string `json:"x"`
		InImage bool   `json:"in_image"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("probe output %q: %v", out.String(), err)
	}
	myHost, _ := os.Hostname()
	if !got.InImage || got.UID != 0 || got.X != "y" || got.Host == myHost || got.Pid == h.PID || got.Pid > 1000 {
		t.Errorf("exec saw %+v; want the container's root, the image's user (root), its own hostname and pid namespace", got)
	}
	r, err = d.ExecTask(ctx, &plugin.ExecOptions{TaskID: "ex-1", Command: "sh"}, plugin.ExecIO{Stdout: io.Discard, Stderr: &errb})
	if err != nil || r.ExitCode != 127 {
		t.Errorf("exec of a command the image lacks: %+v %v; want 127 (the node's sh is not visible)", r, err)
	}
}
