package kernel

import (
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Table is the kernel's in-memory state: agents, allocations, tasks and
// leases. Its methods are the syscalls' semantics; they take the time as a
// parameter, record what they change in a Changes, and do no I/O.
//
// A Table is not safe for concurrent use; the Kernel serialises access
// (its read view, view.go, is a Table its readers share read-only, with
// the memory-only maps under memMu). Objects in the table are owned by
// it: methods return clones.
type Table struct {
	agents     map[string]*pb.Agent
	allocs     map[string]*pb.Allocation
	tasks      map[string]*pb.Task
	allocTasks map[string]map[string]struct{} // allocation id → its task ids
	used       map[string]Resources           // agent id → resources held by granted allocations
	ports      map[string]map[uint32]string   // agent id → host port → the allocation or task holding it
	portCursor map[string]uint32              // agent id → where the next pick of its range starts
	heartbeat  map[string]time.Time           // agent id → last heartbeat (memory only)
	plugins    map[string][]*pb.PluginInfo    // agent id → its plugins (memory only)
	images     map[string][]*pb.ImageInfo     // agent id → its images, as last reported (memory only; images.go)
	removals   map[string][]string            // agent id → image removals for its next heartbeat (memory only)
	usage      map[string]*pb.TaskUsage       // task id → latest usage (memory only)
	usageNew   map[string]bool                // task ids with a sample not yet in a TASK_USAGE event
	volumes    map[string]*pb.Volume          // by name (volumes.go)
	claims     map[string][]string            // allocation id → names of the volumes it claims
	destroyed  map[string]*pb.Volume          // volumes destroyed, by name, until their agent no longer reports them
	seq        uint64
	rev        int64
	order      []orderedAgent // cache for snapshots; nil when stale
	// completed keeps the last MaxCompleted tasks that ended with their
	// allocation, for ListTasks (memory only, like Mesos's completed tasks).
	completed []*pb.Task
	nextDone  int
	roles     map[string]RoleConfig
	roleSets  map[string]*pb.Role // RoleSet's durable settings (roles.go)
	policies  PolicyState
	// cidr is the range agents' subnets come from; missingSubnets is set
	// when Restore found agents without one (see AssignSubnets).
	cidr           netip.Prefix
	missingSubnets bool
	subnets        map[netip.Prefix]bool // subnets agents hold
	nextFree       uint32                // index of the first /24 of cidr that may be free
	// pending counts pending allocations by owner and role, for the caps
	// of limits.go (memory only: Restore recounts).
	pending        map[pendingKey]int
	maxPending     int
	roleMaxPending map[string]int
	// bound maps an agent token's name to the agent it is bound to
	// (identity.go); roleUsers are the users tasks of a role may run as.
	bound     map[string]string
	roleUsers map[string][]string
	// Coordination (coord.go): elections and framework state by owner.
	elections map[ElectionKey]*pb.Leadership
	state     map[string]*ownerState
	// memMu guards the memory-only maps (heartbeat, plugins, images,
	// removals, usage, usageNew): a Kernel shares them, and memMu, between
	// its loop's table and its read view (view.go), so that a heartbeat
	// takes only memMu. It is the innermost lock: nothing else is taken
	// while it is held.
	memMu *sync.RWMutex
	// shown is, in a Kernel's read view only (view.go), every agent as
	// ListAgents shows it, guarded by memMu; nil elsewhere.
	shown map[string]*pb.Agent
	// sealer seals tasks' secret_env at Launch (secrets.go); nil: none.
	sealer Sealer
}

// RoleConfig is an operator's setting for a role: its DRF weight (0 means
// 1) and quota (a zero dimension means no cap).
type RoleConfig struct {
	Weight float64
	Quota  Resources
	// CPUClass is the CPU class its tasks launch with (Task.cpu_class).
	CPUClass pb.CpuClass
	// CPUSet is the canonical CPU list its tasks launch with (Task.cpuset;
	// "" for every CPU).
	CPUSet string
}

// SetRoles replaces the role settings policies see.
func (t *Table) SetRoles(roles map[string]RoleConfig) { t.roles = roles }

// SetRoleUsers replaces the users tasks of each role may run as (see
// Config.RoleUsers).
func (t *Table) SetRoleUsers(m map[string][]string) { t.roleUsers = m }

// checkUser checks that a task of role may run as user: the default ("")
// always, another only if the operator allowed it for the role.
func (t *Table) checkUser(role, user string) error {
	if user == "" {
		return nil
	}
	if allowed := t.roleUsers[role]; slices.Contains(allowed, user) || slices.Contains(allowed, AnyUser) {
		return nil
	}
	return errorf(PermissionDenied, "user: role %q may not run tasks as %q (dcosd --role-users)", role, user)
}

// MaxCompleted bounds the ended tasks a kernel remembers after their
// allocation is gone.
const MaxCompleted = 1000

// NewTable returns an empty table.
func NewTable() *Table {
	return &Table{
		agents:     map[string]*pb.Agent{},
		allocs:     map[string]*pb.Allocation{},
		tasks:      map[string]*pb.Task{},
		allocTasks: map[string]map[string]struct{}{},
		used:       map[string]Resources{},
		ports:      map[string]map[uint32]string{},
		portCursor: map[string]uint32{},
		memMu:      &sync.RWMutex{},
		heartbeat:  map[string]time.Time{},
		plugins:    map[string][]*pb.PluginInfo{},
		images:     map[string][]*pb.ImageInfo{},
		removals:   map[string][]string{},
		usage:      map[string]*pb.TaskUsage{},
		usageNew:   map[string]bool{},
		volumes:    map[string]*pb.Volume{},
		claims:     map[string][]string{},
		destroyed:  map[string]*pb.Volume{},
		cidr:       DefaultClusterCIDR,
		subnets:    map[netip.Prefix]bool{},
		pending:    map[pendingKey]int{},
		bound:      map[string]string{},
		elections:  map[ElectionKey]*pb.Leadership{},
		state:      map[string]*ownerState{},
		roleSets:   map[string]*pb.Role{},
	}
}

// State is a table's durable content, as a Store loads it.
type State struct {
	Agents      []*pb.Agent
	Allocations []*pb.Allocation
	Tasks       []*pb.Task
	Volumes     []*pb.Volume
	// DestroyedVolumes are the tombstones of destroyed volumes.
	DestroyedVolumes []*pb.Volume
	Seq              uint64
	Revision         int64
	Policies         PolicyState
	// Elections and StateEntries are the coordination records; a state
	// entry's Revision is the store revision that last wrote it.
	Elections    []*pb.Leadership
	StateEntries []*pb.StateEntry
	// Roles are the role settings RoleSet made (roles.go).
	Roles []*pb.Role
}

// Restore builds a table from durable state. Agents get a fresh heartbeat
// grace period starting at now (heartbeats are not persisted).
func Restore(s *State, now time.Time) *Table {
	t := NewTable()
	t.seq, t.rev, t.policies = s.Seq, s.Revision, s.Policies.clone()
	for _, a := range s.Agents {
		t.agents[a.GetId()] = a
		t.heartbeat[a.GetId()] = now
		t.missingSubnets = t.missingSubnets || a.GetSubnet() == ""
		t.holdSubnet(a.GetSubnet())
		if a.GetPrincipal() != "" {
			t.bound[a.GetPrincipal()] = a.GetId()
		}
	}
	for _, a := range s.Allocations {
		t.allocs[a.GetId()] = a
		if a.GetState() == pb.AllocationState_ALLOCATION_STATE_GRANTED {
			t.used[a.GetAgentId()] = t.used[a.GetAgentId()].Add(FromProto(a.GetResources()))
		} else {
			t.countPending(a, 1)
		}
	}
	for _, k := range s.Tasks {
		t.tasks[k.GetId()] = k
		t.linkTask(k)
	}
	for _, v := range s.Volumes {
		t.volumes[v.GetName()] = v
		if id := v.GetAllocationId(); id != "" {
			t.claims[id] = append(t.claims[id], v.GetName())
		}
		if v.GetAgentId() != "" { // placed: it holds its disk
			t.used[v.GetAgentId()] = t.used[v.GetAgentId()].Add(Resources{Disk: v.GetSizeBytes()})
		}
	}
	for _, v := range s.DestroyedVolumes {
		t.destroyed[v.GetName()] = v
	}
	for id, a := range t.agents {
		a.Allocated = t.used[id].Proto()
	}
	t.restorePorts()
	t.restoreCoord(s, now)
	t.restoreRoles(s)
	return t
}

// Revision is the store revision the table reflects.
func (t *Table) Revision() int64 { return t.rev }

// SetRevision records the revision of the last commit.
func (t *Table) SetRevision(rev int64) { t.rev = rev }

// Committed records that c was committed at rev: the state keys it wrote
// take rev as their revision.
func (t *Table) Committed(c *Changes, rev int64) {
	t.rev = rev
	for _, e := range c.State {
		if e != nil {
			e.Revision = rev
		}
	}
}

func (t *Table) linkTask(k *pb.Task) {
	m := t.allocTasks[k.GetAllocationId()]
	if m == nil {
		m = map[string]struct{}{}
		t.allocTasks[k.GetAllocationId()] = m
	}
	m[k.GetId()] = struct{}{}
}

func (t *Table) nextID(prefix string, c *Changes) string {
	t.seq++
	c.Seq = t.seq
	return prefix + strconv.FormatUint(t.seq, 10)
}

// idSeq returns the sequence number in an id made by nextID, or 0.
func idSeq(id, prefix string) uint64 {
	n, err := strconv.ParseUint(strings.TrimPrefix(id, prefix), 10, 64)
	if err != nil || !strings.HasPrefix(id, prefix) {
		return 0
	}
	return n
}

func event(kind pb.EventKind, now time.Time, reason string) *pb.Event {
	return &pb.Event{Kind: kind, Time: timestamppb.New(now), Reason: reason}
}

func terminal(s pb.TaskState) bool {
	return s >= pb.TaskState_TASK_STATE_FINISHED
}

// Allocate records count pending allocations for p; the next Cycle places
// them. It returns the live objects (the caller clones after the cycle).
func (t *Table) Allocate(p Principal, r *pb.AllocateRequest, now time.Time, c *Changes) []*pb.Allocation {
	n := int(r.GetCount())
	if n == 0 {
		n = 1
	}
	reqID := t.nextID("r-", c)
	res := FromProto(r.GetResources()).Proto() // normalised to millicores
	out := make([]*pb.Allocation, n)
	for i := range out {
		a := &pb.Allocation{
			Id:          t.nextID("a-", c),
			RequestId:   reqID,
			Owner:       p.Name,
			Role:        r.GetRole(),
			State:       pb.AllocationState_ALLOCATION_STATE_PENDING,
			Resources:   res,
			Priority:    r.GetPriority(),
			Constraints: r.GetConstraints(),
			LeaseTtl:    r.GetLeaseTtl(),
			Created:     timestamppb.New(now),
			Labels:      maps.Clone(r.GetLabels()),
			GangMin:     gangMin(r),
		}
		t.allocs[a.Id] = a
		t.countPending(a, 1)
		c.Allocations[a.Id] = a
		out[i] = a
	}
	if len(r.GetVolumes()) > 0 { // checked: one instance
		t.claimVolumes(p, r, out[0], now, c)
	}
	c.cycle = true
	return out
}

// Launch records a PENDING task in a granted allocation of p's; the agent
// learns of it from the event.
func (t *Table) Launch(p Principal, r *pb.LaunchRequest, now time.Time, c *Changes) (*pb.Task, error) {
	a, err := t.ownedAllocation(p, r.GetAllocationId())
	if err != nil {
		return nil, err
	}
	if a.GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
		return nil, errorf(FailedPrecondition, "allocation_id: allocation %s is %v, not granted yet", a.GetId(), a.GetState())
	}
	if err := t.checkUser(a.GetRole(), r.GetUser()); err != nil {
		return nil, err
	}
	// A task's share of host ports is the allocation's ports it publishes:
	// the ports themselves are checked below, not a count.
	share := FromProto(a.GetResources())
	if r.GetResources() != nil {
		share = FromProto(r.GetResources())
	}
	share.Ports = 0
	held := Resources{}
	for id := range t.allocTasks[a.GetId()] {
		if k := t.tasks[id]; !terminal(k.GetState()) {
			held = held.Add(FromProto(k.GetResources()))
		}
	}
	free := FromProto(a.GetResources()).Sub(held)
	free.Ports = 0
	if !free.Fits(share) {
		return nil, errorf(FailedPrecondition, "resources: task needs %v but allocation %s has %v left", share, a.GetId(), free)
	}
	network := r.GetNetwork()
	if network == "" {
		network = NetworkHost
	}
	if network == NetworkBridge && t.agents[a.GetAgentId()].GetSubnet() == "" {
		return nil, errorf(FailedPrecondition, "network: agent %s has no subnet for bridge tasks (the cluster CIDR %s was full when it registered); it gets one when it registers again after the kernel restarts with a larger --cluster-cidr", a.GetAgentId(), t.cidr)
	}
	ports, static, err := t.assignPorts(a, network, r.GetPorts())
	if err != nil {
		return nil, err
	}
	mine := map[uint32]bool{}
	for _, m := range ports {
		if slices.Contains(a.GetHostPorts(), m.GetHostPort()) {
			mine[m.GetHostPort()] = true
		}
	}
	share.Ports = int64(len(mine))
	vols, err := t.launchVolumes(a, r.GetVolumes())
	if err != nil {
		return nil, err
	}
	id := t.nextID("t-", c)
	secretEnv, err := t.sealSecrets(id, r.GetSecretEnv())
	if err != nil {
		return nil, err
	}
	k := &pb.Task{
		Id:           id,
		AllocationId: a.GetId(),
		AgentId:      a.GetAgentId(),
		Owner:        a.GetOwner(),
		State:        pb.TaskState_TASK_STATE_PENDING,
		Command:      r.GetCommand(),
		Args:         r.GetArgs(),
		Env:          r.GetEnv(),
		WorkingDir:   r.GetWorkingDir(),
		Driver:       r.GetDriver(),
		DriverConfig: r.GetDriverConfig(),
		Network:      network,
		Ports:        ports,
		Volumes:      vols,
		User:         r.GetUser(),
		Labels:       maps.Clone(r.GetLabels()),
		Resources:    share.Proto(),
		// The effective checks, defaults filled in, are what agents run.
		HealthCheck:     WithHealthDefaults(r.GetHealthCheck()),
		ReadinessCheck:  WithHealthDefaults(r.GetReadinessCheck()),
		KillGracePeriod: r.GetKillGracePeriod(),
		Logs:            r.GetLogs(),
		CpuClass:        t.roleConfig(a.GetRole()).CPUClass,
		Cpuset:          t.roleConfig(a.GetRole()).CPUSet,
		SecretEnv:       secretEnv,
		Created:         timestamppb.New(now),
		Updated:         timestamppb.New(now),
	}
	t.tasks[k.Id] = k
	t.linkTask(k)
	for _, h := range static {
		t.holdPort(k.AgentId, h, k.Id)
	}
	t.taskEvent(k, now, "launched", c)
	return k, nil
}

func (t *Table) taskEvent(k *pb.Task, now time.Time, reason string, c *Changes) {
	c.Tasks[k.GetId()] = k
	e := event(pb.EventKind_EVENT_KIND_TASK_STATE, now, reason)
	e.Task = proto.Clone(k).(*pb.Task)
	c.Events = append(c.Events, e)
}

// ownedAllocation finds a live allocation p may act on. Another
// framework's allocation is NotFound, as an unknown one is, so that ids
// cannot be probed; other principals (operators own everything) get
// PermissionDenied.
func (t *Table) ownedAllocation(p Principal, id string) (*pb.Allocation, error) {
	a := t.allocs[id]
	if a == nil || (!p.owns(a.GetOwner()) && p.Role == RoleFramework) {
		return nil, errorf(NotFound, "allocation_id: no allocation %q", clip(id))
	}
	if !p.owns(a.GetOwner()) {
		return nil, errorf(PermissionDenied, "allocation_id: allocation %q belongs to another principal", id)
	}
	return a, nil
}

// Revoke takes back an allocation (killing its tasks, freeing its
// resources) or a task. Revoking something already gone succeeds if the id
// was ever issued; an id never issued is NotFound, and so is, for a
// framework, another framework's live allocation or task (the same answer,
// so that ids cannot be probed).
func (t *Table) Revoke(p Principal, id, reason string, now time.Time, c *Changes) error {
	if reason == "" {
		reason = "revoked by " + p.Name
	}
	switch {
	case strings.HasPrefix(id, "a-"):
		a := t.allocs[id]
		if a == nil {
			return t.gone(id, "a-")
		}
		if !p.owns(a.GetOwner()) && p.Role == RoleFramework {
			return notIssued(id)
		}
		if !p.owns(a.GetOwner()) {
			return errorf(PermissionDenied, "id: allocation %q belongs to another principal", id)
		}
		t.revokeAllocation(a, reason, now, c)
		return nil
	case strings.HasPrefix(id, "t-"):
		k := t.tasks[id]
		if k == nil {
			return t.gone(id, "t-")
		}
		if !p.owns(k.GetOwner()) && p.Role == RoleFramework {
			return notIssued(id)
		}
		if !p.owns(k.GetOwner()) {
			return errorf(PermissionDenied, "id: task %q belongs to another principal", id)
		}
		if !terminal(k.GetState()) {
			t.endTask(k, pb.TaskState_TASK_STATE_KILLED, reason, now, c)
		}
		return nil
	}
	return errorf(InvalidArgument, "id: %q is neither an allocation (a-N) nor a task (t-N)", clip(id))
}

func (t *Table) gone(id, prefix string) error {
	if n := idSeq(id, prefix); n > 0 && n <= t.seq {
		return nil // issued once, already gone: idempotent
	}
	return notIssued(id)
}

func notIssued(id string) error {
	return errorf(NotFound, "id: no allocation or task %q", clip(id))
}

// endTask ends k in state s, whoever decided it (its agent's report, a
// revoke): its ports are freed and the TASK_STATE event carries the end.
// An ended task is never ready; its health stays as last seen.
func (t *Table) endTask(k *pb.Task, s pb.TaskState, reason string, now time.Time, c *Changes) {
	t.finishTask(k, s, reason, now, c)
	if _, live := t.allocs[k.GetAllocationId()]; !live {
		t.forgetTask(k, c)
	}
}

// finishTask sets k's terminal state, clears ready, frees its ports and
// emits its TASK_STATE event; the caller decides whether to forget it.
func (t *Table) finishTask(k *pb.Task, s pb.TaskState, reason string, now time.Time, c *Changes) {
	k.State, k.Reason, k.Updated, k.Ready = s, reason, timestamppb.New(now), false
	t.releaseTaskPorts(k)
	t.taskEvent(k, now, reason, c)
}

func (t *Table) forgetTask(k *pb.Task, c *Changes) {
	delete(t.tasks, k.GetId())
	t.memMu.Lock()
	delete(t.usage, k.GetId())
	delete(t.usageNew, k.GetId())
	t.memMu.Unlock()
	if m := t.allocTasks[k.GetAllocationId()]; m != nil {
		delete(m, k.GetId())
		if len(m) == 0 {
			delete(t.allocTasks, k.GetAllocationId())
		}
	}
	c.Tasks[k.GetId()] = nil
	c.ended = append(c.ended, k)
	t.remember(k)
}

// remember keeps k, ended and forgotten, among the last MaxCompleted.
func (t *Table) remember(k *pb.Task) {
	if len(t.completed) < MaxCompleted {
		t.completed = append(t.completed, k)
	} else {
		t.completed[t.nextDone] = k
		t.nextDone = (t.nextDone + 1) % MaxCompleted
	}
}

// revokeAllocation kills the allocation's live tasks, frees its resources
// and forgets it and its tasks; the events carry the final states.
func (t *Table) revokeAllocation(a *pb.Allocation, reason string, now time.Time, c *Changes) {
	state := pb.TaskState_TASK_STATE_KILLED
	if strings.HasPrefix(reason, "agent lost") {
		state = pb.TaskState_TASK_STATE_LOST
	}
	delete(t.allocs, a.GetId())
	for id := range t.allocTasks[a.GetId()] {
		k := t.tasks[id]
		if !terminal(k.GetState()) {
			t.finishTask(k, state, reason, now, c)
		}
		t.forgetTask(k, c)
	}
	if a.GetState() == pb.AllocationState_ALLOCATION_STATE_GRANTED {
		t.release(a.GetAgentId(), FromProto(a.GetResources()), c)
		t.releasePorts(a.GetAgentId(), a.GetId())
	} else {
		t.countPending(a, -1)
	}
	t.unclaimVolumes(a, c)
	a.State, a.RevokeReason = pb.AllocationState_ALLOCATION_STATE_REVOKED, reason
	c.Allocations[a.GetId()] = nil
	e := event(pb.EventKind_EVENT_KIND_ALLOCATION_REVOKED, now, reason)
	e.Allocation = proto.Clone(a).(*pb.Allocation)
	c.Events = append(c.Events, e)
	c.cycle = true
}

func (t *Table) release(agentID string, r Resources, c *Changes) {
	t.used[agentID] = t.used[agentID].Sub(r)
	if g := t.agents[agentID]; g != nil {
		g.Allocated = t.used[agentID].Proto()
		c.Agents[agentID] = g
	}
}

// KeepAlive renews the leases of p's allocations. Unknown ids are NotFound;
// allocations without a lease are returned unchanged.
func (t *Table) KeepAlive(p Principal, ids []string, now time.Time, c *Changes) ([]*pb.Allocation, error) {
	out := make([]*pb.Allocation, 0, len(ids))
	for _, id := range ids { // check all before changing any
		a, err := t.ownedAllocation(p, id)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	for _, a := range out {
		if a.GetLeaseTtl() != nil && a.GetState() == pb.AllocationState_ALLOCATION_STATE_GRANTED {
			a.LeaseExpires = timestamppb.New(now.Add(a.GetLeaseTtl().AsDuration()))
			c.Allocations[a.GetId()] = a
		}
	}
	return out, nil
}

// Register adds or re-admits an agent and answers which tasks it should
// run and its subnet. An agent that comes back keeps its id and subnet;
// its total is updated. If the new total no longer covers what is granted
// there, nothing is revoked: the agent is simply full until allocations
// end. A new agent gets the lowest free /24 of the cluster CIDR; when
// there is none, Register changes nothing and returns ResourceExhausted
// (a known agent saved before subnets existed stays without one).
//
// p must be allowed to register as r.agent_id (checkRegister: an agent
// token only as the agent it is bound to, or as a new agent while bound
// to none; ids never issued are NotFound); an agent token that registers
// an agent bound to none is bound to it. A bound token that registers
// with an empty id registers as its agent (it can be no other). Refusals
// change nothing.
func (t *Table) Register(p Principal, r *pb.RegisterAgentRequest, now time.Time, c *Changes) (*pb.RegisterAgentResponse, error) {
	id := r.GetAgentId()
	if mine := t.boundAgent(p); id == "" && mine != "" {
		// A token bound to an agent can only ever be that agent: an empty
		// id (a node that lost its data dir, or its first answer) is it.
		id = mine
	}
	if err := t.checkRegister(p, id); err != nil {
		return nil, err
	}
	g := t.agents[id]
	subnet := g.GetSubnet()
	if subnet == "" { // new, forgotten, or registered before subnets
		s, ok := t.freeSubnet()
		switch {
		case ok:
			subnet = s.String()
		case g == nil:
			return nil, t.exhausted(r)
		} // a known agent registers without one: bridge launches there fail
	}
	if id == "" {
		id = t.nextID("agent-", c)
	}
	if g == nil {
		g = &pb.Agent{Id: id, Registered: timestamppb.New(now)}
		t.agents[id] = g
	}
	if p.Role == RoleAgent && g.GetPrincipal() == "" {
		t.bind(g, p.Name)
	}
	g.Subnet = subnet
	t.holdSubnet(subnet)
	g.UnderlayIp = ""
	if ip, err := netip.ParseAddr(r.GetUnderlayIp()); err == nil {
		g.UnderlayIp = ip.String()
	}
	rng, _ := ParsePortRange(r.GetHostPorts()) // validated
	total := FromProto(r.GetResources())
	total.Ports = rng.Size()
	labels := maps.Clone(r.GetLabels())
	if labels == nil {
		labels = map[string]string{}
	}
	labels[AgentLabel] = id // what pins a volume's claims to its agent
	g.Hostname, g.Labels, g.Total, g.HostPorts = r.GetHostname(), labels, total.Proto(), rng.String()
	destroy := t.adoptVolumes(id, r.GetVolumes(), c)
	t.order = nil
	g.State = pb.AgentState_AGENT_STATE_UP
	g.Allocated = t.used[id].Proto()
	t.memMu.Lock()
	t.heartbeat[id] = now
	t.plugins[id] = r.GetPlugins()
	t.memMu.Unlock()
	c.Agents[id] = g
	e := event(pb.EventKind_EVENT_KIND_AGENT_REGISTERED, now, "")
	e.Agent = proto.Clone(g).(*pb.Agent)
	c.Events = append(c.Events, e)
	c.cycle = true

	resp := &pb.RegisterAgentResponse{AgentId: id, Subnet: subnet, ClusterCidr: t.cidr.String(), DestroyVolumes: destroy}
	for _, k := range t.tasks {
		if k.GetAgentId() == id && !terminal(k.GetState()) {
			resp.Tasks = append(resp.Tasks, proto.Clone(k).(*pb.Task))
		}
	}
	return resp, nil
}

// Heartbeat records that an agent is alive, its plugins (when hb names
// any), its images (when hb.images is set, even to an empty list) and the
// usage of its live tasks (samples of other tasks are dropped). A lost or unknown agent gets FailedPrecondition / NotFound: it
// must register again. An agent token may heartbeat only for the agent it
// is bound to (checkAgentCall).
func (t *Table) Heartbeat(p Principal, hb *pb.HeartbeatRequest, now time.Time) error {
	g, err := t.checkHeartbeat(p, hb)
	if err != nil {
		return err
	}
	g.LastHeartbeat = timestamppb.New(now)
	t.recordHeartbeat(hb, now)
	return nil
}

// checkHeartbeat checks that p may heartbeat for hb's agent, which must
// be up, and returns the agent. It changes nothing.
func (t *Table) checkHeartbeat(p Principal, hb *pb.HeartbeatRequest) (*pb.Agent, error) {
	id := hb.GetAgentId()
	g, err := t.checkAgentCall(p, id)
	if err != nil {
		return nil, err
	}
	if g.GetState() != pb.AgentState_AGENT_STATE_UP {
		return nil, errorf(FailedPrecondition, "agent_id: agent %q was marked lost; register again", id)
	}
	return g, nil
}

// recordHeartbeat records a checked heartbeat in the memory-only maps,
// under memMu: it only reads the rest of the table (which tasks are the
// agent's live ones).
func (t *Table) recordHeartbeat(hb *pb.HeartbeatRequest, now time.Time) {
	t.memMu.Lock()
	defer t.memMu.Unlock()
	t.recordHeartbeatLocked(hb, now)
}

// recordHeartbeatLocked is recordHeartbeat; the caller holds memMu.
func (t *Table) recordHeartbeatLocked(hb *pb.HeartbeatRequest, now time.Time) {
	id := hb.GetAgentId()
	t.heartbeat[id] = now
	if len(hb.GetPlugins()) > 0 {
		t.plugins[id] = hb.GetPlugins()
	}
	if hb.GetImages() != nil {
		t.setImages(id, hb.GetImages())
	}
	for _, u := range hb.GetUsage() {
		if k := t.tasks[u.GetTaskId()]; k != nil && k.GetAgentId() == id && !terminal(k.GetState()) {
			withRates(u, t.usage[u.GetTaskId()], now)
			t.usage[u.GetTaskId()] = u
			t.usageNew[u.GetTaskId()] = true
		}
	}
}

// UsageEvents adds a TASK_USAGE event to c for every live task with a
// sample not yet sent in one.
func (t *Table) UsageEvents(now time.Time, c *Changes) {
	t.memMu.Lock()
	defer t.memMu.Unlock()
	for id := range t.usageNew {
		k := t.tasks[id]
		delete(t.usageNew, id)
		if k == nil || terminal(k.GetState()) {
			continue
		}
		e := event(pb.EventKind_EVENT_KIND_TASK_USAGE, now, "")
		e.Task = &pb.Task{Id: k.GetId(), AllocationId: k.GetAllocationId(), AgentId: k.GetAgentId(), Owner: k.GetOwner(),
			State: k.GetState(), Usage: proto.Clone(t.usage[id]).(*pb.TaskUsage)}
		c.Events = append(c.Events, e)
	}
}

// withRates sets u's rates from the previous sample prev of the same task
// (none: zero rates). Samples without a time are taken as sampled at now.
// Counters that went backwards (the task's cgroup was recreated) give no
// rate.
func withRates(u, prev *pb.TaskUsage, now time.Time) {
	if u.Sampled == nil {
		u.Sampled = timestamppb.New(now)
	}
	u.CpuCores, u.RxBytesPerSec, u.TxBytesPerSec = 0, 0, 0
	if prev == nil {
		return
	}
	dt := u.GetSampled().AsTime().Sub(prev.GetSampled().AsTime()).Seconds()
	if dt <= 0 {
		return
	}
	rate := func(cur, old uint64) float64 {
		if cur < old {
			return 0
		}
		return float64(cur-old) / dt
	}
	u.CpuCores = rate(u.GetCpuNs(), prev.GetCpuNs()) / 1e9
	u.RxBytesPerSec = rate(u.GetRxBytes(), prev.GetRxBytes())
	u.TxBytesPerSec = rate(u.GetTxBytes(), prev.GetTxBytes())
}

// allocationUsage sums the latest usage of allocation id's live tasks; nil
// when none has reported any. The caller holds memMu.
func (t *Table) allocationUsage(id string) *pb.TaskUsage {
	var sum *pb.TaskUsage
	for tid := range t.allocTasks[id] {
		u := t.usage[tid]
		if u == nil {
			continue
		}
		if sum == nil {
			sum = &pb.TaskUsage{Sampled: u.GetSampled()}
		}
		sum.CpuNs += u.GetCpuNs()
		sum.MemBytes += u.GetMemBytes()
		sum.MemPeakBytes += u.GetMemPeakBytes()
		sum.Pids += u.GetPids()
		sum.OomKills += u.GetOomKills()
		sum.RxBytes += u.GetRxBytes()
		sum.TxBytes += u.GetTxBytes()
		sum.RxPackets += u.GetRxPackets()
		sum.TxPackets += u.GetTxPackets()
		sum.CpuCores += u.GetCpuCores()
		sum.RxBytesPerSec += u.GetRxBytesPerSec()
		sum.TxBytesPerSec += u.GetTxBytesPerSec()
		if u.GetSampled().AsTime().After(sum.GetSampled().AsTime()) {
			sum.Sampled = u.GetSampled()
		}
	}
	return sum
}

// Report applies an agent's task status report. Reports for terminal tasks
// are ignored (the kernel's verdict stands, e.g. KILLED by revoke); reports
// from another agent than the task's are PermissionDenied. The address and
// port mappings a STARTING or RUNNING report carries are stored on the
// task (ports replace the requested ones). A report with health set
// updates the task's health, health_message and ready and emits one
// TASK_HEALTH event (reason: the message), only when one of them changed.
// A task without any check is ready while it is RUNNING (its agent sends
// no health reports).
//
// An agent token may report only for the agent it is bound to
// (checkAgentCall), and the values it reports must agree with what the
// kernel assigned the task (checkReport). Refusals change nothing.
func (t *Table) Report(p Principal, r *pb.ReportTaskStatusRequest, now time.Time, c *Changes) error {
	if _, err := t.checkAgentCall(p, r.GetAgentId()); err != nil {
		return err
	}
	k := t.tasks[r.GetTaskId()]
	if k == nil {
		return errorf(NotFound, "task_id: no live task %q", clip(r.GetTaskId()))
	}
	if k.GetAgentId() != r.GetAgentId() {
		return errorf(PermissionDenied, "agent_id: task %q runs on %s, not %s", k.GetId(), k.GetAgentId(), clip(r.GetAgentId()))
	}
	if terminal(k.GetState()) || r.GetState() < k.GetState() {
		return nil // stale or after the verdict
	}
	if err := t.checkReport(k, r); err != nil {
		return err
	}
	var ip string
	if a, err := netip.ParseAddr(r.GetIp()); err == nil {
		ip = a.String()
	}
	var ports []*pb.PortMapping
	for _, p := range r.GetPorts() {
		ports = append(ports, portMapping(p))
	}
	netChanged := !terminal(r.GetState()) && ((ip != "" && ip != k.GetIp()) ||
		(len(ports) > 0 && !samePorts(ports, k.GetPorts())))
	pid := r.GetPid()
	h := r.GetHealth()
	if h != nil && pid == 0 {
		pid = k.GetPid() // a health report need not repeat the pid
	}
	healthChanged := h != nil && !terminal(r.GetState()) &&
		(h.GetHealth() != k.GetHealth() || h.GetMessage() != k.GetHealthMessage() || h.GetReady() != k.GetReady())
	stateChanged := r.GetState() != k.GetState() || pid != k.GetPid() || netChanged
	if !stateChanged && !healthChanged {
		return nil
	}
	k.Pid, k.ExitCode = pid, r.GetExitCode()
	if r.GetSandbox() != "" {
		k.Sandbox = r.GetSandbox()
	}
	if netChanged {
		if ip != "" {
			k.Ip = ip
		}
		if len(ports) > 0 {
			k.Ports = ports
		}
	}
	if terminal(r.GetState()) {
		t.endTask(k, r.GetState(), r.GetReason(), now, c)
		return nil
	}
	k.Updated = timestamppb.New(now)
	if stateChanged {
		k.State, k.Reason = r.GetState(), r.GetReason()
		if k.GetHealthCheck() == nil && k.GetReadinessCheck() == nil {
			k.Ready = k.State == pb.TaskState_TASK_STATE_RUNNING // no check to wait for
		}
		t.taskEvent(k, now, r.GetReason(), c)
	}
	if healthChanged {
		k.Health, k.HealthMessage, k.Ready = h.GetHealth(), h.GetMessage(), h.GetReady()
		c.Tasks[k.GetId()] = k
		e := event(pb.EventKind_EVENT_KIND_TASK_HEALTH, now, h.GetMessage())
		e.Task = proto.Clone(k).(*pb.Task)
		c.Events = append(c.Events, e)
	}
	return nil
}

// portSpec is what PortRequest and PortMapping have in common.
type portSpec interface {
	GetName() string
	GetContainerPort() uint32
	GetHostPort() uint32
	GetProtocol() string
}

// portMapping copies p with the protocol spelled out ("" is tcp).
func portMapping(p portSpec) *pb.PortMapping {
	protocol := p.GetProtocol()
	if protocol == "" {
		protocol = ProtocolTCP
	}
	return &pb.PortMapping{Name: p.GetName(), ContainerPort: p.GetContainerPort(), HostPort: p.GetHostPort(), Protocol: protocol}
}

func samePorts(a, b []*pb.PortMapping) bool {
	return slices.EqualFunc(a, b, func(x, y *pb.PortMapping) bool { return proto.Equal(x, y) })
}

// Expire marks agents silent for longer than timeout as lost (their tasks
// LOST, their allocations revoked), revokes allocations whose lease ran
// out, revokes what is left on draining agents past their deadline
// (drain.go), and ends the leaderships whose lease ran out (LEADER_CHANGED).
func (t *Table) Expire(now time.Time, timeout time.Duration, c *Changes) {
	var lost []*pb.Agent
	t.memMu.RLock()
	for id, g := range t.agents {
		if g.GetState() == pb.AgentState_AGENT_STATE_UP && now.Sub(t.heartbeat[id]) > timeout {
			lost = append(lost, g)
		}
	}
	t.memMu.RUnlock()
	for _, g := range lost {
		t.loseAgent(g, now, c)
	}
	for _, a := range t.allocs {
		if a.GetState() == pb.AllocationState_ALLOCATION_STATE_GRANTED && a.LeaseExpires != nil &&
			now.After(a.GetLeaseExpires().AsTime()) {
			t.revokeAllocation(a, "lease expired", now, c)
		}
	}
	t.expireDrains(now, c)
	t.expireLeaders(now, c)
}

func (t *Table) loseAgent(g *pb.Agent, now time.Time, c *Changes) {
	t.memMu.RLock()
	last := t.heartbeat[g.GetId()]
	t.memMu.RUnlock()
	reason := "agent lost: no heartbeat since " + last.UTC().Format(time.RFC3339Nano)
	g.State = pb.AgentState_AGENT_STATE_LOST
	c.Agents[g.GetId()] = g
	for _, a := range t.allocs {
		if a.GetAgentId() == g.GetId() {
			t.revokeAllocation(a, reason, now, c)
		}
	}
	e := event(pb.EventKind_EVENT_KIND_AGENT_LOST, now, reason)
	e.Agent = proto.Clone(g).(*pb.Agent)
	c.Events = append(c.Events, e)
}

// grant commits a validated placement.
func (t *Table) grant(a *pb.Allocation, agentID string, now time.Time, c *Changes) {
	if a.GetState() == pb.AllocationState_ALLOCATION_STATE_PENDING {
		t.countPending(a, -1)
	}
	a.State, a.AgentId, a.PendingReason = pb.AllocationState_ALLOCATION_STATE_GRANTED, agentID, ""
	if ttl := a.GetLeaseTtl(); ttl != nil {
		a.LeaseExpires = timestamppb.New(now.Add(ttl.AsDuration()))
	}
	r := FromProto(a.GetResources())
	a.HostPorts = t.pickPorts(agentID, a.GetId(), r.Ports)
	t.used[agentID] = t.used[agentID].Add(r)
	t.grantVolumes(a, agentID, now, c)
	g := t.agents[agentID]
	g.Allocated = t.used[agentID].Proto()
	c.Agents[agentID] = g
	c.Allocations[a.GetId()] = a
	e := event(pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED, now, "")
	e.Allocation = proto.Clone(a).(*pb.Allocation)
	c.Events = append(c.Events, e)
}

// Lookups for the read calls. Each returns clones p may see.

// Agents returns every agent.
func (t *Table) Agents() []*pb.Agent {
	t.memMu.RLock()
	defer t.memMu.RUnlock()
	out := make([]*pb.Agent, 0, len(t.agents))
	for id, g := range t.agents {
		cl := proto.Clone(g).(*pb.Agent)
		if hb, ok := t.heartbeat[id]; ok {
			cl.LastHeartbeat = timestamppb.New(hb)
		}
		for _, p := range t.plugins[id] {
			cl.Plugins = append(cl.Plugins, proto.Clone(p).(*pb.PluginInfo))
		}
		for _, im := range t.images[id] {
			cl.Images = append(cl.Images, proto.Clone(im).(*pb.ImageInfo))
		}
		out = append(out, cl)
	}
	return out
}

// Allocations returns the live allocations p may see, optionally on one
// agent. An agent token sees only its own agent's.
func (t *Table) Allocations(p Principal, agentID string) []*pb.Allocation {
	var out []*pb.Allocation
	mine := t.boundAgent(p)
	t.memMu.RLock()
	defer t.memMu.RUnlock()
	for _, a := range t.allocs {
		if sees(p, mine, a.GetOwner(), a.GetAgentId()) && (agentID == "" || a.GetAgentId() == agentID) {
			cl := proto.Clone(a).(*pb.Allocation)
			cl.Usage = t.allocationUsage(a.GetId())
			out = append(out, cl)
		}
	}
	return out
}

// Tasks returns the tasks p may see, optionally filtered: live ones and
// the last MaxCompleted that ended with their allocation. An agent token
// sees only its own agent's tasks (their env included: it runs them).
func (t *Table) Tasks(p Principal, allocID, agentID string) []*pb.Task {
	var out []*pb.Task
	mine := t.boundAgent(p)
	t.memMu.RLock()
	defer t.memMu.RUnlock()
	add := func(k *pb.Task) {
		if sees(p, mine, k.GetOwner(), k.GetAgentId()) && (allocID == "" || k.GetAllocationId() == allocID) &&
			(agentID == "" || k.GetAgentId() == agentID) {
			cl := proto.Clone(k).(*pb.Task)
			if u := t.usage[k.GetId()]; u != nil {
				cl.Usage = proto.Clone(u).(*pb.TaskUsage)
			}
			out = append(out, cl)
		}
	}
	for _, k := range t.tasks {
		add(k)
	}
	for _, k := range t.completed {
		add(k)
	}
	return out
}

// sees reports whether p may see an object of owner on agent: operators
// all, frameworks their own, an agent token (bound to mine) its agent's.
func sees(p Principal, mine, owner, agent string) bool {
	if p.Role == RoleAgent {
		return mine != "" && agent == mine
	}
	return p.owns(owner)
}

// Counts returns the number of agents, allocations and tasks.
func (t *Table) Counts() (agents, allocations, tasks int) {
	return len(t.agents), len(t.allocs), len(t.tasks)
}
