package kernel

import (
	"fmt"
	"math"
	"net/netip"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Bounds on what one request may ask for. They keep a hostile or buggy
// client from making the kernel allocate without bound; they are far above
// what a real node or task needs.
const (
	MaxCPUs          = 100_000   // cores per instance
	MaxBytes         = 1 << 50   // 1 PiB of memory or disk per instance
	MaxCount         = 10_000    // instances per Allocate
	MaxConstraints   = 32        // constraints per request
	MaxValues        = 64        // values per constraint
	MaxStringLen     = 253       // labels, values, roles, reasons
	MaxCommandLen    = 4096      // bytes in command
	MaxArgs          = 1024      // args per task
	MaxEnv           = 1024      // env entries per task
	MaxTaskSpecBytes = 256 << 10 // command + args + env + working dir
	MaxLeaseTTL      = 365 * 24 * time.Hour
	MinLeaseTTL      = 100 * time.Millisecond
	MaxLabels        = 64
	MaxIDs           = 10_000   // ids per KeepAlive
	MaxDriverConfig  = 64 << 10 // bytes of a task's driver_config
	MaxPlugins       = 256      // plugins an agent reports
	MaxUsage         = 10_000   // task usage samples per heartbeat
	MaxPorts         = 128      // ports per task
)

// Task network modes (LaunchRequest.network; "" is host).
const (
	NetworkHost   = "host"
	NetworkBridge = "bridge"
)

// Port protocols (PortRequest.protocol; "" is tcp).
const (
	ProtocolTCP = "tcp"
	ProtocolUDP = "udp"
)

// portNameRE is a task port's name (it may end up in environment
// variable names and DNS records, hence no upper case or dashes).
var portNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// driverRE is a task driver's name, as the agents' plugin files spell it
// (dcos-driver-<name>).
var driverRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)

// userRE is a task's user name (LaunchRequest.user), as useradd takes it;
// MaxUserLen bounds it.
var userRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]*[$]?$`)

// MaxUserLen is the longest user name a task may run as.
const MaxUserLen = 32

// AnyUser in a role's allowed users (Config.RoleUsers) allows every user.
const AnyUser = "*"

// validateUser checks a task's user: empty (the agent's default) or a
// user name of at most MaxUserLen bytes ("root" is one).
func validateUser(u string) error {
	if u != "" && (len(u) > MaxUserLen || !userRE.MatchString(u)) {
		return fieldError("user", "want a user name matching %s of at most %d bytes (or empty for the default unprivileged user), got %q", userRE, MaxUserLen, clip(u))
	}
	return nil
}

// ValidateRoleUsers checks an operator's allowed users by role: role
// names as in requests, users valid task users or AnyUser.
func ValidateRoleUsers(m map[string][]string) error {
	for role, users := range m {
		if err := validateName("role", role, true); err != nil {
			return err
		}
		for _, u := range users {
			if u == AnyUser {
				continue
			}
			if err := validateUser(u); err != nil || u == "" {
				return fieldError("role "+role, "bad user %q: want a user name matching %s or %q", clip(u), userRE, AnyUser)
			}
		}
	}
	return nil
}

// fieldError is an InvalidArgument error naming the field at fault.
func fieldError(field, format string, args ...any) error {
	return &Error{Code: InvalidArgument, Msg: field + ": " + fmt.Sprintf(format, args...)}
}

// ValidateResources checks an instance's resources: cpus finite and in
// (0, MaxCPUs], memory in (0, MaxBytes], disk in [0, MaxBytes], ports in
// [0, MaxPorts]. When
// allowZero is set (a task's share), zero cpus and memory are accepted.
func ValidateResources(field string, r *pb.Resources, allowZero bool) error {
	if r == nil {
		if allowZero {
			return nil
		}
		return fieldError(field, "required (cpus and mem_bytes)")
	}
	c := r.GetCpus()
	switch {
	case math.IsNaN(c) || math.IsInf(c, 0):
		return fieldError(field+".cpus", "must be a finite number, got %v", c)
	case c < 0 || (!allowZero && c < 0.001):
		return fieldError(field+".cpus", "must be at least 0.001, got %v", c)
	case c > MaxCPUs:
		return fieldError(field+".cpus", "must be at most %d, got %v", MaxCPUs, c)
	}
	if m := r.GetMemBytes(); m < 0 || (!allowZero && m == 0) || m > MaxBytes {
		return fieldError(field+".mem_bytes", "must be in [1, %d], got %d", int64(MaxBytes), m)
	}
	if d := r.GetDiskBytes(); d < 0 || d > MaxBytes {
		return fieldError(field+".disk_bytes", "must be in [0, %d], got %d", int64(MaxBytes), d)
	}
	if p := r.GetPorts(); p < 0 || p > MaxPorts {
		return fieldError(field+".ports", "must be in [0, %d], got %d", MaxPorts, p)
	}
	return nil
}

func validateName(field, s string, required bool) error {
	if s == "" {
		if required {
			return fieldError(field, "required")
		}
		return nil
	}
	if len(s) > MaxStringLen || !nameRE.MatchString(s) {
		return fieldError(field, "must be at most %d characters of [A-Za-z0-9._/-] starting with a letter or digit, got %q", MaxStringLen, clip(s))
	}
	return nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// ValidateAllocate checks an Allocate request before it touches state.
func ValidateAllocate(r *pb.AllocateRequest) error {
	if err := ValidateResources("resources", r.GetResources(), false); err != nil {
		return err
	}
	if c := r.GetCount(); c < 0 || c > MaxCount {
		return fieldError("count", "must be in [0, %d] (0 means 1), got %d", MaxCount, c)
	}
	if err := validateGang(r); err != nil {
		return err
	}
	if err := validateName("role", r.GetRole(), false); err != nil {
		return err
	}
	if err := validateConstraints(r.GetConstraints()); err != nil {
		return err
	}
	if err := validateVolumeClaims(r); err != nil {
		return err
	}
	if err := validateLabels(r.GetLabels()); err != nil {
		return err
	}
	if err := validateFence(r.GetFence()); err != nil {
		return err
	}
	if r.LeaseTtl != nil {
		if err := r.LeaseTtl.CheckValid(); err != nil {
			return fieldError("lease_ttl", "%v", err)
		}
		if d := r.LeaseTtl.AsDuration(); d < MinLeaseTTL || d > MaxLeaseTTL {
			return fieldError("lease_ttl", "must be in [%v, %v], got %v", MinLeaseTTL, MaxLeaseTTL, d)
		}
	}
	return nil
}

func validateConstraints(cs []*pb.Constraint) error {
	if len(cs) > MaxConstraints {
		return fieldError("constraints", "at most %d, got %d", MaxConstraints, len(cs))
	}
	for i, c := range cs {
		f := fmt.Sprintf("constraints[%d]", i)
		if err := validateName(f+".label", c.GetLabel(), true); err != nil {
			return err
		}
		n := len(c.GetValues())
		switch c.GetOp() {
		case pb.Constraint_OP_EQUALS, pb.Constraint_OP_NOT_EQUALS:
			if n != 1 {
				return fieldError(f+".values", "%v takes exactly one value, got %d", c.GetOp(), n)
			}
		case pb.Constraint_OP_IN:
			if n < 1 || n > MaxValues {
				return fieldError(f+".values", "OP_IN takes 1 to %d values, got %d", MaxValues, n)
			}
		default:
			return fieldError(f+".op", "must be OP_EQUALS, OP_NOT_EQUALS or OP_IN, got %v", c.GetOp())
		}
		for j, v := range c.GetValues() {
			if len(v) > MaxStringLen {
				return fieldError(fmt.Sprintf("%s.values[%d]", f, j), "longer than %d", MaxStringLen)
			}
		}
	}
	return nil
}

// imageDriver is the task driver that runs container images: with it, an
// empty command means the image's entrypoint.
const imageDriver = "oci"

// ValidateLaunch checks a Launch request before it touches state. The
// command is required, except with the image driver (oci), where an empty
// command runs the image's entrypoint.
func ValidateLaunch(r *pb.LaunchRequest) error {
	if r.GetAllocationId() == "" {
		return fieldError("allocation_id", "required")
	}
	if err := validateVolumeMounts(r.GetVolumes()); err != nil {
		return err
	}
	if len(r.GetAllocationId()) > MaxStringLen {
		return fieldError("allocation_id", "longer than %d", MaxStringLen)
	}
	cmd := r.GetCommand()
	switch {
	case cmd == "" && r.GetDriver() == imageDriver:
		// The image's entrypoint runs (LaunchRequest.args, if any, replace
		// its CMD).
	case strings.TrimSpace(cmd) == "":
		return fieldError("command", "required (a program to run), unless the driver runs an image (driver %s)", imageDriver)
	case len(cmd) > MaxCommandLen:
		return fieldError("command", "longer than %d bytes", MaxCommandLen)
	case strings.ContainsRune(cmd, 0):
		return fieldError("command", "contains a NUL byte")
	}
	size := len(cmd) + len(r.GetWorkingDir())
	if len(r.GetArgs()) > MaxArgs {
		return fieldError("args", "at most %d, got %d", MaxArgs, len(r.GetArgs()))
	}
	for i, a := range r.GetArgs() {
		if strings.ContainsRune(a, 0) {
			return fieldError(fmt.Sprintf("args[%d]", i), "contains a NUL byte")
		}
		size += len(a)
	}
	if len(r.GetEnv()) > MaxEnv {
		return fieldError("env", "at most %d entries, got %d", MaxEnv, len(r.GetEnv()))
	}
	for k, v := range r.GetEnv() {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fieldError("env", "invalid variable name %q", clip(k))
		}
		if strings.ContainsRune(v, 0) {
			return fieldError("env["+clip(k)+"]", "contains a NUL byte")
		}
		size += len(k) + len(v)
	}
	if err := validateSecretEnv(r); err != nil { // secrets.go
		return err
	}
	if wd := r.GetWorkingDir(); strings.ContainsRune(wd, 0) {
		return fieldError("working_dir", "contains a NUL byte")
	} else if wd != "" && !path.IsAbs(wd) && !filepath.IsLocal(wd) {
		return fieldError("working_dir", "%q leaves the sandbox: a relative working_dir must stay inside it", clip(wd))
	}
	if err := validateUser(r.GetUser()); err != nil {
		return err
	}
	if size > MaxTaskSpecBytes {
		return fieldError("args", "command, args, env and working_dir total %d bytes, more than %d", size, MaxTaskSpecBytes)
	}
	if d := r.GetDriver(); d != "" && !driverRE.MatchString(d) {
		return fieldError("driver", "must be 1-63 characters of [a-z0-9_-] starting with a letter or digit, got %q", clip(d))
	}
	if n := len(r.GetDriverConfig()); n > MaxDriverConfig {
		return fieldError("driver_config", "%d bytes, more than %d", n, MaxDriverConfig)
	}
	switch n := r.GetNetwork(); n {
	case "", NetworkHost, NetworkBridge:
	default:
		return fieldError("network", "must be %q or %q (empty means %q), got %q", NetworkHost, NetworkBridge, NetworkHost, clip(n))
	}
	if err := validatePorts("ports", r.GetPorts(), false, r.GetNetwork() != NetworkBridge); err != nil {
		return err
	}
	if err := validateLabels(r.GetLabels()); err != nil {
		return err
	}
	if err := validateFence(r.GetFence()); err != nil {
		return err
	}
	if err := validateHealthCheck("health_check", r.GetHealthCheck(), r.GetPorts()); err != nil {
		return err
	}
	if err := validateHealthCheck("readiness_check", r.GetReadinessCheck(), r.GetPorts()); err != nil {
		return err
	}
	if l := r.GetLogs(); l != nil {
		if b := l.GetMaxBytes(); b != 0 && (b < MinLogBytes || b > MaxLogBytes) {
			return fieldError("logs.max_bytes", "must be 0 (the agent's default) or between 4Ki and 1Gi, got %d", b)
		}
		if n := l.GetMaxFiles(); n < 0 || n > MaxLogFiles {
			return fieldError("logs.max_files", "must be 0 (the agent's default) or between 1 and %d, got %d", MaxLogFiles, n)
		}
	}
	if g := r.GetKillGracePeriod(); g != nil {
		if err := g.CheckValid(); err != nil {
			return fieldError("kill_grace_period", "%v", err)
		}
		if v := g.AsDuration(); v < 0 || v > MaxKillGracePeriod {
			return fieldError("kill_grace_period", "must be between 0s and %s, got %s", shortDur(MaxKillGracePeriod), shortDur(v))
		}
	}
	return ValidateResources("resources", r.GetResources(), true)
}

// validatePorts checks a task's ports: names of [a-z0-9_] unique, ports in
// [1, 65535] (a host port may be 0, any, unless chosen is set), protocol
// tcp or udp, and no host port published twice for one protocol. A
// host-network task (hostNet) listens on its host port: its container port
// is 0 or the host port.
func validatePorts[P portSpec](field string, ps []P, chosen, hostNet bool) error {
	if len(ps) > MaxPorts {
		return fieldError(field, "at most %d, got %d", MaxPorts, len(ps))
	}
	names := map[string]int{}
	hosts := map[string]int{}
	for i, p := range ps {
		f := fmt.Sprintf("%s[%d]", field, i)
		name := p.GetName()
		if !portNameRE.MatchString(name) {
			return fieldError(f+".name", "must be 1-63 characters of [a-z0-9_], got %q", clip(name))
		}
		if j, dup := names[name]; dup {
			return fieldError(f+".name", "%q is also the name of %s[%d]", name, field, j)
		}
		names[name] = i
		h, low := p.GetHostPort(), uint32(0)
		if chosen {
			low = 1
		}
		if h < low || h > 65535 {
			return fieldError(f+".host_port", "must be in [%d, 65535], got %d", low, h)
		}
		switch c := p.GetContainerPort(); {
		case hostNet && c != 0 && h != 0 && c != h:
			return fieldError(f+".container_port", "a task on the host's network listens on its host port: must be 0 or the host port %d, got %d", h, c)
		case hostNet && c > 65535:
			return fieldError(f+".container_port", "must be in [0, 65535], got %d", c)
		case !hostNet && (c < 1 || c > 65535):
			return fieldError(f+".container_port", "must be in [1, 65535], got %d", c)
		}
		protocol := p.GetProtocol()
		switch protocol {
		case "":
			protocol = ProtocolTCP
		case ProtocolTCP, ProtocolUDP:
		default:
			return fieldError(f+".protocol", "must be %q or %q (empty means %q), got %q", ProtocolTCP, ProtocolUDP, ProtocolTCP, clip(protocol))
		}
		if hostNet && h == 0 {
			h = p.GetContainerPort() // the host port it asks for
		}
		if h == 0 {
			continue
		}
		key := fmt.Sprintf("%d/%s", h, protocol)
		if j, dup := hosts[key]; dup {
			return fieldError(f+".host_port", "%s is also published by %s[%d]", key, field, j)
		}
		hosts[key] = i
	}
	return nil
}

// validateAddr checks an optional host address: an IPv4 or IPv6 address
// without a zone that a host can have (not unspecified, multicast or the
// IPv4 broadcast address).
func validateAddr(field, s string) error {
	if s == "" {
		return nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return fieldError(field, "must be a host's IPv4 or IPv6 address, got %q", clip(s))
	}
	return nil
}

// validatePlugins checks the plugin list an agent reports.
func validatePlugins(ps []*pb.PluginInfo) error {
	if len(ps) > MaxPlugins {
		return fieldError("plugins", "at most %d, got %d", MaxPlugins, len(ps))
	}
	for i, p := range ps {
		f := fmt.Sprintf("plugins[%d]", i)
		for _, s := range []string{p.GetName(), p.GetKind(), p.GetHealth(), p.GetSha256()} {
			if len(s) > MaxStringLen {
				return fieldError(f, "a field is longer than %d", MaxStringLen)
			}
		}
		if len(p.GetLastError()) > 4096 || len(p.GetPath()) > 4096 {
			return fieldError(f, "last_error or path longer than 4096")
		}
	}
	return nil
}

// ValidateHeartbeat checks an agent's heartbeat.
func ValidateHeartbeat(r *pb.HeartbeatRequest) error {
	if err := validatePlugins(r.GetPlugins()); err != nil {
		return err
	}
	if err := validateImages(r.GetImages()); err != nil {
		return err
	}
	if len(r.GetUsage()) > MaxUsage {
		return fieldError("usage", "at most %d samples, got %d", MaxUsage, len(r.GetUsage()))
	}
	for i, u := range r.GetUsage() {
		if u.GetTaskId() == "" || len(u.GetTaskId()) > MaxStringLen {
			return fieldError(fmt.Sprintf("usage[%d].task_id", i), "required, at most %d characters", MaxStringLen)
		}
	}
	return nil
}

// ValidateRegister checks an agent's registration.
func ValidateRegister(r *pb.RegisterAgentRequest) error {
	if err := validateName("agent_id", r.GetAgentId(), false); err != nil {
		return err
	}
	if len(r.GetHostname()) > MaxStringLen {
		return fieldError("hostname", "longer than %d", MaxStringLen)
	}
	if len(r.GetLabels()) > MaxLabels {
		return fieldError("labels", "at most %d, got %d", MaxLabels, len(r.GetLabels()))
	}
	if len(r.GetVolumes()) > MaxIDs {
		return fieldError("volumes", "at most %d, got %d", MaxIDs, len(r.GetVolumes()))
	}
	for i, v := range r.GetVolumes() {
		if s := v.GetSizeBytes(); s < 0 || s > MaxBytes || len(v.GetRole()) > MaxStringLen || len(v.GetOwner()) > MaxStringLen {
			return fieldError(fmt.Sprintf("volumes[%d]", i), "bad size, role or owner")
		}
	}
	for k, v := range r.GetLabels() {
		if err := validateName("labels", k, true); err != nil {
			return err
		}
		if len(v) > MaxStringLen {
			return fieldError("labels["+k+"]", "longer than %d", MaxStringLen)
		}
	}
	rng, err := ParsePortRange(r.GetHostPorts())
	if err != nil {
		return fieldError("host_ports", "%v", err)
	}
	res := proto.Clone(r.GetResources()).(*pb.Resources) // ports are the range's size, not bounded by MaxPorts
	if p := res.GetPorts(); p != 0 && p != rng.Size() {
		return fieldError("resources.ports", "must be 0 or the size of host_ports %q (%d), got %d", rng, rng.Size(), p)
	}
	if res != nil {
		res.Ports = 0
	}
	if err := ValidateResources("resources", res, false); err != nil {
		return err
	}
	if len(r.GetRunningTaskIds()) > MaxIDs {
		return fieldError("running_task_ids", "at most %d", MaxIDs)
	}
	if err := validateAddr("underlay_ip", r.GetUnderlayIp()); err != nil {
		return err
	}
	return validatePlugins(r.GetPlugins())
}

// ValidateReport checks a task status report.
func ValidateReport(r *pb.ReportTaskStatusRequest) error {
	if r.GetTaskId() == "" {
		return fieldError("task_id", "required")
	}
	if r.GetAgentId() == "" {
		return fieldError("agent_id", "required")
	}
	switch r.GetState() {
	case pb.TaskState_TASK_STATE_STARTING, pb.TaskState_TASK_STATE_RUNNING, pb.TaskState_TASK_STATE_FINISHED,
		pb.TaskState_TASK_STATE_FAILED, pb.TaskState_TASK_STATE_KILLED, pb.TaskState_TASK_STATE_LOST:
	default:
		return fieldError("state", "an agent may report STARTING, RUNNING, FINISHED, FAILED, KILLED or LOST, got %v", r.GetState())
	}
	if len(r.GetReason()) > 4096 {
		return fieldError("reason", "longer than 4096")
	}
	if len(r.GetSandbox()) > 4096 {
		return fieldError("sandbox", "longer than 4096")
	}
	if err := validateAddr("ip", r.GetIp()); err != nil {
		return err
	}
	if h := r.GetHealth(); h != nil {
		if _, ok := pb.HealthState_name[int32(h.GetHealth())]; !ok {
			return fieldError("health.health", "unknown health state %d", h.GetHealth())
		}
		if len(h.GetMessage()) > 4096 {
			return fieldError("health.message", "longer than 4096")
		}
	}
	return validatePorts("ports", r.GetPorts(), true, false)
}

// Bounds of LaunchRequest.logs: each output stream of a task is rotated
// at max_bytes, and max_files of its files are kept.
const (
	MinLogBytes = 4 << 10
	MaxLogBytes = 1 << 30
	MaxLogFiles = 100
)

// MaxKillGracePeriod bounds LaunchRequest.kill_grace_period, the time a
// task has between SIGTERM and SIGKILL.
const MaxKillGracePeriod = 10 * time.Minute

// Health check bounds and defaults (HealthCheck in the ABI).
const (
	DefaultHealthGrace     = 30 * time.Second
	MaxHealthGrace         = time.Hour
	DefaultHealthInterval  = 10 * time.Second
	MinHealthInterval      = 10 * time.Millisecond
	MaxHealthInterval      = time.Hour
	DefaultHealthTimeout   = 2 * time.Second
	MinHealthTimeout       = 10 * time.Millisecond
	MaxHealthTimeout       = 5 * time.Minute
	DefaultHealthFailures  = 3
	MaxHealthFailures      = 100
	DefaultHealthStatusMin = 200
	DefaultHealthStatusMax = 399
	MaxHealthCheckPath     = 1024
)

// validateHealthCheck checks a task's health or readiness check (field
// names it): exactly one of http, tcp and command; durations and counts in
// their ranges (unset means the default); an HTTP path starting with "/";
// a status range within [100, 599]; a port naming one of ports or a
// number in [1, 65535]; a non-empty command. A nil check is valid.
func validateHealthCheck(field string, hc *pb.HealthCheck, ports []*pb.PortRequest) error {
	if hc == nil {
		return nil
	}
	kinds := 0
	for _, set := range []bool{hc.Http != nil, hc.Tcp != nil, hc.Command != nil} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return fieldError(field, "exactly one of http, tcp and command must be set, got %d", kinds)
	}
	dur := func(name string, d interface {
		CheckValid() error
		AsDuration() time.Duration
	}, isSet bool, lo, hi time.Duration) (time.Duration, error) {
		if !isSet {
			return 0, nil
		}
		if err := d.CheckValid(); err != nil {
			return 0, fieldError(field+"."+name, "%v", err)
		}
		v := d.AsDuration()
		if v < lo || v > hi {
			return 0, fieldError(field+"."+name, "must be between %s and %s, got %s", shortDur(lo), shortDur(hi), shortDur(v))
		}
		return v, nil
	}
	if _, err := dur("grace_period", hc.GracePeriod, hc.GracePeriod != nil, 0, MaxHealthGrace); err != nil {
		return err
	}
	interval, err := dur("interval", hc.Interval, hc.Interval != nil, MinHealthInterval, MaxHealthInterval)
	if err != nil {
		return err
	}
	if hc.Interval == nil {
		interval = DefaultHealthInterval
	}
	timeout, err := dur("timeout", hc.Timeout, hc.Timeout != nil, MinHealthTimeout, MaxHealthTimeout)
	if err != nil {
		return err
	}
	if hc.Timeout == nil {
		timeout = min(DefaultHealthTimeout, interval)
	}
	if timeout > interval {
		return fieldError(field+".timeout", "must be at most the interval %s, got %s", shortDur(interval), shortDur(timeout))
	}
	if n := hc.GetConsecutiveFailures(); n < 0 || n > MaxHealthFailures {
		return fieldError(field+".consecutive_failures", "must be between 1 and %d (0 means %d), got %d", MaxHealthFailures, DefaultHealthFailures, n)
	}
	port := func(f, name string, num uint32) error {
		switch {
		case name != "" && num != 0:
			return fieldError(f, "set port_name or port, not both")
		case name != "":
			for _, p := range ports {
				if p.GetName() == name {
					return nil
				}
			}
			return fieldError(f+".port_name", "%q is not the name of one of the task's ports", clip(name))
		case num < 1 || num > 65535:
			return fieldError(f+".port", "must be between 1 and 65535 (or set port_name), got %d", num)
		}
		return nil
	}
	switch {
	case hc.Http != nil:
		h, f := hc.Http, field+".http"
		if p := h.GetPath(); p != "" && (!strings.HasPrefix(p, "/") || len(p) > MaxHealthCheckPath || strings.ContainsAny(p, " \x00\r\n")) {
			return fieldError(f+".path", "must start with \"/\", hold no spaces or control characters and be at most %d bytes, got %q", MaxHealthCheckPath, clip(p))
		}
		lo, hi := h.GetStatusMin(), h.GetStatusMax()
		if lo == 0 {
			lo = DefaultHealthStatusMin
		}
		if hi == 0 {
			hi = DefaultHealthStatusMax
		}
		if lo < 100 || lo > 599 {
			return fieldError(f+".status_min", "must be between 100 and 599, got %d", lo)
		}
		if hi < 100 || hi > 599 {
			return fieldError(f+".status_max", "must be between 100 and 599, got %d", hi)
		}
		if lo > hi {
			return fieldError(f+".status_max", "must be at least status_min %d, got %d", lo, hi)
		}
		return port(f, h.GetPortName(), h.GetPort())
	case hc.Tcp != nil:
		return port(field+".tcp", hc.Tcp.GetPortName(), hc.Tcp.GetPort())
	default:
		cm, f := hc.Command, field+".command"
		switch c := cm.GetCommand(); {
		case strings.TrimSpace(c) == "":
			return fieldError(f+".command", "required (a program to run)")
		case len(c) > MaxCommandLen:
			return fieldError(f+".command", "longer than %d bytes", MaxCommandLen)
		case strings.ContainsRune(c, 0):
			return fieldError(f+".command", "contains a NUL byte")
		}
		if len(cm.GetArgs()) > MaxArgs {
			return fieldError(f+".args", "at most %d, got %d", MaxArgs, len(cm.GetArgs()))
		}
		size := len(cm.GetCommand())
		for i, a := range cm.GetArgs() {
			if strings.ContainsRune(a, 0) {
				return fieldError(fmt.Sprintf("%s.args[%d]", f, i), "contains a NUL byte")
			}
			size += len(a)
		}
		if size > MaxTaskSpecBytes {
			return fieldError(f+".args", "command and args total %d bytes, more than %d", size, MaxTaskSpecBytes)
		}
	}
	return nil
}

// WithHealthDefaults returns a copy of a valid check (see ValidateLaunch)
// with every unset field given its default, so that agents and clients
// see the effective values; nil stays nil. hc is not modified.
func WithHealthDefaults(hc *pb.HealthCheck) *pb.HealthCheck {
	if hc == nil {
		return nil
	}
	out := proto.Clone(hc).(*pb.HealthCheck)
	if out.GracePeriod == nil {
		out.GracePeriod = durationpb.New(DefaultHealthGrace)
	}
	if out.Interval == nil {
		out.Interval = durationpb.New(DefaultHealthInterval)
	}
	if out.Timeout == nil {
		out.Timeout = durationpb.New(min(DefaultHealthTimeout, out.Interval.AsDuration()))
	}
	if out.ConsecutiveFailures == 0 {
		out.ConsecutiveFailures = DefaultHealthFailures
	}
	if h := out.Http; h != nil {
		if h.Path == "" {
			h.Path = "/"
		}
		if h.StatusMin == 0 {
			h.StatusMin = DefaultHealthStatusMin
		}
		if h.StatusMax == 0 {
			h.StatusMax = DefaultHealthStatusMax
		}
	}
	return out
}

// shortDur spells d without trailing zero units: "1h", "5m", "1m30s".
func shortDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
