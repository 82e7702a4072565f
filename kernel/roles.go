package kernel

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/dcos-kernel/dcos/internal/cpulist"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Bounds of a role's quota (RoleSet): far above any cluster, low enough
// that usage sums stay exact in int64.
const (
	MaxQuotaCPUs  = 1_000_000_000 // cores
	MaxQuotaBytes = 1 << 60       // memory or disk
	MaxQuotaPorts = 1 << 32       // host ports
)

// Role settings come from two places: the operator's start-up defaults
// (Config.Roles, dcosd --role-weight/--role-quota/--role-cpu-class, memory
// only) and the durable settings of RoleSet (t.roleSets, a *pb.Role per
// role whose weight is 0, quota nil and cpu_class absent where RoleSet
// never set them). A durable field overrides the default's, field by
// field.

// roleConfig is the effective setting of a role: its start-up default
// with the fields RoleSet set replaced.
func (t *Table) roleConfig(name string) RoleConfig {
	cfg := t.roles[name]
	if s := t.roleSets[name]; s != nil {
		if s.GetWeight() > 0 {
			cfg.Weight = s.GetWeight()
		}
		if s.GetQuota() != nil {
			cfg.Quota = FromProto(s.GetQuota())
		}
		if s.CpuClass != nil {
			cfg.CPUClass = s.GetCpuClass()
		}
		if s.Cpuset != nil {
			cfg.CPUSet = s.GetCpuset()
		}
	}
	return cfg
}

// restoreRoles loads the durable role settings of s.
func (t *Table) restoreRoles(s *State) {
	t.roleSets = make(map[string]*pb.Role, len(s.Roles))
	for _, r := range s.Roles {
		t.roleSets[r.GetName()] = r
	}
}

// SetRole records a RoleSet: weight and quota, each when non-nil, replace
// the role's durable setting (a zero quota is "no quota", and overrides
// a start-up quota). It triggers a cycle: a raised quota may let a
// pending request fit now. The caller validated the input.
func (t *Table) SetRole(name string, weight *float64, quota *Resources, c *Changes) {
	s := &pb.Role{Name: name}
	if old := t.roleSets[name]; old != nil {
		s = proto.Clone(old).(*pb.Role)
	}
	if weight != nil {
		s.Weight = *weight
	}
	if quota != nil {
		s.Quota = quota.Proto()
	}
	if t.roleSets == nil {
		t.roleSets = map[string]*pb.Role{}
	}
	t.roleSets[name] = s
	c.Roles[name] = s
	c.cycle = true
}

// SetRoleCPUClass records a RoleSet's cpu_class as the role's durable
// setting: the tasks of the role launched from then on get it (running
// ones keep theirs). The caller validated the class.
func (t *Table) SetRoleCPUClass(name string, class pb.CpuClass, c *Changes) {
	s := &pb.Role{Name: name}
	if old := t.roleSets[name]; old != nil {
		s = proto.Clone(old).(*pb.Role)
	}
	s.CpuClass = &class
	if t.roleSets == nil {
		t.roleSets = map[string]*pb.Role{}
	}
	t.roleSets[name] = s
	c.Roles[name] = s
}

// SetRoleCPUSet records a RoleSet's cpuset (canonical, validated by the
// caller; "" for every CPU) as the role's durable setting: the tasks of
// the role launched from then on get it (running ones keep theirs).
func (t *Table) SetRoleCPUSet(name, cpuset string, c *Changes) {
	s := &pb.Role{Name: name}
	if old := t.roleSets[name]; old != nil {
		s = proto.Clone(old).(*pb.Role)
	}
	s.Cpuset = &cpuset
	if t.roleSets == nil {
		t.roleSets = map[string]*pb.Role{}
	}
	t.roleSets[name] = s
	c.Roles[name] = s
}

// Roles returns every role that has a setting (start-up or RoleSet) or a
// live allocation, sorted by name, with its effective weight (1 when
// unset), its CPU class (NORMAL when unset), its quota (nil when it has
// none), the usage of its granted allocations and the count of its
// pending ones. The objects are new.
func (t *Table) Roles() []*pb.Role {
	usage := map[string]Resources{}
	pending := map[string]int32{}
	for n := range t.roles {
		usage[n] = Resources{}
	}
	for n := range t.roleSets {
		usage[n] = Resources{}
	}
	for _, a := range t.allocs {
		r := a.GetRole()
		if a.GetState() == pb.AllocationState_ALLOCATION_STATE_GRANTED {
			usage[r] = usage[r].Add(FromProto(a.GetResources()))
		} else {
			usage[r] = usage[r]
			pending[r]++
		}
	}
	out := make([]*pb.Role, 0, len(usage))
	for n, u := range usage {
		out = append(out, t.roleProto(n, u, pending[n]))
	}
	slices.SortFunc(out, func(a, b *pb.Role) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}

// role returns one role as Roles lists it.
func (t *Table) role(name string) *pb.Role {
	var u Resources
	var pending int32
	for _, a := range t.allocs {
		if a.GetRole() != name {
			continue
		}
		if a.GetState() == pb.AllocationState_ALLOCATION_STATE_GRANTED {
			u = u.Add(FromProto(a.GetResources()))
		} else {
			pending++
		}
	}
	return t.roleProto(name, u, pending)
}

func (t *Table) roleProto(name string, usage Resources, pending int32) *pb.Role {
	cfg := t.roleConfig(name)
	w := cfg.Weight
	if w <= 0 {
		w = 1
	}
	class := cfg.CPUClass
	cpuset := cfg.CPUSet
	r := &pb.Role{Name: name, Weight: w, Usage: usage.Proto(), Pending: pending, CpuClass: &class, Cpuset: &cpuset}
	if !cfg.Quota.IsZero() {
		r.Quota = cfg.Quota.Proto()
	}
	return r
}

// ValidateRoleSet checks a RoleSet request: a role name, a finite weight
// > 0 when set, a non-negative quota within the MaxQuota bounds when set,
// a known CPU class when set, a CPU list when cpuset is set (see
// cpulist.Parse), and at least one of them.
func ValidateRoleSet(r *pb.RoleSetRequest) error {
	if err := validateName("name", r.GetName(), true); err != nil {
		return err
	}
	if r.Weight == nil && r.Quota == nil && r.CpuClass == nil && r.Cpuset == nil {
		return fieldError("weight", "nothing to set: give weight, quota, cpu_class, cpuset or several")
	}
	if r.Cpuset != nil {
		if _, err := cpulist.Parse(r.GetCpuset()); err != nil {
			return fieldError("cpuset", "want a Linux CPU list such as \"1-3,5\" (CPUs 0..%d, at most %d bytes): %v", cpulist.MaxCPU, cpulist.MaxLen, err)
		}
	}
	if r.CpuClass != nil {
		if _, ok := pb.CpuClass_name[int32(r.GetCpuClass())]; !ok {
			return fieldError("cpu_class", "must be CPU_CLASS_NORMAL or CPU_CLASS_IDLE, got %d", int32(r.GetCpuClass()))
		}
	}
	if r.Weight != nil {
		if w := r.GetWeight(); math.IsNaN(w) || math.IsInf(w, 0) || w <= 0 {
			return fieldError("weight", "must be a finite number > 0, got %v", w)
		}
	}
	q := r.GetQuota()
	if q == nil {
		return nil
	}
	if c := q.GetCpus(); math.IsNaN(c) || math.IsInf(c, 0) || c < 0 || c > MaxQuotaCPUs {
		return fieldError("quota.cpus", "must be a finite number in [0, %d], got %v", MaxQuotaCPUs, c)
	}
	if m := q.GetMemBytes(); m < 0 || m > MaxQuotaBytes {
		return fieldError("quota.mem_bytes", "must be in [0, %d], got %d", int64(MaxQuotaBytes), m)
	}
	if d := q.GetDiskBytes(); d < 0 || d > MaxQuotaBytes {
		return fieldError("quota.disk_bytes", "must be in [0, %d], got %d", int64(MaxQuotaBytes), d)
	}
	if p := q.GetPorts(); p < 0 || p > MaxQuotaPorts {
		return fieldError("quota.ports", "must be in [0, %d], got %d", int64(MaxQuotaPorts), p)
	}
	return nil
}

// RoleSet sets a role's weight, quota, CPU class and/or cpuset (operators only,
// else PermissionDenied), persisted with the next commit; the new values
// take effect in the cycle of that same loop iteration. Allocations
// already granted past a lowered quota are kept; a CPU class or cpuset
// applies to the tasks launched after it (Launch copies it into the Task;
// the cpuset is stored canonical: "3,1-2" → "1-3"). Bad input
// is InvalidArgument naming the field.
func (k *Kernel) RoleSet(ctx context.Context, p Principal, req *pb.RoleSetRequest) (*pb.RoleSetResponse, error) {
	if p.Role != RoleOperator {
		return nil, errorf(PermissionDenied, "role set: operators only, not a %s", p.Role)
	}
	if err := ValidateRoleSet(req); err != nil {
		return nil, err
	}
	var quota *Resources
	if req.Quota != nil {
		q := FromProto(req.GetQuota())
		quota = &q
	}
	resp := &pb.RoleSetResponse{}
	rev, err := k.do(ctx, func(t *Table, c *Changes, _ time.Time) error {
		if req.Weight != nil || quota != nil {
			t.SetRole(req.GetName(), req.Weight, quota, c)
		}
		if req.CpuClass != nil {
			t.SetRoleCPUClass(req.GetName(), req.GetCpuClass(), c)
		}
		if req.Cpuset != nil {
			t.SetRoleCPUSet(req.GetName(), cpulist.MustParse(req.GetCpuset()).String(), c)
		}
		return nil
	}, func(t *Table) { resp.Role = t.role(req.GetName()) })
	if err != nil {
		return nil, err
	}
	resp.Revision = rev
	return resp, nil
}

// RoleList lists the roles with settings or allocations (see
// Table.Roles), for every principal: the numbers policies see.
func (k *Kernel) RoleList(context.Context, Principal) *pb.RoleListResponse {
	var resp *pb.RoleListResponse
	k.view.read(func(t *Table) { resp = &pb.RoleListResponse{Roles: t.Roles(), Revision: t.Revision()} })
	return resp
}

// quotas tracks each role's usage against its quota through one
// judgement or one policy's batch.
type quotas struct {
	quota map[string]Resources // non-zero quotas only
	usage map[string]Resources
}

// newQuotas starts from the snapshot's usage less what the accepted
// revocations revs free.
func newQuotas(s *Snapshot, revs []int) quotas {
	q := quotas{quota: map[string]Resources{}, usage: make(map[string]Resources, len(s.Roles))}
	for _, r := range s.Roles {
		q.usage[r.Name] = r.Usage
		if !r.Quota.IsZero() {
			q.quota[r.Name] = r.Quota
		}
	}
	for _, i := range revs {
		g := s.Allocations[i]
		q.usage[g.Role] = q.usage[g.Role].Sub(g.Resources)
	}
	return q
}

// over returns the dimensions of role's quota that need would take its
// usage past, e.g. ["cpus=2"]; nil when it fits (or the role has no
// quota).
func (q quotas) over(role string, need Resources) []string {
	quota, ok := q.quota[role]
	if !ok {
		return nil
	}
	return overQuota(quota, q.usage[role].Add(need))
}

// take records a placement of need for role (only roles with a quota
// are tracked: nothing else reads their usage).
func (q quotas) take(role string, need Resources) {
	if _, capped := q.quota[role]; capped {
		q.usage[role] = q.usage[role].Add(need)
	}
}

// overQuota lists the capped dimensions of quota that u exceeds,
// formatted as Resources.String formats them.
func overQuota(quota, u Resources) []string {
	var out []string
	if quota.MilliCPU > 0 && u.MilliCPU > quota.MilliCPU {
		out = append(out, "cpus="+strconv.FormatFloat(float64(quota.MilliCPU)/1000, 'g', -1, 64))
	}
	if quota.Mem > 0 && u.Mem > quota.Mem {
		out = append(out, "mem="+strconv.FormatInt(quota.Mem, 10))
	}
	if quota.Disk > 0 && u.Disk > quota.Disk {
		out = append(out, "disk="+strconv.FormatInt(quota.Disk, 10))
	}
	if quota.Ports > 0 && u.Ports > quota.Ports {
		out = append(out, "ports="+strconv.FormatInt(quota.Ports, 10))
	}
	return out
}

// roleName is how messages name a role ("" is the default role).
func roleName(r string) string {
	if r == "" {
		return `"" (the default role)`
	}
	return r
}

// quotaRefusal is Judge's message for a placement past its role's quota.
func quotaRefusal(r Request, agent string, dims []string) string {
	return fmt.Sprintf("request %s placed on %s past the quota of role %s: quota %s reached", r.ID, agent, roleName(r.Role), strings.Join(dims, ","))
}

// quotaReason is the pending reason of a request its role's quota holds,
// e.g. "role capped: quota cpus=2 reached", or "" when the quota does not
// hold it. A request larger than its quota by itself says it can never
// fit until the quota is raised.
func (q quotas) reason(r Request) string {
	dims := q.over(r.Role, r.Resources)
	if dims == nil {
		return ""
	}
	why := fmt.Sprintf("role %s: quota %s reached", roleName(r.Role), strings.Join(dims, ","))
	if overQuota(q.quota[r.Role], r.Resources) != nil {
		why += "; larger than the quota: it can never fit until the quota is raised"
	}
	return why
}
