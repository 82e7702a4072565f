package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dcos-kernel/dcos/internal/atomicfile"
	"github.com/dcos-kernel/dcos/plugins/contract"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// checkpointVersion is the version of the checkpoint format; a file with
// another version is not recovered.
const checkpointVersion = 2

// checkpoint is what the agent keeps on disk about one task, so that a new
// agent on the same data dir can find it again. It is written when the task
// starts, rewritten with Final when the task ends, and removed once the
// kernel acknowledged the final report.
type checkpoint struct {
	Version      int    `json:"version"`
	TaskID       string `json:"task_id"`
	AllocationID string `json:"allocation_id"`
	// PID is the task's main process id as its driver reported it; 0 when
	// the task never started or its driver has none.
	PID     int    `json:"pid"`
	Sandbox string `json:"sandbox"`
	// Driver names the task's driver; Handle is the driver's handle
	// (contract.MarshalHandle), handed back to RecoverTask after a restart.
	Driver string `json:"driver"`
	Handle []byte `json:"handle,omitempty"`
	// Isolated is set once the isolator prepared a container for the task;
	// Limits are the container's limits.
	Isolated bool               `json:"isolated,omitempty"`
	Limits   contract.Resources `json:"limits"`
	// NetCgroup is the cgroup v2 directory whose traffic is counted (eBPF),
	// attached again after a restart.
	NetCgroup string `json:"net_cgroup,omitempty"`
	// Network is the task's network mode; Net what its net driver set up
	// (handed back to the driver's Recover after a restart).
	Network string                  `json:"network,omitempty"`
	Net     *contract.NetworkStatus `json:"net,omitempty"`
	// Storage is the sandbox the storage driver prepared (with its
	// mounts), handed back to its Recover after a restart.
	Storage *contract.Sandbox `json:"storage,omitempty"`
	// Checks are the task's health and readiness checks with what their
	// probes need (a syscalls Task, protobuf); Started is when the task
	// started (its checks' grace period); Cgroups are its cgroup
	// directories from the isolator (command checks join them).
	Checks  []byte    `json:"checks,omitempty"`
	Started time.Time `json:"started,omitzero"`
	Cgroups []string  `json:"cgroups,omitempty"`
	// KillGrace is the task's own kill grace period (Task.kill_grace_period,
	// nanoseconds); absent means the agent's KillGrace.
	KillGrace *time.Duration `json:"kill_grace,omitempty"`
	// Final is the task's final status, set once the agent saw it end and
	// kept until the kernel acknowledged it.
	Final *finalStatus `json:"final,omitempty"`
}

// finalStatus is a terminal task status waiting to be reported.
type finalStatus struct {
	State    string `json:"state"` // a TaskState name, e.g. "TASK_STATE_FINISHED"
	Reason   string `json:"reason"`
	ExitCode int32  `json:"exit_code"`
}

func (f *finalStatus) taskState() syscallsv1.TaskState {
	return syscallsv1.TaskState(syscallsv1.TaskState_value[f.State])
}

// checkpointStore keeps checkpoints as <dir>/<task-id>.json. Writes are
// atomic (temp file, fsync, rename). It is safe for concurrent use on
// distinct task ids.
type checkpointStore struct{ dir string }

func (s checkpointStore) path(taskID string) string {
	return filepath.Join(s.dir, taskID+".json")
}

// save writes cp atomically, replacing any earlier checkpoint of the task.
func (s checkpointStore) save(cp checkpoint) error {
	cp.Version = checkpointVersion
	b, err := json.MarshalIndent(cp, "", "  ")
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", cp.TaskID, err)
	}
	if err := atomicfile.WriteDurable(s.path(cp.TaskID), append(b, '\n')); err != nil {
		return fmt.Errorf("checkpoint %s: %w", cp.TaskID, err)
	}
	return nil
}

// remove deletes the checkpoint of taskID; a missing one is not an error.
func (s checkpointStore) remove(taskID string) error {
	if err := os.Remove(s.path(taskID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("checkpoint %s: %w", taskID, err)
	}
	return nil
}

// load reads every checkpoint. Files that cannot be read or parsed are
// returned as errors in bad (and left in place for an operator); leftover
// temp files of interrupted writes are removed.
func (s checkpointStore) load() (cps []checkpoint, bad []error, err error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoints: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if atomicfile.IsTemp(name) {
			os.Remove(filepath.Join(s.dir, name))
			continue
		}
		if e.IsDir() || !strings.HasSuffix(name, ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, name))
		if err != nil {
			bad = append(bad, fmt.Errorf("checkpoint %s: %w", name, err))
			continue
		}
		var cp checkpoint
		if err := json.Unmarshal(b, &cp); err != nil {
			bad = append(bad, fmt.Errorf("checkpoint %s: %w", name, err))
			continue
		}
		switch {
		case cp.Version != checkpointVersion:
			bad = append(bad, fmt.Errorf("checkpoint %s: version %d, want %d", name, cp.Version, checkpointVersion))
		case cp.TaskID+".json" != name:
			bad = append(bad, fmt.Errorf("checkpoint %s: names task %q", name, cp.TaskID))
		case cp.Final != nil && cp.Final.taskState() == syscallsv1.TaskState_TASK_STATE_UNSPECIFIED:
			bad = append(bad, fmt.Errorf("checkpoint %s: unknown final state %q", name, cp.Final.State))
		default:
			cps = append(cps, cp)
		}
	}
	return cps, bad, nil
}
