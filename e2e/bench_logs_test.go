package e2e

import (
	"bufio"
	"context"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Benchmarks of task logs and exec (issue 15, docs/benchmarks.md "Logs
// and exec"): real binaries, dcosd dev, a real task.

// runningTask starts dcosd dev and a task of req's command, and returns
// the env and the RUNNING task.
func runningTask(b *testing.B, command string, args ...string) (*env, *pb.Task) {
	e := newEnv(b)
	e.startDev("--resources", "cpus=2,mem=1Gi")
	op := e.op()
	w := e.watch(op, listAgents(b, op).GetRevision())
	alloc := allocateOne(b, op, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.5, MemBytes: 64 * mi}})
	task := launch(b, op, &pb.LaunchRequest{AllocationId: alloc.GetId(), Command: command, Args: args})
	running := w.waitFor(b, "RUNNING of "+task.GetId(), taskState(task.GetId(), pb.TaskState_TASK_STATE_RUNNING)).GetTask()
	e.notePID(running.GetPid())
	return e, running
}

// BenchmarkLogsFollowLatency: a line written by the task → printed by
// `dcosctl logs -f`. The task writes its clock (ns) every 10 ms; the
// reader's clock at the line's arrival minus it is the latency (one host,
// one clock). Goal p99 ≤ 10 ms.
func BenchmarkLogsFollowLatency(b *testing.B) {
	e, task := runningTask(b, "/usr/bin/python3", "-c", `import sys, time
while True:
    sys.stdout.write("%d\n" % time.time_ns())
    sys.stdout.flush()
    time.sleep(0.01)
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := e.ctlCmd(ctx, "logs", "-f", "--tail", "0", task.GetId())
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Wait()
	defer cancel()
	sc := bufio.NewScanner(out)
	var lat []time.Duration
	skip := 20 // the first lines: dcosctl's start, the stream's opening
	b.ResetTimer()
	for len(lat) < b.N+skip && sc.Scan() {
		now := time.Now().UnixNano()
		sent, err := strconv.ParseInt(strings.TrimSpace(sc.Text()), 10, 64)
		if err != nil {
			b.Fatalf("line %q", sc.Text())
		}
		lat = append(lat, time.Duration(now-sent))
	}
	b.StopTimer()
	if len(lat) < b.N+skip {
		b.Fatalf("the stream ended after %d lines: %v", len(lat), sc.Err())
	}
	lat = lat[skip:]
	slices.Sort(lat)
	b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
}

// BenchmarkExecTrue: `dcosctl exec TASK -- true`, the whole command (a
// dcosctl process, the kernel's check and TASK_EXEC event, the agent's
// relay, the driver's supervisor entering the task). Goal p50 ≤ 30 ms.
func BenchmarkExecTrue(b *testing.B) {
	e, task := runningTask(b, "sleep", "300")
	e.mustCtl("exec", task.GetId(), "--", "true") // warm
	var ds []time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, errOut, code := e.ctl("exec", task.GetId(), "--", "true"); code != 0 {
			b.Fatalf("exec true: exit %d: %s", code, errOut)
		}
		ds = append(ds, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(ds)
	b.ReportMetric(ms(percentile(ds, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(ds, 99)), "p99-ms")
}

// BenchmarkExecKeystrokeEcho: one keystroke typed into `dcosctl exec -it
// TASK -- cat` (a real pty on both ends) until the remote terminal's echo
// of it is back on the local one. Goal p99 ≤ 5 ms.
func BenchmarkExecKeystrokeEcho(b *testing.B) {
	e, task := runningTask(b, "sleep", "300")
	s := e.execTTY(b, 24, 80, task.GetId(), "--", "cat")
	// cat is up once a line comes back twice (the echo, then cat's copy).
	// (A line typed before dcosctl made the local terminal raw is also
	// echoed locally: wait for quiet, then count from the end.)
	s.send("ready\n")
	s.expect(regexp.MustCompile(`ready\r\nready\r\n`), 0)
	time.Sleep(300 * time.Millisecond)
	pos := len(s.out.String())
	var ds []time.Duration
	keys := "abcdefghijklmnopqrstuvwxyz"
	b.ResetTimer()
	for i := range b.N {
		k := keys[i%len(keys)]
		start := time.Now()
		s.send(string(k))
		for {
			all := s.out.String()
			if len(all) > pos {
				if all[pos] != k {
					b.Fatalf("echo of %q is %q", k, all[pos:])
				}
				pos++
				break
			}
			time.Sleep(20 * time.Microsecond)
		}
		ds = append(ds, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(ds)
	b.ReportMetric(ms(percentile(ds, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(ds, 99)), "p99-ms")
}
