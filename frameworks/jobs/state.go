package jobs

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Keys of the jobs framework state (owned by the jobs principal; dcosctl
// job writes specs and manual runs as an operator with owner set). Values
// are JSON.
const (
	// PrefixSpecs/<job> holds a SpecRecord.
	PrefixSpecs = "specs/"
	// PrefixRuns/<job>/<seq, 10 digits> holds a Run.
	PrefixRuns = "runs/"
	// PrefixMeta/<job> holds a Meta.
	PrefixMeta = "meta/"
)

// Labels the framework puts on its allocations and tasks.
const (
	LabelJob     = "dcos.job"
	LabelRun     = "dcos.job.run"
	LabelTask    = "dcos.job.task"
	LabelAttempt = "dcos.job.attempt"
)

// SpecKey is the key of a job's spec.
func SpecKey(job string) string { return PrefixSpecs + job }

// RunKey is the key of run seq of a job.
func RunKey(job string, seq int64) string { return fmt.Sprintf("%s%s/%010d", PrefixRuns, job, seq) }

// RunsPrefix is the prefix of a job's run keys.
func RunsPrefix(job string) string { return PrefixRuns + job + "/" }

// MetaKey is the key of a job's Meta.
func MetaKey(job string) string { return PrefixMeta + job }

// RunID is the id of run seq of a job: "<job>-<seq>".
func RunID(job string, seq int64) string { return job + "-" + strconv.FormatInt(seq, 10) }

// JobOfKey returns the job a state key is about ("" for none).
func JobOfKey(key string) string {
	for _, p := range []string{PrefixSpecs, PrefixRuns, PrefixMeta} {
		if rest, ok := strings.CutPrefix(key, p); ok {
			name, _, _ := strings.Cut(rest, "/")
			return name
		}
	}
	return ""
}

// SpecRecord is a job's spec as stored.
type SpecRecord struct {
	Spec    Job       `json:"spec"`
	Version int64     `json:"version"`
	Created time.Time `json:"created"`
	Applied time.Time `json:"applied"`
}

// Meta is what a job's runs cannot show once history dropped them.
type Meta struct {
	// LastSeq is the highest run sequence number used.
	LastSeq int64 `json:"lastSeq"`
	// LastFire is the scheduled time of the last cron fire started or
	// skipped: a fire at or before it is never started again.
	LastFire time.Time `json:"lastFire,omitzero"`
	// Missed counts fires that never ran (outage, Forbid, deadline).
	Missed int `json:"missed,omitempty"`
}

// Run states.
const (
	RunPending   = "pending"
	RunRunning   = "running"
	RunSucceeded = "succeeded"
	RunFailed    = "failed"
)

// Run causes.
const (
	CauseManual   = "manual"
	CauseSchedule = "schedule"
)

// Run is one execution of a job.
type Run struct {
	ID    string `json:"id"`
	Job   string `json:"job"`
	Seq   int64  `json:"seq"`
	Cause string `json:"cause"`
	// Scheduled is the cron fire time a scheduled run is for.
	Scheduled time.Time `json:"scheduled,omitzero"`
	// SpecVersion and Spec are the job's spec when the run began: an
	// apply during a run changes the next runs only.
	SpecVersion int64  `json:"specVersion,omitempty"`
	Spec        *Job   `json:"spec,omitempty"`
	State       string `json:"state"`
	// Reason says why it failed ("task 2 exited 3 after 7 attempts").
	Reason string `json:"reason,omitempty"`
	// StopReason, set by dcosctl or a Replace, asks for the run to stop.
	StopReason string    `json:"stopReason,omitempty"`
	Created    time.Time `json:"created"`
	Started    time.Time `json:"started,omitzero"`
	Finished   time.Time `json:"finished,omitzero"`
	// Succeeded counts tasks that exited 0; the run succeeds at the
	// spec's Completions.
	Succeeded int `json:"succeeded"`
	// Allocated is set once its first Allocate went out (a gang is asked
	// for once; a slot allocated again later is on its own).
	Allocated bool `json:"allocated,omitempty"`
	// Tasks has one record per slot (min(parallelism, completions)); for
	// an MPI job, one per rank host of the current attempt.
	Tasks []TaskRecord `json:"tasks,omitempty"`
	// MPI is an MPI run's attempt and launcher (nil for other jobs).
	MPI *MPIRun `json:"mpi,omitempty"`
}

// Ended reports whether the run is over.
func (r *Run) Ended() bool { return r.State == RunSucceeded || r.State == RunFailed }

// TaskRecord is one slot of a run: an allocation running the slot's
// tasks one after another (a retry, or the next completion).
type TaskRecord struct {
	Index      int    `json:"index"`
	Allocation string `json:"allocation,omitempty"`
	Agent      string `json:"agent,omitempty"`
	// Task is the last task launched; TaskEnded once its end is counted.
	Task      string `json:"task,omitempty"`
	TaskEnded bool   `json:"taskEnded,omitempty"`
	// Attempts counts launches; Failures consecutive failures.
	Attempts  int `json:"attempts"`
	Failures  int `json:"failures,omitempty"`
	Succeeded int `json:"succeeded,omitempty"`
	// LastExit and LastReason of the last task that ended.
	LastExit   int32  `json:"lastExit,omitempty"`
	LastReason string `json:"lastReason,omitempty"`
	// RetryAt is when a failed slot may launch again.
	RetryAt time.Time `json:"retryAt,omitzero"`
	// Done: the slot launches nothing more.
	Done bool `json:"done,omitempty"`
}
