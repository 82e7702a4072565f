package dinit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"gopkg.in/yaml.v3"

	"github.com/dcos-kernel/dcos/sdk/framework"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Service is one service spec as an operator writes it (docs/init.md
// documents every field). The zero value is not valid; Parse returns specs
// with defaults filled in and validated.
type Service struct {
	Name      string            `json:"name"`
	Instances *int              `json:"instances,omitempty"`
	Command   string            `json:"command,omitempty"`
	Args      []string          `json:"args,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	// SecretEnv is environment the instances get that is kept secret
	// (secrets.go): sealed by the kernel, stored secret, redacted in
	// every output.
	SecretEnv       map[string]string `json:"secretEnv,omitempty"`
	Driver          string            `json:"driver,omitempty"`
	DriverConfig    json.RawMessage   `json:"driverConfig,omitempty"`
	Resources       Resources         `json:"resources"`
	Role            string            `json:"role,omitempty"`
	Priority        int32             `json:"priority,omitempty"`
	Network         string            `json:"network,omitempty"`
	Ports           []Port            `json:"ports,omitempty"`
	Volumes         []Volume          `json:"volumes,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	Constraints     []Constraint      `json:"constraints,omitempty"`
	Health          *Check            `json:"health,omitempty"`
	Readiness       *Check            `json:"readiness,omitempty"`
	Backoff         *Backoff          `json:"backoff,omitempty"`
	KillGracePeriod Duration          `json:"killGracePeriod,omitempty"`
	UpgradeStrategy *UpgradeStrategy  `json:"upgradeStrategy,omitempty"`
}

// Resources per instance. Mem and Disk are byte quantities: a number of
// bytes or a string with a suffix (Ki, Mi, Gi, Ti, K, M, G, T).
type Resources struct {
	Cpus  float64  `json:"cpus"`
	Mem   Quantity `json:"mem,omitempty"`
	Disk  Quantity `json:"disk,omitempty"`
	Ports int64    `json:"ports,omitempty"`
}

// Port is a port an instance publishes (pb.PortRequest).
type Port struct {
	Name          string `json:"name"`
	ContainerPort uint32 `json:"containerPort,omitempty"`
	HostPort      uint32 `json:"hostPort,omitempty"`
	Protocol      string `json:"protocol,omitempty"`
}

// Volume is a persistent volume (Size set: created per instance, named
// NAME-<instance>) or a host volume (Host) mounted at Path in the sandbox.
type Volume struct {
	Name     string   `json:"name"`
	Path     string   `json:"path"`
	Size     Quantity `json:"size,omitempty"`
	ReadOnly bool     `json:"readOnly,omitempty"`
	Host     bool     `json:"host,omitempty"`
}

// Constraint ops: the kernel's, plus the ones the init translates.
const (
	OpEquals    = "EQUALS"
	OpNotEquals = "NOT_EQUALS"
	OpIn        = "IN"
	OpUnique    = "UNIQUE"
	OpMaxPer    = "MAX_PER"
	OpGroupBy   = "GROUP_BY"
)

// Constraint restricts placement by agent label. EQUALS and NOT_EQUALS
// take Value, IN takes Values, MAX_PER takes Max; UNIQUE and GROUP_BY take
// only the label.
type Constraint struct {
	Label  string   `json:"label"`
	Op     string   `json:"op"`
	Value  string   `json:"value,omitempty"`
	Values []string `json:"values,omitempty"`
	Max    int      `json:"max,omitempty"`
}

// Check is a health or readiness check (pb.HealthCheck): exactly one of
// HTTP, TCP or Command.
type Check struct {
	HTTP                *HTTPCheck    `json:"http,omitempty"`
	TCP                 *TCPCheck     `json:"tcp,omitempty"`
	Command             *CommandCheck `json:"command,omitempty"`
	GracePeriod         *Duration     `json:"gracePeriod,omitempty"`
	Interval            *Duration     `json:"interval,omitempty"`
	Timeout             *Duration     `json:"timeout,omitempty"`
	ConsecutiveFailures int32         `json:"consecutiveFailures,omitempty"`
}

// HTTPCheck is pb.HTTPCheck.
type HTTPCheck struct {
	Path      string `json:"path,omitempty"`
	PortName  string `json:"portName,omitempty"`
	Port      uint32 `json:"port,omitempty"`
	StatusMin uint32 `json:"statusMin,omitempty"`
	StatusMax uint32 `json:"statusMax,omitempty"`
}

// TCPCheck is pb.TCPCheck.
type TCPCheck struct {
	PortName string `json:"portName,omitempty"`
	Port     uint32 `json:"port,omitempty"`
}

// CommandCheck is pb.CommandCheck.
type CommandCheck struct {
	Command string   `json:"command"`
	Args    []string `json:"args,omitempty"`
}

// Backoff is the restart backoff of a service (Marathon's names and
// defaults: 1 s, ×1.15, at most 3600 s).
type Backoff struct {
	Seconds               float64 `json:"seconds"`
	Factor                float64 `json:"factor"`
	MaxLaunchDelaySeconds float64 `json:"maxLaunchDelaySeconds"`
}

// UpgradeStrategy bounds a rolling deployment (Marathon's names and
// defaults: 1.0 and 1.0).
type UpgradeStrategy struct {
	MinimumHealthCapacity *float64 `json:"minimumHealthCapacity,omitempty"`
	MaximumOverCapacity   *float64 `json:"maximumOverCapacity,omitempty"`
}

// Defaults (Marathon's).
var (
	DefaultBackoff         = Backoff{Seconds: 1, Factor: 1.15, MaxLaunchDelaySeconds: 3600}
	DefaultKillGracePeriod = 3 * time.Second
)

// MaxKillGracePeriod is the longest killGracePeriod, the kernel's bound on
// LaunchRequest.kill_grace_period.
const MaxKillGracePeriod = 10 * time.Minute

// Duration is a time.Duration written as a Go duration string ("10s",
// "1m30s") or a number of seconds.
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
	if err := json.Unmarshal(b, &f); err != nil {
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
	*q = Quantity(math.Round(f * mult))
	return nil
}

// File is a spec file: one service, or several under "services".
type File struct {
	Services []Service `json:"services"`
}

// Parse decodes a spec file, YAML or JSON (JSON when it starts with "{"),
// refusing unknown fields, fills in defaults and validates every service.
// Errors name the field: "services[0].health.interval: must be > 0" (a
// file holding one service at its top level is services[0]).
func Parse(data []byte) ([]Service, error) {
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
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(jsonData, &probe); err != nil {
		return nil, fmt.Errorf("spec: want an object: %w", err)
	}
	var generic any
	if err := json.Unmarshal(jsonData, &generic); err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	var svcs []Service
	if _, many := probe["services"]; many {
		if err := unknownField(generic, reflect.TypeFor[File](), ""); err != nil {
			return nil, err
		}
		var f File
		if err := strictDecode(jsonData, &f); err != nil {
			return nil, err
		}
		svcs = f.Services
	} else {
		if err := unknownField(generic, reflect.TypeFor[Service](), "services[0]"); err != nil {
			return nil, err
		}
		var s Service
		if err := strictDecode(jsonData, &s); err != nil {
			return nil, fmt.Errorf("services[0]: %w", err)
		}
		svcs = []Service{s}
	}
	if len(svcs) == 0 {
		return nil, errors.New("services: want at least one service")
	}
	seen := map[string]int{}
	for i := range svcs {
		svcs[i].Default()
		if err := svcs[i].Validate(); err != nil {
			return nil, fmt.Errorf("services[%d].%w", i, err)
		}
		if j, dup := seen[svcs[i].Name]; dup {
			return nil, fmt.Errorf("services[%d].name: %q is also services[%d]", i, svcs[i].Name, j)
		}
		seen[svcs[i].Name] = i
	}
	return svcs, nil
}

// unknownField finds the first field of v (decoded JSON) that type t has
// no field for, and names it with its path: "services[0].health.htp:
// unknown field". encoding/json refuses unknown fields too, but without
// saying where.
func unknownField(v any, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		return nil
	}
	join := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return nil // a type error, reported by the decoder
		}
		for _, k := range sortedKeys(obj) {
			f, ok := jsonField(t, k)
			if !ok {
				return fmt.Errorf("%s: unknown field", join(k))
			}
			if err := unknownField(obj[k], f.Type, join(k)); err != nil {
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
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		for _, k := range sortedKeys(obj) {
			if err := unknownField(obj[k], t.Elem(), fmt.Sprintf("%s[%s]", path, k)); err != nil {
				return err
			}
		}
	}
	return nil
}

// jsonField is the field of struct t that JSON key k decodes into (as
// encoding/json matches: the exact name, else case-insensitively).
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

func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			want := te.Type.String()
			switch te.Type {
			case reflect.TypeFor[Duration]():
				want = `a duration like "10s" or seconds`
			case reflect.TypeFor[Quantity]():
				want = `bytes or a quantity like "512Mi"`
			}
			return fmt.Errorf("%s: want %s, got %s", te.Field, want, te.Value)
		}
		return fmt.Errorf("spec: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// Default fills in the defaults of unset fields. Idempotent.
func (s *Service) Default() {
	if s.Instances == nil {
		one := 1
		s.Instances = &one
	}
	if s.Backoff == nil {
		b := DefaultBackoff
		s.Backoff = &b
	}
	if s.KillGracePeriod == 0 {
		s.KillGracePeriod = Duration(DefaultKillGracePeriod)
	}
	if s.UpgradeStrategy == nil {
		s.UpgradeStrategy = &UpgradeStrategy{}
	}
	if s.UpgradeStrategy.MinimumHealthCapacity == nil {
		v := 1.0
		s.UpgradeStrategy.MinimumHealthCapacity = &v
	}
	if s.UpgradeStrategy.MaximumOverCapacity == nil {
		v := 1.0
		s.UpgradeStrategy.MaximumOverCapacity = &v
	}
}

// Count is the number of instances the spec asks for (after Default).
func (s *Service) Count() int {
	if s.Instances == nil {
		return 1
	}
	return *s.Instances
}

var (
	nameRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	portRE  = regexp.MustCompile(`^[a-z0-9_]+$`)
	labelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]{0,62})$`)
)

// MaxInstances is the largest instances a spec may ask for.
const MaxInstances = 10000

// Validate checks a defaulted spec; the error's text starts with the
// field's path relative to the service ("health.interval: must be > 0").
func (s *Service) Validate() error {
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("name: must be 1 to 63 of [a-z0-9-], starting and ending with a letter or digit, got %q", s.Name)
	}
	if n := s.Count(); n < 0 || n > MaxInstances {
		return fmt.Errorf("instances: must be between 0 and %d, got %d", MaxInstances, n)
	}
	if s.Command == "" && s.Driver == "" {
		return errors.New("command: required (unless a driver runs the service)")
	}
	if err := framework.CheckEnv(s.Env); err != nil {
		return err
	}
	if err := framework.CheckSecretEnv(s.SecretEnv, s.Env); err != nil {
		return err
	}
	if len(s.DriverConfig) > 0 && len(s.DriverConfig) > 64<<10 {
		return errors.New("driverConfig: at most 64 KiB")
	}
	r := s.Resources
	if !(r.Cpus > 0) || r.Cpus > 1024 {
		return fmt.Errorf("resources.cpus: must be > 0 and at most 1024, got %v", r.Cpus)
	}
	if r.Mem < 0 {
		return fmt.Errorf("resources.mem: must be >= 0, got %d", r.Mem)
	}
	if r.Disk < 0 {
		return fmt.Errorf("resources.disk: must be >= 0, got %d", r.Disk)
	}
	if r.Ports < 0 || r.Ports > 128 {
		return fmt.Errorf("resources.ports: must be between 0 and 128, got %d", r.Ports)
	}
	switch s.Network {
	case "", "host", "bridge":
	default:
		return fmt.Errorf("network: must be host or bridge, got %q", s.Network)
	}
	if s.Priority < -1000 || s.Priority > 1000 {
		return fmt.Errorf("priority: must be between -1000 and 1000, got %d", s.Priority)
	}
	portNames := map[string]bool{}
	for i, p := range s.Ports {
		if !portRE.MatchString(p.Name) {
			return fmt.Errorf("ports[%d].name: must be [a-z0-9_]+, got %q", i, p.Name)
		}
		if portNames[p.Name] {
			return fmt.Errorf("ports[%d].name: %q is used twice", i, p.Name)
		}
		portNames[p.Name] = true
		if p.ContainerPort > 65535 || p.HostPort > 65535 {
			return fmt.Errorf("ports[%d]: ports must be at most 65535", i)
		}
		if p.Protocol != "" && p.Protocol != "tcp" && p.Protocol != "udp" {
			return fmt.Errorf("ports[%d].protocol: must be tcp or udp, got %q", i, p.Protocol)
		}
	}
	if len(s.Volumes) > 16 {
		return fmt.Errorf("volumes: at most 16, got %d", len(s.Volumes))
	}
	for i, v := range s.Volumes {
		if v.Name == "" {
			return fmt.Errorf("volumes[%d].name: required", i)
		}
		if v.Path == "" {
			return fmt.Errorf("volumes[%d].path: required", i)
		}
		if v.Host && v.Size != 0 {
			return fmt.Errorf("volumes[%d].size: a host volume has no size", i)
		}
		if !v.Host && v.Size > 0 && v.Size < 4<<20 {
			return fmt.Errorf("volumes[%d].size: must be at least 4Mi, got %d", i, v.Size)
		}
	}
	if len(s.Labels) > 32-3 {
		return fmt.Errorf("labels: at most %d (the init adds 3), got %d", 32-3, len(s.Labels))
	}
	for k, v := range s.Labels {
		if !labelRE.MatchString(k) {
			return fmt.Errorf("labels[%s]: key must be 1 to 63 of [A-Za-z0-9._/-]", k)
		}
		if strings.HasPrefix(k, "dcos.svc") {
			return fmt.Errorf("labels[%s]: the dcos.svc prefix is the init's", k)
		}
		if len(v) > 256 {
			return fmt.Errorf("labels[%s]: value at most 256 bytes", k)
		}
	}
	serial := 0
	for i, c := range s.Constraints {
		if err := c.validate(); err != nil {
			return fmt.Errorf("constraints[%d].%w", i, err)
		}
		if c.Op == OpUnique || c.Op == OpMaxPer || c.Op == OpGroupBy {
			serial++
		}
	}
	if err := s.Health.validate("health", portNames); err != nil {
		return err
	}
	if err := s.Readiness.validate("readiness", portNames); err != nil {
		return err
	}
	b := s.Backoff
	if !(b.Seconds > 0) || b.Seconds > 3600 {
		return fmt.Errorf("backoff.seconds: must be > 0 and at most 3600, got %v", b.Seconds)
	}
	if !(b.Factor >= 1) || b.Factor > 10 {
		return fmt.Errorf("backoff.factor: must be between 1 and 10, got %v", b.Factor)
	}
	if b.MaxLaunchDelaySeconds < b.Seconds || b.MaxLaunchDelaySeconds > 86400 {
		return fmt.Errorf("backoff.maxLaunchDelaySeconds: must be between backoff.seconds and 86400, got %v", b.MaxLaunchDelaySeconds)
	}
	if g := time.Duration(s.KillGracePeriod); g < 0 || g > MaxKillGracePeriod {
		return fmt.Errorf("killGracePeriod: must be between 0s and 10m, got %s", g)
	}
	u := s.UpgradeStrategy
	if m := *u.MinimumHealthCapacity; !(m >= 0 && m <= 1) {
		return fmt.Errorf("upgradeStrategy.minimumHealthCapacity: must be between 0 and 1, got %v", m)
	}
	if m := *u.MaximumOverCapacity; !(m >= 0 && m <= 1) {
		return fmt.Errorf("upgradeStrategy.maximumOverCapacity: must be between 0 and 1, got %v", m)
	}
	if n := s.Count(); n > 0 {
		if minHealthy(s) >= maxTotal(s) {
			return fmt.Errorf("upgradeStrategy: minimumHealthCapacity %v and maximumOverCapacity %v leave no room to replace one of %d instances", *u.MinimumHealthCapacity, *u.MaximumOverCapacity, n)
		}
	}
	return nil
}

func (c Constraint) validate() error {
	if c.Label == "" {
		return errors.New("label: required")
	}
	switch c.Op {
	case OpEquals, OpNotEquals:
		if c.Value == "" {
			return fmt.Errorf("value: required with %s", c.Op)
		}
	case OpIn:
		if len(c.Values) == 0 {
			return errors.New("values: required with IN")
		}
	case OpUnique, OpGroupBy:
	case OpMaxPer:
		if c.Max < 1 {
			return fmt.Errorf("max: must be >= 1, got %d", c.Max)
		}
	default:
		return fmt.Errorf("op: must be one of EQUALS, NOT_EQUALS, IN, UNIQUE, MAX_PER, GROUP_BY, got %q", c.Op)
	}
	return nil
}

func (c *Check) validate(field string, ports map[string]bool) error {
	if c == nil {
		return nil
	}
	n := 0
	if c.HTTP != nil {
		n++
		if c.HTTP.Path != "" && !strings.HasPrefix(c.HTTP.Path, "/") {
			return fmt.Errorf("%s.http.path: must start with /, got %q", field, c.HTTP.Path)
		}
		if err := checkPort(field+".http", c.HTTP.PortName, c.HTTP.Port, ports); err != nil {
			return err
		}
		if c.HTTP.StatusMax != 0 && c.HTTP.StatusMin > c.HTTP.StatusMax {
			return fmt.Errorf("%s.http.statusMin: must be <= statusMax", field)
		}
	}
	if c.TCP != nil {
		n++
		if err := checkPort(field+".tcp", c.TCP.PortName, c.TCP.Port, ports); err != nil {
			return err
		}
	}
	if c.Command != nil {
		n++
		if c.Command.Command == "" {
			return fmt.Errorf("%s.command.command: required", field)
		}
	}
	if n != 1 {
		return fmt.Errorf("%s: want exactly one of http, tcp or command, got %d", field, n)
	}
	if d := c.GracePeriod; d != nil && (*d < 0 || time.Duration(*d) > time.Hour) {
		return fmt.Errorf("%s.gracePeriod: must be between 0s and 1h, got %s", field, time.Duration(*d))
	}
	if d := c.Interval; d != nil && (time.Duration(*d) < 10*time.Millisecond || time.Duration(*d) > time.Hour) {
		if *d <= 0 {
			return fmt.Errorf("%s.interval: must be > 0", field)
		}
		return fmt.Errorf("%s.interval: must be between 10ms and 1h, got %s", field, time.Duration(*d))
	}
	if d := c.Timeout; d != nil {
		if time.Duration(*d) < 10*time.Millisecond || time.Duration(*d) > 5*time.Minute {
			if *d <= 0 {
				return fmt.Errorf("%s.timeout: must be > 0", field)
			}
			return fmt.Errorf("%s.timeout: must be between 10ms and 5m, got %s", field, time.Duration(*d))
		}
		if c.Interval != nil && *d > *c.Interval {
			return fmt.Errorf("%s.timeout: must be at most interval (%s), got %s", field, time.Duration(*c.Interval), time.Duration(*d))
		}
	}
	if c.ConsecutiveFailures < 0 || c.ConsecutiveFailures > 100 {
		return fmt.Errorf("%s.consecutiveFailures: must be between 1 and 100, got %d", field, c.ConsecutiveFailures)
	}
	return nil
}

func checkPort(field, name string, port uint32, ports map[string]bool) error {
	switch {
	case name == "" && port == 0:
		return fmt.Errorf("%s: want portName or port", field)
	case name != "" && port != 0:
		return fmt.Errorf("%s: want portName or port, not both", field)
	case name != "" && !ports[name]:
		return fmt.Errorf("%s.portName: %q is not one of ports", field, name)
	case port > 65535:
		return fmt.Errorf("%s.port: must be at most 65535, got %d", field, port)
	}
	return nil
}

func (c *Check) proto() *pb.HealthCheck {
	if c == nil {
		return nil
	}
	h := &pb.HealthCheck{ConsecutiveFailures: c.ConsecutiveFailures}
	if c.HTTP != nil {
		h.Http = &pb.HTTPCheck{Path: c.HTTP.Path, PortName: c.HTTP.PortName, Port: c.HTTP.Port, StatusMin: c.HTTP.StatusMin, StatusMax: c.HTTP.StatusMax}
	}
	if c.TCP != nil {
		h.Tcp = &pb.TCPCheck{PortName: c.TCP.PortName, Port: c.TCP.Port}
	}
	if c.Command != nil {
		h.Command = &pb.CommandCheck{Command: c.Command.Command, Args: c.Command.Args}
	}
	dur := func(d *Duration) *durationpb.Duration {
		if d == nil {
			return nil
		}
		return durationpb.New(time.Duration(*d))
	}
	h.GracePeriod, h.Interval, h.Timeout = dur(c.GracePeriod), dur(c.Interval), dur(c.Timeout)
	return h
}

// Template is the part of a spec that shapes an instance: everything but
// instances, backoff and upgradeStrategy. Two specs with equal templates
// run the same instances, so a change of instances alone is a scale, not a
// restart. A secretEnv value is part of the template (a new value is a
// rolling restart, like a new env value), so the string holds secret
// values in clear: compare it, never show it.
func (s *Service) Template() string {
	t := *s
	t.Instances, t.Backoff, t.UpgradeStrategy = nil, nil, nil
	b, _ := json.Marshal(t)
	return string(b)
}

// Labels the init puts on its allocations and tasks.
const (
	LabelService  = "dcos.svc"
	LabelVersion  = "dcos.svc.version"
	LabelInstance = "dcos.svc.instance"
)

// allocateRequest is the kernel request for instance n of template version v.
func (s *Service) allocateRequest(v int64, n int, cons []*pb.Constraint) *pb.AllocateRequest {
	r := &pb.AllocateRequest{
		Resources: &pb.Resources{Cpus: s.Resources.Cpus, MemBytes: int64(s.Resources.Mem), DiskBytes: int64(s.Resources.Disk), Ports: s.Resources.Ports},
		Count:     1, Role: s.Role, Priority: s.Priority, Constraints: cons,
		Labels: s.instanceLabels(v, n),
	}
	for _, vol := range s.Volumes {
		if !vol.Host && vol.Size > 0 {
			r.Volumes = append(r.Volumes, &pb.VolumeClaim{Name: fmt.Sprintf("%s-%s-%d", s.Name, vol.Name, n), SizeBytes: int64(vol.Size)})
		}
	}
	return r
}

func (s *Service) instanceLabels(v int64, n int) map[string]string {
	l := make(map[string]string, len(s.Labels)+3)
	for k, val := range s.Labels {
		l[k] = val
	}
	l[LabelService] = s.Name
	l[LabelVersion] = strconv.FormatInt(v, 10)
	l[LabelInstance] = strconv.Itoa(n)
	return l
}

// launchRequest is the kernel request that starts instance n in alloc.
func (s *Service) launchRequest(alloc string, v int64, n int) *pb.LaunchRequest {
	r := &pb.LaunchRequest{
		AllocationId: alloc, Command: s.Command, Args: s.Args, Env: s.Env, SecretEnv: s.SecretEnv,
		Driver: s.Driver, Network: s.Network, Labels: s.instanceLabels(v, n),
		HealthCheck: s.Health.proto(), ReadinessCheck: s.Readiness.proto(),
		KillGracePeriod: durationpb.New(time.Duration(s.KillGracePeriod)),
	}
	if len(s.DriverConfig) > 0 {
		var str string
		if json.Unmarshal(s.DriverConfig, &str) == nil {
			r.DriverConfig = str
		} else {
			r.DriverConfig = string(s.DriverConfig)
		}
	}
	for _, p := range s.Ports {
		r.Ports = append(r.Ports, &pb.PortRequest{Name: p.Name, ContainerPort: p.ContainerPort, HostPort: p.HostPort, Protocol: p.Protocol})
	}
	for _, vol := range s.Volumes {
		name := vol.Name
		if !vol.Host && vol.Size > 0 {
			name = fmt.Sprintf("%s-%s-%d", s.Name, vol.Name, n)
		}
		r.Volumes = append(r.Volumes, &pb.VolumeMount{Name: name, Path: vol.Path, ReadOnly: vol.ReadOnly, Host: vol.Host})
	}
	return r
}
