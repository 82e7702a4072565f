package store

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/seal"
	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// grepDir returns the files under dir that hold needle.
func grepDir(t *testing.T, dir string, needle []byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) {
			hits = append(hits, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// TestEtcd_SecretsNotInDataFiles launches a task with a secret env value
// and writes a secret state value through a kernel on a sealing store,
// then reads every file of etcd's data dir (WAL, snapshots, bbolt db):
// neither secret is there, while the plain env and state values — the
// control that shows the grep finds what is there — are. Load (the
// shared decoder) opens the state value again, and a store without the
// key refuses to load it.
func TestEtcd_SecretsNotInDataFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, err := StartEmbedded(EmbeddedConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	kek, err := seal.NewKeyring(seal.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	s := New(e.Client(), "").WithSealer(kek)
	k, err := kernel.New(ctx, kernel.Config{Store: s, Sealer: kek, HeartbeatTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	kctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { k.Run(kctx); close(done) }()
	defer func() { stop(); <-done }()

	const (
		secretEnv   = "env-secret-7f3a9c2e"
		plainEnv    = "env-plain-1b8d4e6f"
		secretState = "state-secret-5c0e1a7d"
		plainState  = "state-plain-9a2f6b3c"
	)
	ops := kernel.Principal{Name: "ops", Role: kernel.RoleOperator}
	fw := kernel.Principal{Name: "fw", Role: kernel.RoleFramework}
	if _, err := k.RegisterAgent(ctx, ops, &pb.RegisterAgentRequest{Hostname: "h", Resources: &pb.Resources{Cpus: 4, MemBytes: 4 << 30}}); err != nil {
		t.Fatal(err)
	}
	a, err := k.Allocate(ctx, fw, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Launch(ctx, fw, &pb.LaunchRequest{AllocationId: a.GetAllocations()[0].GetId(), Command: "/bin/true",
		Env: map[string]string{"PLAIN": plainEnv}, SecretEnv: map[string]string{"SECRET": secretEnv}}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.StatePut(ctx, fw, &pb.StatePutRequest{Key: "secret", Value: []byte(secretState), Secret: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.StatePut(ctx, fw, &pb.StatePutRequest{Key: "plain", Value: []byte(plainState)}); err != nil {
		t.Fatal(err)
	}

	st, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var opened bool
	for _, se := range st.StateEntries {
		opened = opened || (se.GetKey() == "secret" && string(se.GetValue()) == secretState && se.GetSecret())
	}
	if !opened {
		t.Errorf("Load did not open the secret state entry: %v", st.StateEntries)
	}
	if _, err := New(e.Client(), "").Load(ctx); !errors.Is(err, errNoSealer) {
		t.Errorf("Load without a key: %v; want errNoSealer", err)
	}

	stop()
	<-done
	e.Close() // etcd's files as they rest
	for _, v := range []string{plainEnv, plainState} {
		if len(grepDir(t, dir, []byte(v))) == 0 {
			t.Fatalf("control: the plain value %q is in none of etcd's files; the grep proves nothing", v)
		}
	}
	for _, v := range []string{secretEnv, secretState} {
		if hits := grepDir(t, dir, []byte(v)); len(hits) > 0 {
			t.Errorf("the secret value %q is in clear in %v", v, hits)
		}
	}
}

// TestEtcd_SecretStateFollower: the follower decodes (and opens) a
// secret state entry as Load does.
func TestEtcd_SecretStateFollower(t *testing.T) {
	ctx := context.Background()
	s, _ := startStore(t)
	kek, err := seal.NewKeyring(seal.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	s.WithSealer(kek)
	key := kernel.StateKey{Owner: "fw", Key: "k"}
	if _, err := s.Commit(ctx, &kernel.Changes{State: map[kernel.StateKey]*pb.StateEntry{key: {Key: "k", Owner: "fw", Value: []byte("v1"), Secret: true}}}); err != nil {
		t.Fatal(err)
	}
	f := s.Follow(ctx, quietLog())
	defer f.Stop()
	// One entry loaded at start, one applied from the watch.
	key2 := kernel.StateKey{Owner: "fw", Key: "k2"}
	if _, err := s.Commit(ctx, &kernel.Changes{State: map[kernel.StateKey]*pb.StateEntry{key2: {Key: "k2", Owner: "fw", Value: []byte("v2"), Secret: true}}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var st *kernel.State
	for {
		st, err = f.State(ctx)
		if !errors.Is(err, ErrNotWarm) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range st.StateEntries {
		got[e.GetKey()] = string(e.GetValue())
	}
	if len(got) != 2 || got["k"] != "v1" || got["k2"] != "v2" {
		t.Errorf("follower state %v; want k=v1 k2=v2, opened", got)
	}
	raw, err := s.cli.Get(ctx, s.stateKey(key))
	if err != nil || len(raw.Kvs) != 1 || bytes.Contains(raw.Kvs[0].Value, []byte("v1")) {
		t.Errorf("stored %v, %v; want ciphertext", raw, err)
	}
}
