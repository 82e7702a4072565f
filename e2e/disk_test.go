package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// mountDataTmpfs mounts a tmpfs of size on the env's data dir; the env's
// cleanup unmounts it (after stopping its daemons).
func mountDataTmpfs(e *env, size string) string {
	e.t.Helper()
	dir := e.path("data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		e.t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size="+size+",mode=0700"); err != nil {
		e.t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	return dir
}

func freeBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

func tryAllocate(e *env, disk int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := e.op().Allocate(ctx, connect.NewRequest(&pb.AllocateRequest{
		Resources: &pb.Resources{Cpus: 0.01, MemBytes: 1 << 20, DiskBytes: disk}, Count: 1}))
	return err
}

// TestDev_FullDiskSizedSandbox: dcosd dev as root, its data dir on a
// 128 MiB tmpfs, sized sandboxes by default. A task writing without bound
// gets ENOSPC in its own sandbox; the kernel's writes keep working, and the
// agent's disk was bounded by the free space less the store's floor.
func TestDev_FullDiskSizedSandbox(t *testing.T) {
	t.Parallel()
	needRoot(t)
	e := newEnv(t)
	data := mountDataTmpfs(e, "128m")
	e.devDefaults = true
	dev := e.startDev("--resources", "cpus=2,mem=1Gi", "--network-driver", "none")
	if out := dev.stdout.String(); !strings.Contains(out, "dcos dev: sized sandboxes: enabled (loop") ||
		!strings.Contains(out, "dcos dev: bridge networking: off (--network-driver none)") {
		t.Fatalf("dcosd dev's start lines do not say sized sandboxes are on and bridge networking off:\n%s", out)
	}
	agents := e.op()
	res, err := agents.ListAgents(context.Background(), connect.NewRequest(&pb.ListAgentsRequest{}))
	if err != nil || len(res.Msg.GetAgents()) != 1 {
		t.Fatalf("ListAgents: %v %v", res, err)
	}
	disk := res.Msg.GetAgents()[0].GetTotal().GetDiskBytes()
	// etcd may have grown since the agent measured: 1 MiB of slack.
	if free := freeBytes(t, data); disk <= 0 || disk > free-64<<20+1<<20 {
		t.Fatalf("agent disk %d on a tmpfs with %d free, want (0, free - 64 MiB floor]", disk, free)
	}
	t.Logf("tmpfs free %d MiB after start; agent disk %d MiB", freeBytes(t, data)>>20, disk>>20)

	// 42 only if dd stopped with ENOSPC.
	id := runTaskNoWait(e, "--cpus", "0.1", "--mem", "32Mi", "--disk", "16Mi", "--", "sh", "-c",
		`dd if=/dev/zero of=f bs=1M 2>err; grep -q "No space left on device" err && exit 42; cat err; exit 1`)
	if task := waitEnded(e, id); task.GetState() != pb.TaskState_TASK_STATE_FAILED || task.GetExitCode() != 42 {
		t.Errorf("unbounded writer in a 16 MiB sandbox: %v exit %d (%s), want FAILED with 42 (ENOSPC)", task.GetState(), task.GetExitCode(), task.GetReason())
	}
	if err := tryAllocate(e, 0); err != nil {
		t.Errorf("Allocate after the task filled its sandbox: %v", err)
	}
	if !dev.running() {
		t.Fatalf("dcosd dev exited: %v", dev.err)
	}
	t.Logf("tmpfs free %d MiB at the end", freeBytes(t, data)>>20)
}

// TestDev_FullDiskPlainSandbox: without sized sandboxes (--storage-driver
// none) a task can fill the data dir's filesystem; the kernel then answers
// writes Unavailable naming the cause, keeps serving reads, and writes
// resume once the file is removed. dcosd never exits.
func TestDev_FullDiskPlainSandbox(t *testing.T) {
	t.Parallel()
	needRoot(t)
	e := newEnv(t)
	data := mountDataTmpfs(e, "128m")
	dev := e.startDev("--resources", "cpus=2,mem=1Gi,disk=1Gi")

	// tmpfs pages are charged to the writer's memory cgroup: more than the
	// tmpfs, so that the disk fills first.
	id := runTaskNoWait(e, "--cpus", "0.1", "--mem", "256Mi", "--", "sh", "-c", `dd if=/dev/zero of=f bs=1M; sleep 300`)
	var sandbox string
	e.eventually("the task filled the tmpfs", func() (bool, string) {
		if tk := taskByID(e, id); tk != nil {
			sandbox = tk.GetSandbox()
		}
		free := freeBytes(t, data)
		return free < 1<<20, sprint(free)
	})
	var err error
	granted := 0 // Allocates that passed before the kernel saw the disk full
	e.eventually("Allocate answers Unavailable", func() (bool, string) {
		err = tryAllocate(e, 0)
		if err == nil {
			granted++
		}
		return connect.CodeOf(err) == connect.CodeUnavailable, sprint(err)
	})
	// The free space is measured at most every 5 ms: the figure may be
	// from just before the tmpfs filled.
	if !regexp.MustCompile(`kernel store: data dir ` + regexp.QuoteMeta(data) + ` has \d+ MiB free, below the 64 MiB floor \(--store-min-free\); writes refused until space is freed$`).MatchString(err.Error()) {
		t.Errorf("Allocate on a full disk: %v", err)
	}
	res, err := e.op().ListAllocations(context.Background(), connect.NewRequest(&pb.ListAllocationsRequest{}))
	if err != nil || len(res.Msg.GetAllocations()) != 1+granted {
		t.Errorf("ListAllocations on a full disk: %v, %v; want the task's and the %d granted before the disk was seen full", res, err, granted)
	}
	time.Sleep(2 * time.Second) // refused writes, agent retries, etcd idle: nothing may crash
	if !dev.running() {
		t.Fatalf("dcosd dev exited on a full disk: %v", dev.err)
	}
	if sandbox == "" {
		t.Fatal("the task reported no sandbox")
	}
	if err := os.Remove(filepath.Join(sandbox, "f")); err != nil {
		t.Fatal(err)
	}
	e.eventually("Allocate works again once space is freed", func() (bool, string) {
		err := tryAllocate(e, 0)
		return err == nil, sprint(err)
	})
	if !dev.running() {
		t.Fatalf("dcosd dev exited: %v", dev.err)
	}
}

// TestDev_RootDefaults: dcosd dev as root, given neither --network-driver
// nor --storage-driver, says it enabled bridge networking and sized
// sandboxes, and does: a task may ask for its own network, and its sandbox
// has the default disk (64Mi) although the allocation asked for none.
func TestDev_RootDefaults(t *testing.T) {
	t.Parallel()
	needRoot(t)
	e := newEnv(t)
	tok := newToken()
	br := "dcs" + tok[:8]
	port := strconv.Itoa(20000 + int(tok[8])%64*100 + int(tok[9])%100)
	t.Cleanup(func() { removeNode(t, br) })
	e.devDefaults = true
	dev := e.startDev("--resources", "cpus=2,mem=2Gi,disk=10Gi", "--bridge", br, "--vxlan-port", port, "--cluster-cidr", "10.232.0.0/16")
	for _, want := range []string{"dcos dev: task isolation: enabled", "dcos dev: bridge networking: enabled", "dcos dev: sized sandboxes: enabled (loop, allocations without a disk get 64Mi"} {
		if !strings.Contains(dev.stdout.String(), want) {
			t.Errorf("dcosd dev as root did not say %q; stdout:\n%s", want, dev.stdout.String())
		}
	}
	task := runTask(e, "--cpus", "0.1", "--mem", "32Mi", "--network", "bridge", "--", "sh", "-c", "df -k . | tail -1; exec sleep 300")
	if task.GetIp() == "" {
		t.Errorf("task on the default bridge has no address: %v", sprint(task))
	}
	if d := task.GetResources().GetDiskBytes(); d != 64<<20 {
		t.Errorf("task disk %d, want the 64 MiB default", d)
	}
	// The sandbox is its own filesystem of about 64 MiB.
	e.eventually("the sandbox's size from df", func() (bool, string) {
		b, _ := os.ReadFile(filepath.Join(task.GetSandbox(), "stdout"))
		f := strings.Fields(string(b))
		if len(f) < 2 {
			return false, string(b)
		}
		kb, err := strconv.Atoi(f[1])
		return err == nil && kb > 32<<10 && kb <= 64<<10, string(b)
	})
	e.mustCtl("revoke", task.GetAllocationId())
}
