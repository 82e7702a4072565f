package dinit

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Instance is one instance of a service as the kernel shows it: a live
// allocation labeled with the service, and its latest task (nil before the
// first launch).
type Instance struct {
	Index   int
	Version int64
	Alloc   *pb.Allocation
	Task    *pb.Task
}

// granted reports whether the instance's allocation is granted.
func (i *Instance) granted() bool {
	return i.Alloc.GetState() == pb.AllocationState_ALLOCATION_STATE_GRANTED
}

// Ready reports whether the instance counts as healthy for a deployment:
// its task runs and is ready (the kernel's Task.ready).
func (i *Instance) Ready() bool {
	return i.Task != nil && i.Task.GetState() == pb.TaskState_TASK_STATE_RUNNING && i.Task.GetReady()
}

// unhealthy reports whether its task failed its health check.
func (i *Instance) unhealthy() bool {
	return i.Task != nil && i.Task.GetState() == pb.TaskState_TASK_STATE_RUNNING && i.Task.GetHealth() == pb.HealthState_HEALTH_STATE_UNHEALTHY
}

// ended reports whether its task ended (the allocation is still held).
func (i *Instance) ended() bool { return i.Task != nil && terminal(i.Task.GetState()) }

func terminal(s pb.TaskState) bool {
	switch s {
	case pb.TaskState_TASK_STATE_FINISHED, pb.TaskState_TASK_STATE_FAILED, pb.TaskState_TASK_STATE_KILLED, pb.TaskState_TASK_STATE_LOST:
		return true
	}
	return false
}

// Instances groups the live allocations labeled with service (and their
// latest tasks) into instances, sorted by version then index. Allocations
// that are not live, or lack the labels, are left out.
func Instances(service string, allocs []*pb.Allocation, tasks []*pb.Task) []*Instance {
	latest := map[string]*pb.Task{}
	for _, t := range tasks {
		if cur, ok := latest[t.GetAllocationId()]; !ok || newer(t, cur) {
			latest[t.GetAllocationId()] = t
		}
	}
	var out []*Instance
	for _, a := range allocs {
		l := a.GetLabels()
		if l[LabelService] != service || a.GetState() == pb.AllocationState_ALLOCATION_STATE_REVOKED {
			continue
		}
		v, err1 := strconv.ParseInt(l[LabelVersion], 10, 64)
		n, err2 := strconv.Atoi(l[LabelInstance])
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, &Instance{Index: n, Version: v, Alloc: a, Task: latest[a.GetId()]})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Version != out[j].Version {
			return out[i].Version < out[j].Version
		}
		if out[i].Index != out[j].Index {
			return out[i].Index < out[j].Index
		}
		return out[i].Alloc.GetId() < out[j].Alloc.GetId()
	})
	return out
}

func newer(a, b *pb.Task) bool {
	ta, tb := a.GetCreated().AsTime(), b.GetCreated().AsTime()
	if !ta.Equal(tb) {
		return ta.After(tb)
	}
	return a.GetId() > b.GetId()
}

// ServiceOf returns the service an allocation or task belongs to, from its
// labels ("" for none).
func ServiceOf(labels map[string]string) string { return labels[LabelService] }

// View is everything one decision is made from.
type View struct {
	// Record is the service's spec (nil: the service was removed).
	Record *Record
	// Deployment and Status as stored (nil when none).
	Deployment *Deployment
	Status     *Status
	// Old holds the specs of other template versions still running, by
	// template version (from history), so their instances are kept alive
	// when a deployment failed; may be nil.
	Old map[int64]*Service
	// Instances of the service (Instances()).
	Instances []*Instance
	// Agents' labels by agent id (for constraints).
	Agents map[string]map[string]string
	// Draining are the agents in maintenance, by id: instances there are
	// replaced elsewhere (drain.go).
	Draining map[string]bool
	Now      time.Time
}

// Kill is a revoke of an allocation, or of a task when ID is a task's.
type Kill struct {
	ID     string
	Reason string
}

// Decision is what Decide wants done, in order: kills, then allocations,
// then launches; then Deployment and Status stored (nil: unchanged), and
// the service reconciled again after RequeueAfter (0: on the next event).
type Decision struct {
	Kills        []Kill
	Allocate     []*pb.AllocateRequest
	Launch       []*pb.LaunchRequest
	Deployment   *Deployment
	Status       *Status
	RequeueAfter time.Duration
	// Done: the service was removed and nothing of it is left; its
	// deployment and status can be deleted.
	Done bool
}

// lostWait is how long a LOST task's allocation may stay before the init
// launches in it again (normally the kernel revokes it at once).
const lostWait = time.Second

// neverFit is the kernel's word for a request no agent can ever hold.
const neverFit = "can never fit"

// Decide is one reconcile of a service: a pure function of the view. It
// never kills an instance because the init restarted: everything it knows
// comes from the view, and an instance it did not start is the same as one
// it did.
func Decide(v View) Decision {
	var d Decision
	st := cloneStatus(v.Status)
	if v.Record == nil {
		for _, in := range v.Instances {
			d.Kills = append(d.Kills, Kill{ID: in.Alloc.GetId(), Reason: "dcos init: service removed"})
		}
		d.Done = len(v.Instances) == 0
		return d
	}
	spec := &v.Record.Spec
	target := v.Record.TemplateVersion
	n := spec.Count()

	dep := v.Deployment
	if dep == nil || dep.SpecVersion != v.Record.Version {
		dep = &Deployment{SpecVersion: v.Record.Version, TemplateVersion: target, Status: DeploymentRunning, Started: v.Now.UTC()}
		dep.Steps = Plan(spec, CountsOf(v.Instances, target))
		d.Deployment = dep
	} else {
		c := *dep
		dep = &c
	}

	var olds, news []*Instance
	for _, in := range v.Instances {
		if in.Version == target {
			news = append(news, in)
		} else {
			olds = append(olds, in)
		}
	}
	kill := func(in *Instance, why string) {
		d.Kills = append(d.Kills, Kill{ID: in.Alloc.GetId(), Reason: "dcos init: " + why})
	}
	requeue := func(after time.Duration) {
		if after > 0 && (d.RequeueAfter == 0 || after < d.RequeueAfter) {
			d.RequeueAfter = after
		}
	}

	// Pending reasons, and the "can never fit" that stops the service
	// from looping.
	st.Message = ""
	for _, in := range v.Instances {
		is := st.instance(in.Index)
		is.Pending = ""
		if !in.granted() {
			is.Pending = in.Alloc.GetPendingReason()
			if strings.Contains(is.Pending, neverFit) {
				st.Message = fmt.Sprintf("instance %d: %s", in.Index, is.Pending)
			}
		}
	}

	// A rolling upgrade stops when a new instance fails its health check:
	// the new ones go, the old ones stay.
	if dep.Status == DeploymentRunning && len(olds) > 0 {
		for _, in := range news {
			if in.unhealthy() {
				dep.Status, dep.Reason, dep.Finished = DeploymentFailed,
					fmt.Sprintf("instance %d: health check failed: %s", in.Index, in.Task.GetHealthMessage()), v.Now.UTC()
				dep.Fallback = newest(olds)
				d.Deployment = dep
				break
			}
		}
	}

	// Keep what runs alive: launch into granted allocations without a
	// task, relaunch ended tasks after their backoff, replace unhealthy
	// ones. Old instances are kept alive only while a deployment failed
	// (a rolling upgrade replaces them instead).
	keepAlive := func(in *Instance, s *Service) {
		is := st.instance(in.Index)
		switch {
		case !in.granted():
		case in.Task == nil:
			d.Launch = append(d.Launch, s.launchRequest(in.Alloc.GetId(), in.Version, in.Index))
		case in.ended() && in.Task.GetState() == pb.TaskState_TASK_STATE_LOST:
			// Its agent was lost: not the service's failure, no backoff.
			// The kernel revokes the allocation in the same transaction
			// (the replacement follows its event); should the allocation
			// stay, launch in it again after lostWait.
			if wait := in.Task.GetUpdated().AsTime().Add(lostWait).Sub(v.Now); wait > 0 {
				requeue(wait)
				return
			}
			d.Launch = append(d.Launch, s.launchRequest(in.Alloc.GetId(), in.Version, in.Index))
		case in.ended():
			t := in.Task
			if is.LastFailedTask != t.GetId() {
				ran := t.GetUpdated().AsTime().Sub(t.GetCreated().AsTime())
				if ran >= BackoffReset {
					is.Failures = 0
				}
				is.Failures++
				is.LastFailedTask = t.GetId()
				is.LastFailure = fmt.Sprintf("%s: %s", strings.TrimPrefix(t.GetState().String(), "TASK_STATE_"), t.GetReason())
				is.DelayedUntil = t.GetUpdated().AsTime().Add(s.Backoff.Delay(is.Failures)).UTC()
			}
			if wait := is.DelayedUntil.Sub(v.Now); wait > 0 {
				requeue(wait)
				return
			}
			d.Launch = append(d.Launch, s.launchRequest(in.Alloc.GetId(), in.Version, in.Index))
		case in.unhealthy():
			d.Kills = append(d.Kills, Kill{ID: in.Task.GetId(), Reason: "dcos init: unhealthy: " + in.Task.GetHealthMessage()})
		case in.Task.GetState() == pb.TaskState_TASK_STATE_RUNNING && is.Failures > 0:
			// Reset the backoff once it has run long enough.
			if ran := v.Now.Sub(in.Task.GetCreated().AsTime()); ran >= BackoffReset && !in.unhealthy() {
				is.Failures, is.DelayedUntil = 0, time.Time{}
			} else {
				requeue(BackoffReset - ran)
			}
		}
	}

	switch dep.Status {
	case DeploymentFailed:
		for _, in := range news {
			kill(in, "deployment failed")
		}
		for _, in := range olds {
			if s := v.Old[in.Version]; s != nil {
				keepAlive(in, s)
			}
		}
		var wait time.Duration
		d.Allocate, wait = restoreOlds(v, dep, olds)
		requeue(wait)
	default:
		// Instances leaving a draining agent are replaced like old ones.
		stay, leaving := splitDraining(spec, v, news)
		moving := append(append([]*Instance(nil), olds...), leaving...)
		for _, in := range stay {
			keepAlive(in, spec)
		}
		d.Kills = append(d.Kills, drainReasons(rollKills(spec, moving, stay), leaving)...)
		d.Kills = append(d.Kills, staleKills(spec, v, moving, stay)...)
		var wait time.Duration
		d.Allocate, wait = rollStarts(spec, v, moving, stay, target)
		requeue(wait)
		// Scale down: the extra new instances go, highest numbers first,
		// those not ready before ready ones.
		if len(moving) == 0 && len(stay) > n {
			extra := append([]*Instance(nil), stay...)
			sort.SliceStable(extra, func(i, j int) bool {
				if extra[i].Ready() != extra[j].Ready() {
					return !extra[i].Ready()
				}
				return extra[i].Index > extra[j].Index
			})
			for _, in := range extra[:len(stay)-n] {
				kill(in, "scaled down")
			}
		}
		c := CountsOf(v.Instances, target)
		for dep.Step < len(dep.Steps) && stepDone(dep.Steps[dep.Step], c) {
			dep.Step++
		}
		if dep.Status == DeploymentRunning && c.Old == 0 && c.New == n && c.NewReady == n {
			dep.Status, dep.Finished, dep.Step = DeploymentSucceeded, v.Now.UTC(), len(dep.Steps)
		}
		if v.Deployment == nil || !deploymentEqual(dep, v.Deployment) {
			d.Deployment = dep
		}
	}
	// Forget instances that no longer exist and have no backoff to keep.
	live := map[string]bool{}
	for _, in := range v.Instances {
		live[instanceKey(in.Index)] = true
	}
	for k, is := range st.Instances {
		if !live[k] && is.DelayedUntil.Before(v.Now) && is.Failures == 0 {
			delete(st.Instances, k)
		}
	}
	if !statusEqual(st, v.Status) {
		st.Updated = v.Now.UTC()
		d.Status = st
	}
	if d.Deployment != nil && v.Deployment != nil && deploymentEqual(d.Deployment, v.Deployment) {
		d.Deployment = nil
	}
	return d
}

// newest returns the highest version of ins (0 for none).
func newest(ins []*Instance) int64 {
	var v int64
	for _, in := range ins {
		v = max(v, in.Version)
	}
	return v
}

// restoreOlds is what a failed deployment allocates: every instance
// number below the spec's instances that no old instance holds (its
// allocation was revoked: agent lost, lease, an operator), with the spec
// of the deployment's fallback version from history (the newest old
// version for a deployment that failed before Fallback was kept), except
// numbers waiting for their restart backoff (it returns how long until
// the first may start); for constraints that depend on the others'
// placement, one at a time and none while one is pending. Nothing when
// that spec is no longer in history.
func restoreOlds(v View, dep *Deployment, olds []*Instance) ([]*pb.AllocateRequest, time.Duration) {
	fallback := dep.Fallback
	if fallback == 0 {
		fallback = newest(olds)
	}
	s := v.Old[fallback]
	if s == nil {
		return nil, 0
	}
	used := map[int]bool{}
	var placed []map[string]string
	for _, in := range olds {
		used[in.Index] = true
		if !in.granted() {
			if s.Serial() {
				return nil, 0
			}
			continue
		}
		l := v.Agents[in.Alloc.GetAgentId()]
		if l == nil {
			l = map[string]string{"dcos.agent": in.Alloc.GetAgentId()}
		}
		placed = append(placed, l)
	}
	var agents []map[string]string
	for _, id := range sortedKeys(v.Agents) {
		agents = append(agents, v.Agents[id])
	}
	var out []*pb.AllocateRequest
	var wait time.Duration
	for i := 0; i < v.Record.Spec.Count(); i++ {
		if used[i] {
			continue
		}
		if is := v.Status.get(i); is != nil && is.DelayedUntil.After(v.Now) {
			if w := is.DelayedUntil.Sub(v.Now); wait == 0 || w < wait {
				wait = w
			}
			continue
		}
		out = append(out, s.allocateRequest(fallback, i, s.KernelConstraints(placed, agents)))
		if s.Serial() {
			break
		}
	}
	return out, wait
}

func stepDone(s Step, c Counts) bool {
	return c.Old <= s.OldAfter && c.NewReady >= s.NewAfter && c.New <= max(s.NewAfter, c.NewReady)
}

// rollKills picks the old instances the next step kills: not ready ones
// first, then the highest numbers.
func rollKills(s *Service, olds, news []*Instance) []Kill {
	if len(olds) == 0 {
		return nil
	}
	c := Counts{Old: len(olds), New: len(news)}
	for _, in := range olds {
		if in.Ready() {
			c.OldReady++
		}
	}
	for _, in := range news {
		if in.Ready() {
			c.NewReady++
		}
	}
	st := NextStep(s.Count(), minHealthy(s), maxTotal(s), c)
	order := append([]*Instance(nil), olds...)
	sort.SliceStable(order, func(i, j int) bool {
		if order[i].Ready() != order[j].Ready() {
			return !order[i].Ready()
		}
		return order[i].Index > order[j].Index
	})
	var out []Kill
	for _, in := range order[:st.Kill] {
		out = append(out, Kill{ID: in.Alloc.GetId(), Reason: "dcos init: replaced by version " + strconv.FormatInt(in.Version, 10) + "→new"})
	}
	return out
}

// placement is what the constraints of a new instance are computed from:
// the labels of the agents the granted instances run on (those the next
// step kills left out) and of all agents.
func placement(s *Service, v View, olds, news []*Instance) (placed, agents []map[string]string) {
	killed := map[string]bool{}
	for _, k := range rollKills(s, olds, news) {
		killed[k.ID] = true
	}
	for _, in := range v.Instances {
		if in.granted() && !killed[in.Alloc.GetId()] {
			l := v.Agents[in.Alloc.GetAgentId()]
			if l == nil {
				l = map[string]string{"dcos.agent": in.Alloc.GetAgentId()}
			}
			placed = append(placed, l)
		}
	}
	for _, id := range sortedKeys(v.Agents) {
		agents = append(agents, v.Agents[id])
	}
	return placed, agents
}

// staleKills revokes the pending allocations of a service whose
// constraints depend on the others' placement (UNIQUE, MAX_PER,
// GROUP_BY) when that placement changed since they were asked for: an
// instance killed since frees its agent, and the pending request would
// otherwise keep excluding it for good. The next pass asks again.
func staleKills(s *Service, v View, olds, news []*Instance) []Kill {
	if !s.Serial() {
		return nil
	}
	var out []Kill
	for _, in := range news {
		if in.granted() {
			continue
		}
		placed, agents := placement(s, v, olds, news)
		want := s.KernelConstraints(placed, agents)
		got := in.Alloc.GetConstraints()
		same := len(want) == len(got)
		for i := 0; same && i < len(want); i++ {
			same = proto.Equal(want[i], got[i])
		}
		if !same {
			out = append(out, Kill{ID: in.Alloc.GetId(), Reason: "dcos init: placement changed, asking again"})
		}
	}
	return out
}

// rollStarts is the allocations the next step starts: instance numbers
// (below instances) not used by new instances, lowest first, except those
// waiting for their restart backoff (it returns how long until the first
// such one may start); one at a time (and none while one is pending) for
// constraints that depend on the others' placement; none while an
// instance's request can never fit.
func rollStarts(s *Service, v View, olds, news []*Instance, target int64) ([]*pb.AllocateRequest, time.Duration) {
	c := Counts{Old: len(olds), New: len(news)}
	for _, in := range olds {
		if in.Ready() {
			c.OldReady++
		}
	}
	for _, in := range news {
		if in.Ready() {
			c.NewReady++
		}
		if strings.Contains(in.Alloc.GetPendingReason(), neverFit) && !in.granted() {
			return nil, 0
		}
	}
	st := NextStep(s.Count(), minHealthy(s), maxTotal(s), c)
	if st.Start == 0 {
		return nil, 0
	}
	if s.Serial() {
		for _, in := range v.Instances {
			if !in.granted() {
				return nil, 0
			}
		}
		st.Start = 1
	}
	used := map[int]bool{}
	for _, in := range news {
		used[in.Index] = true
	}
	placed, agents := placement(s, v, olds, news)
	var out []*pb.AllocateRequest
	var wait time.Duration
	for i := 0; len(out) < st.Start && i < s.Count(); i++ {
		if used[i] {
			continue
		}
		if is := v.Status.get(i); is != nil && is.DelayedUntil.After(v.Now) {
			if w := is.DelayedUntil.Sub(v.Now); wait == 0 || w < wait {
				wait = w
			}
			continue
		}
		out = append(out, s.allocateRequest(target, i, s.KernelConstraints(placed, agents)))
	}
	return out, wait
}

// CountsOf counts ins as a deployment to template version target sees
// them: new (of target) and old instances, and the ready ones of each.
func CountsOf(ins []*Instance, target int64) Counts {
	var c Counts
	for _, in := range ins {
		if in.Version == target {
			c.New++
			if in.Ready() {
				c.NewReady++
			}
		} else {
			c.Old++
			if in.Ready() {
				c.OldReady++
			}
		}
	}
	return c
}

func (s *Status) get(n int) *InstanceStatus {
	if s == nil {
		return nil
	}
	return s.Instances[instanceKey(n)]
}

func (s *Status) instance(n int) *InstanceStatus {
	if s.Instances == nil {
		s.Instances = map[string]*InstanceStatus{}
	}
	k := instanceKey(n)
	if s.Instances[k] == nil {
		s.Instances[k] = &InstanceStatus{}
	}
	return s.Instances[k]
}

func cloneStatus(s *Status) *Status {
	out := &Status{}
	if s == nil {
		return out
	}
	out.Message, out.Updated = s.Message, s.Updated
	for k, is := range s.Instances {
		c := *is
		if out.Instances == nil {
			out.Instances = map[string]*InstanceStatus{}
		}
		out.Instances[k] = &c
	}
	return out
}

func statusEqual(a, b *Status) bool {
	if b == nil {
		return a.Message == "" && len(nonEmpty(a.Instances)) == 0
	}
	if a.Message != b.Message {
		return false
	}
	x, y := nonEmpty(a.Instances), nonEmpty(b.Instances)
	if len(x) != len(y) {
		return false
	}
	for k, is := range x {
		o, ok := y[k]
		if !ok || is.Failures != o.Failures || is.LastFailedTask != o.LastFailedTask || is.LastFailure != o.LastFailure ||
			!is.DelayedUntil.Equal(o.DelayedUntil) || is.Pending != o.Pending {
			return false
		}
	}
	return true
}

func nonEmpty(m map[string]*InstanceStatus) map[string]*InstanceStatus {
	out := map[string]*InstanceStatus{}
	for k, is := range m {
		if *is != (InstanceStatus{}) {
			out[k] = is
		}
	}
	return out
}

func deploymentEqual(a, b *Deployment) bool {
	return a.SpecVersion == b.SpecVersion && a.TemplateVersion == b.TemplateVersion && a.Status == b.Status &&
		a.Reason == b.Reason && a.Fallback == b.Fallback && a.Step == b.Step && len(a.Steps) == len(b.Steps) && a.Started.Equal(b.Started) && a.Finished.Equal(b.Finished)
}
