package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// mountsUnder returns the mount points in /proc/self/mountinfo beneath dir.
func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

// waitEnded waits until task id has ended and returns it.
func waitEnded(e *env, id string) *pb.Task {
	e.t.Helper()
	var task *pb.Task
	e.eventually("task "+id+" ended", func() (bool, string) {
		task = taskByID(e, id)
		return task != nil && task.GetState() > pb.TaskState_TASK_STATE_RUNNING, sprint(task)
	})
	return task
}

// TestDev_StorageDiskLimit: with the local storage driver, a task's
// sandbox is limited to its disk: a writer past it gets ENOSPC (the task
// sees "No space left on device"), a writer within it succeeds in the
// next sandbox, and once the tasks ended nothing of theirs is mounted.
func TestDev_StorageDiskLimit(t *testing.T) {
	t.Parallel()
	needRoot(t)
	e := newEnv(t)
	e.startDev("--resources", "cpus=2,mem=2Gi,disk=10Gi", "--storage-driver", "local", "--sandbox-retention", "0")

	// 42 only if dd was stopped by ENOSPC: the sandbox is full, not the node.
	over := runTaskNoWait(e, "--cpus", "0.1", "--mem", "32Mi", "--disk", "16Mi", "--", "sh", "-c",
		`dd if=/dev/zero of=big bs=1M count=64 2>err; grep -q "No space left on device" err && exit 42; cat err; exit 1`)
	if task := waitEnded(e, over); task.GetState() != pb.TaskState_TASK_STATE_FAILED || task.GetExitCode() != 42 {
		t.Errorf("task writing 64 MiB into a 16 MiB sandbox: %v exit %d (%s), want FAILED with 42 (ENOSPC)",
			task.GetState(), task.GetExitCode(), task.GetReason())
	}
	within := runTaskNoWait(e, "--cpus", "0.1", "--mem", "32Mi", "--disk", "16Mi", "--", "sh", "-c",
		`dd if=/dev/zero of=f bs=1M count=8 && sync`)
	if task := waitEnded(e, within); task.GetState() != pb.TaskState_TASK_STATE_FINISHED {
		t.Errorf("task writing 8 MiB into a 16 MiB sandbox: %v (%s), want FINISHED", task.GetState(), task.GetReason())
	}
	e.eventually("nothing mounted in the agent's data dir after the tasks ended", func() (bool, string) {
		m := mountsUnder(e.path("data"))
		return len(m) == 0, strings.Join(m, "\n")
	})
}

// TestDev_PersistentVolume walks issue 7's persistent volume through dcosd
// dev and dcosctl: created with a first allocation of role db, its data is
// read back by tasks of later allocations of the role, after the first was
// revoked and after an agent (dev) restart; another role cannot claim it;
// a read-only host volume cannot be written; destroying it removes its data
// and frees its disk in the kernel's accounting; nothing is left mounted.
func TestDev_PersistentVolume(t *testing.T) {
	t.Parallel()
	needRoot(t)
	e := newEnv(t)
	certs := e.path("certs")
	if err := os.MkdirAll(certs, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"--resources", "cpus=2,mem=2Gi,disk=10Gi", "--storage-driver", "local", "--sandbox-retention", "0",
		"--host-volume", "certs=" + certs + ",ro"}
	dev := e.startDev(args...)
	agentDisk := func() int64 { return listAgents(t, e.op()).GetAgents()[0].GetAllocated().GetDiskBytes() }
	before := agentDisk()

	// runDone runs a task to its end and revokes its allocation.
	runDone := func(what string, want pb.TaskState, args ...string) *pb.Task {
		t.Helper()
		id := runTaskNoWait(e, append([]string{"--cpus", "0.1", "--mem", "32Mi"}, args...)...)
		task := waitEnded(e, id)
		if task.GetState() != want {
			t.Errorf("%s: task %v exit %d (%s), want %v", what, task.GetState(), task.GetExitCode(), task.GetReason(), want)
		}
		e.mustCtl("revoke", task.GetAllocationId())
		return task
	}
	runDone("write into a new volume", pb.TaskState_TASK_STATE_FINISHED,
		"--role", "db", "--volume", "data=16Mi:data", "--", "sh", "-c", "echo 42 > data/row")
	out := e.mustCtl("volume", "ls", "-o", "json")
	var ls pb.ListVolumesResponse
	if err := protojson.Unmarshal([]byte(out), &ls); err != nil {
		t.Fatalf("volume ls -o json: %v\n%s", err, out)
	}
	if vs := ls.GetVolumes(); len(vs) != 1 || vs[0].GetName() != "data" || vs[0].GetRole() != "db" || vs[0].GetAllocationId() != "" || vs[0].GetAgentId() == "" {
		t.Fatalf("volumes after the first allocation was revoked = %v, want data of db, free, on an agent", vs)
	}
	if d := agentDisk(); d != before+16<<20 {
		t.Errorf("agent allocated disk with the volume = %d, want %d (its 16 MiB)", d, before+16<<20)
	}
	read := []string{"--role", "db", "--volume", "data:data", "--", "sh", "-c", `test "$(cat data/row)" = 42`}
	runDone("read it back in a new allocation", pb.TaskState_TASK_STATE_FINISHED, read...)

	dev.kill()
	e.startDev(args...)
	runDone("read it back after an agent restart", pb.TaskState_TASK_STATE_FINISHED, read...)

	if _, stderr, code := e.ctl("run", "--cpus", "0.1", "--mem", "32Mi", "--role", "web", "--volume", "data:data", "--", "true"); code == 0 || !strings.Contains(stderr, "PermissionDenied") {
		t.Errorf("claim by another role: exit %d, stderr %q; want PermissionDenied", code, stderr)
	}
	runDone("write into a read-only host volume", pb.TaskState_TASK_STATE_FAILED, "--host-volume", "certs:certs", "--", "sh", "-c",
		`touch certs/x 2>err; grep -q "Read-only file system" err && exit 42; exit 0`)
	if _, err := os.Stat(filepath.Join(certs, "x")); err == nil {
		t.Error("a task wrote into a read-only host volume")
	}

	volDir := e.path("data", "agent", "plugins", "storage-local", "volumes", "data")
	if _, err := os.Stat(filepath.Join(volDir, "row")); err != nil {
		t.Fatalf("the volume's data on the agent: %v", err)
	}
	// volume create places a volume without a task; destroy takes several.
	if out := e.mustCtl("volume", "create", "extra", "--size", "8Mi", "--role", "db"); !strings.Contains(out, "extra") {
		t.Errorf("volume create:\n%s", out)
	}
	if out := e.mustCtl("volume", "ls"); !strings.Contains(out, "extra") {
		t.Errorf("volume ls after create:\n%s", out)
	}
	e.mustCtl("volume", "destroy", "data", "extra")
	e.eventually("the volume's data gone from its agent and its disk freed", func() (bool, string) {
		_, err := os.Stat(volDir)
		d := agentDisk()
		return os.IsNotExist(err) && d == before, fmt.Sprintf("dir: %v, agent disk %d, want %d", err, d, before)
	})
	if out := e.mustCtl("volume", "ls"); strings.Contains(out, "data") {
		t.Errorf("volume ls after destroy:\n%s", out)
	}
	e.eventually("nothing mounted in the agent's data dir after the tasks ended", func() (bool, string) {
		m := mountsUnder(e.path("data"))
		return len(m) == 0, strings.Join(m, "\n")
	})
}

// TestDev_VolumeOwnership: over the wire, a framework cannot claim or
// destroy another framework's volume, even naming its role; it does not
// see it in ListVolumes or Watch; its owner can destroy it.
func TestDev_VolumeOwnership(t *testing.T) {
	t.Parallel()
	needRoot(t)
	e := newEnv(t)
	opTok, aTok, bTok := newToken(), newToken(), newToken()
	e.writeTokens(e.path("data", "tokens.json"),
		tokenEntry{Token: opTok, Name: "ops", Role: "operator"},
		tokenEntry{Token: aTok, Name: "fw-a", Role: "framework"},
		tokenEntry{Token: bTok, Name: "fw-b", Role: "framework"},
	)
	e.startDev("--resources", "cpus=2,mem=1Gi,disk=1Gi", "--storage-driver", "local", "--sandbox-retention", "0")
	fwA, fwB := e.client(aTok), e.client(bTok)
	wB := e.watch(fwB, listAgents(t, e.op()).GetRevision())

	req := func(size int64) *pb.AllocateRequest {
		return &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: 16 * mi}, Role: "db",
			Volumes: []*pb.VolumeClaim{{Name: "a-data", SizeBytes: size}}}
	}
	a := allocateOne(t, fwA, req(8*mi))
	if _, err := fwA.Revoke(ctx(t), connect.NewRequest(&pb.RevokeRequest{Id: a.GetId()})); err != nil {
		t.Fatal(err)
	}
	if _, err := fwB.Allocate(ctx(t), connect.NewRequest(req(0))); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("fw-b claiming fw-a's volume: %v, want PermissionDenied", err)
	}
	if _, err := fwB.DestroyVolume(ctx(t), connect.NewRequest(&pb.DestroyVolumeRequest{Name: "a-data"})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("fw-b destroying fw-a's volume: %v, want PermissionDenied", err)
	}
	if res, err := fwB.ListVolumes(ctx(t), connect.NewRequest(&pb.ListVolumesRequest{})); err != nil || len(res.Msg.GetVolumes()) != 0 {
		t.Errorf("fw-b's ListVolumes = %v, %v; want none", res.Msg.GetVolumes(), err)
	}
	if res, err := fwA.ListVolumes(ctx(t), connect.NewRequest(&pb.ListVolumesRequest{})); err != nil || len(res.Msg.GetVolumes()) != 1 {
		t.Errorf("fw-a's ListVolumes = %v, %v; want a-data", res.Msg.GetVolumes(), err)
	}
	if _, err := fwA.DestroyVolume(ctx(t), connect.NewRequest(&pb.DestroyVolumeRequest{Name: "a-data"})); err != nil {
		t.Errorf("fw-a destroying its volume: %v", err)
	}
	// fw-b's own event after all of fw-a's: its watch has seen them go by.
	b := allocateOne(t, fwB, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: 16 * mi}})
	wB.waitFor(t, "fw-b's ALLOCATION_GRANTED", allocEvent(b.GetId(), pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED))
	for _, ev := range wB.snapshot() {
		if ev.GetVolume() != nil {
			t.Errorf("fw-b's Watch shows fw-a's volume event %s", eventString(ev))
		}
	}
}

// TestDev_SandboxRetention: with a retention, an ended task's sandbox (and
// its output) stays, but its volume is unmounted at once: free for the
// next claim, and destroyable.
func TestDev_SandboxRetention(t *testing.T) {
	t.Parallel()
	needRoot(t)
	e := newEnv(t)
	e.startDev("--resources", "cpus=2,mem=2Gi,disk=10Gi", "--storage-driver", "local", "--sandbox-retention", "1h")
	id := runTaskNoWait(e, "--cpus", "0.1", "--mem", "32Mi", "--disk", "8Mi", "--role", "db", "--volume", "kept=8Mi:data",
		"--", "sh", "-c", "echo out; echo x > data/f")
	task := waitEnded(e, id)
	if task.GetState() != pb.TaskState_TASK_STATE_FINISHED {
		t.Fatalf("task %v (%s)", task.GetState(), task.GetReason())
	}
	if b, err := os.ReadFile(filepath.Join(task.GetSandbox(), "stdout")); err != nil || string(b) != "out\n" {
		t.Errorf("retained sandbox's stdout = %q, %v", b, err)
	}
	if m := mountsUnder(task.GetSandbox()); len(m) != 0 {
		t.Errorf("volume still mounted in the retained sandbox: %v", m)
	}
	e.mustCtl("revoke", task.GetAllocationId())
	e.mustCtl("volume", "destroy", "kept")
	volDir := e.path("data", "agent", "plugins", "storage-local", "volumes", "kept")
	e.eventually("the destroyed volume gone from its agent", func() (bool, string) {
		_, err := os.Stat(volDir)
		return os.IsNotExist(err), fmt.Sprint(err)
	})
}

// TestAgent_VolumeGoneAway: with dcosd kernel and dcosd agent apart, a
// volume destroyed while its agent is down is deleted when the agent comes
// back, not adopted back from its report. (The name is short: the exec
// driver's socket lives under the test's temporary dir, and a unix socket
// path has at most 107 bytes.)
func TestAgent_VolumeGoneAway(t *testing.T) {
	t.Parallel()
	needRoot(t)
	e := newEnv(t)
	opTok, agentTok := newToken(), newToken()
	tokens := e.writeTokens(e.path("tokens.json"),
		tokenEntry{Token: opTok, Name: "ops", Role: "operator"},
		tokenEntry{Token: agentTok, Name: "agents", Role: "agent"},
	)
	e.startKernel(tokens, opTok)
	op := e.op()
	agentArgs := []string{"--resources", "cpus=2,mem=1Gi,disk=1Gi", "--storage-driver", "local", "--sandbox-retention", "0"}
	ag, _ := e.startAgent("node", agentTok, agentArgs...)
	w := e.watch(op, listAgents(t, op).GetRevision())

	alloc := allocateOne(t, op, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: 16 * mi}, Role: "db",
		Volumes: []*pb.VolumeClaim{{Name: "gone", SizeBytes: 8 * mi}}})
	task := launch(t, op, &pb.LaunchRequest{AllocationId: alloc.GetId(), Command: "sh", Args: []string{"-c", "echo 1 > data/f"},
		Volumes: []*pb.VolumeMount{{Name: "gone", Path: "data"}}})
	w.waitFor(t, "FINISHED of "+task.GetId(), taskState(task.GetId(), pb.TaskState_TASK_STATE_FINISHED))
	if _, err := op.Revoke(ctx(t), connect.NewRequest(&pb.RevokeRequest{Id: alloc.GetId()})); err != nil {
		t.Fatal(err)
	}
	volDir := e.path("agents", "node", "plugins", "storage-local", "volumes", "gone")
	if _, err := os.Stat(filepath.Join(volDir, "f")); err != nil {
		t.Fatalf("the volume's data on the agent: %v", err)
	}

	ag.kill()
	if _, err := op.DestroyVolume(ctx(t), connect.NewRequest(&pb.DestroyVolumeRequest{Name: "gone"})); err != nil {
		t.Fatal(err)
	}
	e.startAgent("node", agentTok, agentArgs...)
	e.eventually("the volume destroyed while its agent was down gone from its disk", func() (bool, string) {
		_, err := os.Stat(volDir)
		return os.IsNotExist(err), fmt.Sprint(err)
	})
	if res, err := op.ListVolumes(ctx(t), connect.NewRequest(&pb.ListVolumesRequest{})); err != nil || len(res.Msg.GetVolumes()) != 0 {
		t.Errorf("ListVolumes after the agent came back = %v, %v; want none (not adopted back)", res.Msg.GetVolumes(), err)
	}
}
