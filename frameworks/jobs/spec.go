package jobs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Job is one job spec as an operator writes it (docs/jobs.md documents
// every field). Parse returns specs with defaults filled in and validated.
type Job struct {
	Name    string            `json:"name"`
	Command string            `json:"command,omitempty"`
	Args    []string          `json:"args,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	// SecretEnv is environment the tasks get that is kept secret
	// (secrets.go): sealed by the kernel, stored secret, redacted in
	// every output.
	SecretEnv    map[string]string `json:"secretEnv,omitempty"`
	Driver       string            `json:"driver,omitempty"`
	DriverConfig json.RawMessage   `json:"driverConfig,omitempty"`
	Resources    Resources         `json:"resources"`
	Role         string            `json:"role,omitempty"`
	Priority     int32             `json:"priority,omitempty"`
	Constraints  []Constraint      `json:"constraints,omitempty"`
	// Parallelism is how many tasks run at once (default 1).
	Parallelism int `json:"parallelism,omitempty"`
	// Completions is how many tasks must exit 0 for a run to succeed
	// (default Parallelism).
	Completions int `json:"completions,omitempty"`
	// Gang grants a run's Parallelism tasks together or not at all.
	Gang bool `json:"gang,omitempty"`
	// GangMin, with Gang, is the fewest tasks granted together (default
	// all of Parallelism).
	GangMin int `json:"gangMin,omitempty"`
	// BackoffLimit is how many times one task may be retried after it
	// fails before the run fails (default 6, as Kubernetes). Nil: default.
	BackoffLimit *int `json:"backoffLimit,omitempty"`
	// Backoff is the delay before a retry: Initial after the first
	// failure, doubling, at most Max (defaults 10s and 5m).
	Backoff *Backoff `json:"backoff,omitempty"`
	// ActiveDeadline fails a run still going after this long (0: none).
	ActiveDeadline Duration `json:"activeDeadline,omitempty"`
	// Schedule is a cron schedule (5 fields or @hourly etc.); "" for a
	// job run only by hand.
	Schedule string `json:"schedule,omitempty"`
	// TimeZone of Schedule, an IANA name (default UTC).
	TimeZone string `json:"timeZone,omitempty"`
	// ConcurrencyPolicy is Allow (default, as Kubernetes), Forbid or Replace.
	ConcurrencyPolicy string `json:"concurrencyPolicy,omitempty"`
	// StartingDeadline skips a scheduled fire missed by more than this (0:
	// never skipped for lateness; only the latest missed fire runs).
	StartingDeadline Duration `json:"startingDeadline,omitempty"`
	// Suspend stops scheduled fires (manual runs still start).
	Suspend bool `json:"suspend,omitempty"`
	// SuccessfulRunsHistoryLimit and FailedRunsHistoryLimit are how many
	// ended runs history keeps (defaults 3 and 1, as Kubernetes).
	SuccessfulRunsHistoryLimit *int `json:"successfulRunsHistoryLimit,omitempty"`
	FailedRunsHistoryLimit     *int `json:"failedRunsHistoryLimit,omitempty"`
	// KillGracePeriod is between SIGTERM and SIGKILL (0: agent default).
	KillGracePeriod Duration `json:"killGracePeriod,omitempty"`
	// MPI makes the job an MPI job (mpi.go): a gang of rank hosts sized
	// by Resources and a launcher running mpirun. Nil for other jobs.
	MPI *MPI `json:"mpi,omitempty"`
}

// Resources per task. Mem and Disk are bytes or quantities like "512Mi".
type Resources struct {
	Cpus float64  `json:"cpus"`
	Mem  Quantity `json:"mem,omitempty"`
	Disk Quantity `json:"disk,omitempty"`
}

// Constraint is a kernel placement constraint on an agent label.
type Constraint struct {
	Label  string   `json:"label"`
	Op     string   `json:"op"`
	Values []string `json:"values,omitempty"`
}

// Backoff of retries.
type Backoff struct {
	Initial Duration `json:"initial,omitempty"`
	Max     Duration `json:"max,omitempty"`
}

// Concurrency policies (Kubernetes CronJob's).
const (
	ConcurrencyAllow   = "Allow"
	ConcurrencyForbid  = "Forbid"
	ConcurrencyReplace = "Replace"
)

// Limits and defaults.
const (
	// MaxParallelism keeps a run's record (one entry per task slot)
	// within one framework-state value (256 KiB).
	MaxParallelism      = 1000
	DefaultBackoffLimit = 6
	DefaultBackoff      = 10 * time.Second
	DefaultBackoffMax   = 5 * time.Minute
	DefaultSuccessKeep  = 3
	DefaultFailedKeep   = 1
	MaxHistory          = 100
	MaxKillGracePeriod  = 10 * time.Minute
	// DefaultMem is a task's memory when the spec sets none (Marathon's).
	DefaultMem = 128 << 20
)

// Duration is a time.Duration written as "10s" or a number of seconds.
type Duration time.Duration

// UnmarshalJSON accepts "10s" or 10 (seconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return &json.UnmarshalTypeError{Value: strconv.Quote(s), Type: reflect.TypeFor[Duration]()}
		}
		*d = Duration(v)
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil || math.IsInf(f, 0) || math.Abs(f) > 1e9 {
		return &json.UnmarshalTypeError{Value: string(b), Type: reflect.TypeFor[Duration]()}
	}
	*d = Duration(f * float64(time.Second))
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Quantity is a number of bytes written as a number or "512Mi".
type Quantity int64

var quantityRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?)?B?$`)

// UnmarshalJSON accepts 1048576 or "1Mi".
func (q *Quantity) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return &json.UnmarshalTypeError{Value: string(b), Type: reflect.TypeFor[Quantity]()}
		}
		*q = Quantity(n)
		return nil
	}
	m := quantityRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return &json.UnmarshalTypeError{Value: strconv.Quote(s), Type: reflect.TypeFor[Quantity]()}
	}
	f, _ := strconv.ParseFloat(m[1], 64)
	mult := map[string]float64{"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
		"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}[m[2]]
	v := math.Round(f * mult)
	if v > math.MaxInt64/2 {
		return &json.UnmarshalTypeError{Value: strconv.Quote(s), Type: reflect.TypeFor[Quantity]()}
	}
	*q = Quantity(v)
	return nil
}

// ParseSpec decodes one job spec, YAML or JSON (JSON when it starts with
// "{"), refusing unknown fields, fills in defaults and validates it.
// Errors name the field: "spec.parallelism: must be 1 to 1000, got 0".
func ParseSpec(data []byte) (*Job, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, errors.New("spec: empty file")
	}
	jsonData := trimmed
	if trimmed[0] != '{' {
		var v any
		if err := yaml.Unmarshal(trimmed, &v); err != nil {
			return nil, fmt.Errorf("spec: %w", err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("spec: %w", err)
		}
		jsonData = b
	}
	var generic any
	if err := json.Unmarshal(jsonData, &generic); err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	if _, ok := generic.(map[string]any); !ok {
		return nil, errors.New("spec: want an object")
	}
	if err := unknownField(generic, reflect.TypeFor[Job](), "spec"); err != nil {
		return nil, err
	}
	var j Job
	dec := json.NewDecoder(bytes.NewReader(jsonData))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			want := te.Type.String()
			switch te.Type {
			case reflect.TypeFor[Duration]():
				want = `a duration like "10s" or seconds`
			case reflect.TypeFor[Quantity]():
				want = `bytes or a quantity like "512Mi"`
			}
			return nil, fmt.Errorf("spec.%s: want %s, got %s", te.Field, want, te.Value)
		}
		return nil, fmt.Errorf("spec: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	// 0 means "unset" in the struct; written out, it is a mistake.
	obj := generic.(map[string]any)
	if v, ok := obj["parallelism"].(float64); ok && v == 0 {
		return nil, fmt.Errorf("spec.parallelism: must be 1 to %d, got 0", MaxParallelism)
	}
	if v, ok := obj["completions"].(float64); ok && v == 0 {
		return nil, fmt.Errorf("spec.completions: must be 1 to %d, got 0", 1000*MaxParallelism)
	}
	j.Default()
	if err := j.Validate(); err != nil {
		return nil, fmt.Errorf("spec.%w", err)
	}
	return &j, nil
}

func unknownField(v any, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) || t == reflect.TypeFor[json.RawMessage]() {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			f, ok := jsonField(t, k)
			if !ok {
				return fmt.Errorf("%s.%s: unknown field", path, k)
			}
			if err := unknownField(obj[k], f.Type, path+"."+k); err != nil {
				return err
			}
		}
	case reflect.Slice:
		arr, ok := v.([]any)
		if !ok {
			return nil
		}
		for i, e := range arr {
			if err := unknownField(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func jsonField(t reflect.Type, k string) (reflect.StructField, bool) {
	var fold reflect.StructField
	found := false
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		if name == k {
			return f, true
		}
		if !found && strings.EqualFold(name, k) {
			fold, found = f, true
		}
	}
	return fold, found
}

// Default fills in the defaults of unset fields. Idempotent.
func (j *Job) Default() {
	if j.Resources.Mem == 0 {
		j.Resources.Mem = DefaultMem
	}
	if j.MPI != nil {
		j.MPI.defaults()
	}
	if j.Parallelism == 0 {
		j.Parallelism = 1
	}
	if j.Completions == 0 {
		j.Completions = j.Parallelism
	}
	if j.Gang && j.GangMin == 0 {
		j.GangMin = j.Parallelism
	}
	if j.BackoffLimit == nil {
		j.BackoffLimit = ptr(DefaultBackoffLimit)
	}
	if j.Backoff == nil {
		j.Backoff = &Backoff{}
	}
	if j.Backoff.Initial == 0 {
		j.Backoff.Initial = Duration(DefaultBackoff)
	}
	if j.Backoff.Max == 0 {
		j.Backoff.Max = Duration(max(DefaultBackoffMax, time.Duration(j.Backoff.Initial)))
	}
	if j.Schedule != "" && j.TimeZone == "" {
		j.TimeZone = "UTC"
	}
	if j.ConcurrencyPolicy == "" {
		j.ConcurrencyPolicy = ConcurrencyAllow
	}
	if j.SuccessfulRunsHistoryLimit == nil {
		j.SuccessfulRunsHistoryLimit = ptr(DefaultSuccessKeep)
	}
	if j.FailedRunsHistoryLimit == nil {
		j.FailedRunsHistoryLimit = ptr(DefaultFailedKeep)
	}
}

func ptr[T any](v T) *T { return &v }

// nameRE: a job name is a DNS label (it goes into labels and state keys).
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Validate checks a defaulted spec; the error names the field without the
// "spec." prefix ParseSpec adds.
func (j *Job) Validate() error {
	if !nameRE.MatchString(j.Name) {
		return fmt.Errorf("name: want lowercase letters, digits and '-', 1 to 63, got %q", j.Name)
	}
	if j.MPI != nil {
		if err := j.validateMPI(); err != nil {
			return err
		}
	} else if j.Command == "" && j.Driver == "" {
		return errors.New("command: required (or driver with driverConfig)")
	}
	if len(j.DriverConfig) > 64<<10 {
		return errors.New("driverConfig: at most 64 KiB")
	}
	if j.Resources.Cpus <= 0 || j.Resources.Cpus > 1e6 || math.IsNaN(j.Resources.Cpus) {
		return fmt.Errorf("resources.cpus: must be > 0, got %g", j.Resources.Cpus)
	}
	if j.Resources.Mem < 1 {
		return fmt.Errorf("resources.mem: must be > 0, got %d", j.Resources.Mem)
	}
	if j.Resources.Disk < 0 {
		return fmt.Errorf("resources.disk: must be >= 0, got %d", j.Resources.Disk)
	}
	if j.Parallelism < 1 || j.Parallelism > MaxParallelism {
		return fmt.Errorf("parallelism: must be 1 to %d, got %d", MaxParallelism, j.Parallelism)
	}
	if j.Completions < 1 || j.Completions > 1000*MaxParallelism {
		return fmt.Errorf("completions: must be 1 to %d, got %d", 1000*MaxParallelism, j.Completions)
	}
	if j.Gang && (j.GangMin < 1 || j.GangMin > j.Parallelism) {
		return fmt.Errorf("gangMin: must be 1 to parallelism (%d), got %d", j.Parallelism, j.GangMin)
	}
	if !j.Gang && j.GangMin != 0 {
		return errors.New("gangMin: only with gang: true")
	}
	if *j.BackoffLimit < 0 || *j.BackoffLimit > 1000 {
		return fmt.Errorf("backoffLimit: must be 0 to 1000, got %d", *j.BackoffLimit)
	}
	if j.Backoff.Initial < 0 {
		return fmt.Errorf("backoff.initial: must be >= 0, got %s", time.Duration(j.Backoff.Initial))
	}
	if j.Backoff.Max < j.Backoff.Initial {
		return fmt.Errorf("backoff.max: must be >= backoff.initial (%s), got %s", time.Duration(j.Backoff.Initial), time.Duration(j.Backoff.Max))
	}
	if j.ActiveDeadline < 0 {
		return fmt.Errorf("activeDeadline: must be >= 0, got %s", time.Duration(j.ActiveDeadline))
	}
	if j.StartingDeadline < 0 {
		return fmt.Errorf("startingDeadline: must be >= 0, got %s", time.Duration(j.StartingDeadline))
	}
	if j.KillGracePeriod < 0 || time.Duration(j.KillGracePeriod) > MaxKillGracePeriod {
		return fmt.Errorf("killGracePeriod: must be 0 to %s, got %s", MaxKillGracePeriod, time.Duration(j.KillGracePeriod))
	}
	if j.Schedule != "" {
		if _, err := ParseCron(j.Schedule); err != nil {
			return fmt.Errorf("schedule: %w", err)
		}
	}
	if j.TimeZone != "" {
		if _, err := time.LoadLocation(j.TimeZone); err != nil || j.TimeZone == "Local" {
			return fmt.Errorf("timeZone: unknown IANA zone %q", j.TimeZone)
		}
	}
	switch j.ConcurrencyPolicy {
	case ConcurrencyAllow, ConcurrencyForbid, ConcurrencyReplace:
	default:
		return fmt.Errorf("concurrencyPolicy: want Allow, Forbid or Replace, got %q", j.ConcurrencyPolicy)
	}
	if n := *j.SuccessfulRunsHistoryLimit; n < 0 || n > MaxHistory {
		return fmt.Errorf("successfulRunsHistoryLimit: must be 0 to %d, got %d", MaxHistory, n)
	}
	if n := *j.FailedRunsHistoryLimit; n < 0 || n > MaxHistory {
		return fmt.Errorf("failedRunsHistoryLimit: must be 0 to %d, got %d", MaxHistory, n)
	}
	for i, c := range j.Constraints {
		if c.Label == "" {
			return fmt.Errorf("constraints[%d].label: required", i)
		}
		switch c.Op {
		case "EQUALS", "NOT_EQUALS":
			if len(c.Values) != 1 {
				return fmt.Errorf("constraints[%d].values: %s wants one value, got %d", i, c.Op, len(c.Values))
			}
		case "IN":
			if len(c.Values) == 0 {
				return fmt.Errorf("constraints[%d].values: IN wants at least one value", i)
			}
		default:
			return fmt.Errorf("constraints[%d].op: want EQUALS, NOT_EQUALS or IN, got %q", i, c.Op)
		}
	}
	for k := range j.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("env[%q]: bad variable name", k)
		}
	}
	return j.validateSecretEnv()
}

// Location is the spec's time zone (UTC when unset or unknown).
func (j *Job) Location() *time.Location {
	if j.TimeZone == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(j.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

func (j *Job) resources() *pb.Resources {
	return &pb.Resources{Cpus: j.Resources.Cpus, MemBytes: int64(j.Resources.Mem), DiskBytes: int64(j.Resources.Disk)}
}

func (j *Job) constraints() []*pb.Constraint {
	var out []*pb.Constraint
	for _, c := range j.Constraints {
		op := map[string]pb.Constraint_Op{"EQUALS": pb.Constraint_OP_EQUALS, "NOT_EQUALS": pb.Constraint_OP_NOT_EQUALS, "IN": pb.Constraint_OP_IN}[c.Op]
		out = append(out, &pb.Constraint{Label: c.Label, Op: op, Values: c.Values})
	}
	return out
}

// BackoffDelay is the delay before attempt n+1 of a task that has failed
// n times (n >= 1): Initial × 2^(n-1), at most Max.
func (j *Job) BackoffDelay(n int) time.Duration {
	if n < 1 {
		return 0
	}
	d := time.Duration(j.Backoff.Initial)
	for i := 1; i < n && d < time.Duration(j.Backoff.Max); i++ {
		d *= 2
	}
	return min(d, time.Duration(j.Backoff.Max))
}
