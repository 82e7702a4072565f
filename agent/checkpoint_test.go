package agent

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/dcos-kernel/dcos/plugins/contract"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestCheckpointStore_SaveLoad(t *testing.T) {
	t.Parallel()
	s := checkpointStore{dir: t.TempDir()}
	running := checkpoint{TaskID: "t-1", AllocationID: "a-1", PID: 1234, Sandbox: "/sb/t-1", Driver: "exec",
		Handle: []byte{1, 2, 3}, Isolated: true, Limits: contract.Resources{CPUs: 0.5, MemBytes: 64 << 20}}
	ended := checkpoint{TaskID: "t-2", AllocationID: "a-2", PID: 5678, Sandbox: "/sb/t-2", Driver: "nice",
		Final: &finalStatus{State: syscallsv1.TaskState_TASK_STATE_FAILED.String(), Reason: "exit code 3", ExitCode: 3}}
	for _, cp := range []checkpoint{running, ended} {
		if err := s.save(cp); err != nil {
			t.Fatal(err)
		}
	}
	// Rewriting replaces.
	running.PID = 4321
	if err := s.save(running); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"junk.json":       "{not json",
		"t-3.json":        `{"version": 1, "task_id": "t-3"}`,
		"t-4.json":        `{"version": 2, "task_id": "t-5"}`,
		"t-6.json":        `{"version": 2, "task_id": "t-6", "final": {"state": "DONE"}}`,
		".t-7.json.1.tmp": "half a write",
		"README":          "not a checkpoint",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(s.dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cps, bad, err := s.load()
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(cps, func(a, b checkpoint) int { return strings.Compare(a.TaskID, b.TaskID) })
	running.Version, ended.Version = checkpointVersion, checkpointVersion
	if len(cps) != 2 || !reflect.DeepEqual(cps[0], running) || cps[1].TaskID != ended.TaskID || *cps[1].Final != *ended.Final {
		t.Errorf("load = %+v, want %+v and %+v", cps, running, ended)
	}
	if len(bad) != 4 {
		t.Errorf("bad = %v, want 4 errors (junk, version, mismatched id, unknown state)", bad)
	}
	if _, err := os.Stat(filepath.Join(s.dir, ".t-7.json.1.tmp")); !os.IsNotExist(err) {
		t.Errorf("temp file left behind: %v", err)
	}
	if got := cps[1].Final.taskState(); got != syscallsv1.TaskState_TASK_STATE_FAILED {
		t.Errorf("final state = %v", got)
	}

	for range 2 { // idempotent
		if err := s.remove("t-1"); err != nil {
			t.Fatal(err)
		}
	}
	cps, _, _ = s.load()
	if len(cps) != 1 || cps[0].TaskID != "t-2" {
		t.Errorf("after remove: %+v", cps)
	}
}
