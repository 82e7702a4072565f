package kernel

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// DefaultClusterCIDR is the range agents' subnets come from when the
// kernel is not told otherwise (dcosd --cluster-cidr).
var DefaultClusterCIDR = netip.MustParsePrefix("10.88.0.0/16")

// AgentSubnetBits is the prefix length of an agent's subnet: each agent
// gets a /24 (254 addresses for its bridge tasks).
const AgentSubnetBits = 24

// ParseClusterCIDR parses a cluster CIDR and checks it with
// CheckClusterCIDR.
func ParseClusterCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("cluster CIDR %q: want an IPv4 prefix such as %s", s, DefaultClusterCIDR)
	}
	return p, CheckClusterCIDR(p)
}

// CheckClusterCIDR reports whether p can be a cluster CIDR: an IPv4
// prefix of length at most AgentSubnetBits (so that it holds at least one
// agent subnet), written with its host bits zero.
func CheckClusterCIDR(p netip.Prefix) error {
	switch {
	case !p.IsValid() || !p.Addr().Is4():
		return fmt.Errorf("cluster CIDR %v: want an IPv4 prefix such as %s", p, DefaultClusterCIDR)
	case p.Bits() > AgentSubnetBits:
		return fmt.Errorf("cluster CIDR %v: prefix longer than /%d; it must hold at least one /%d per agent", p, AgentSubnetBits, AgentSubnetBits)
	case p != p.Masked():
		return fmt.Errorf("cluster CIDR %v: host bits set; did you mean %v?", p, p.Masked())
	}
	return nil
}

// SetClusterCIDR sets the range new agents' subnets come from; p must
// pass CheckClusterCIDR. Subnets already assigned are kept, even outside
// p.
func (t *Table) SetClusterCIDR(p netip.Prefix) { t.cidr, t.nextFree = p, 0 }

// ClusterCIDR is the range agents' subnets come from.
func (t *Table) ClusterCIDR() netip.Prefix { return t.cidr }

// holdSubnet records that an agent holds subnet s (a no-op for "").
func (t *Table) holdSubnet(s string) {
	if p, err := netip.ParsePrefix(s); err == nil {
		t.subnets[p] = true
	}
}

// freeSubnet returns the lowest /24 of the cluster CIDR that no agent
// holds (lost agents included), and false when there is none. Subnets
// are never freed, so the search starts where the last one ended.
func (t *Table) freeSubnet() (netip.Prefix, bool) {
	base := t.cidr.Addr().As4()
	first := binary.BigEndian.Uint32(base[:])
	n := uint32(1) << (AgentSubnetBits - t.cidr.Bits())
	for i := t.nextFree; i < n; i++ {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], first+i<<(32-AgentSubnetBits))
		s := netip.PrefixFrom(netip.AddrFrom4(a), AgentSubnetBits)
		if !t.subnets[s] {
			t.nextFree = i
			return s, true
		}
	}
	t.nextFree = n
	return netip.Prefix{}, false
}

// exhausted is the error of a registration that finds no free subnet.
func (t *Table) exhausted(r *pb.RegisterAgentRequest) error {
	who := fmt.Sprintf("a new agent (hostname %q)", clip(r.GetHostname()))
	if id := r.GetAgentId(); id != "" {
		who = fmt.Sprintf("agent %s", id)
	}
	n := 1 << (AgentSubnetBits - t.cidr.Bits())
	return errorf(ResourceExhausted, "cluster CIDR %s has no free /%d for %s: agents hold all %d (lost agents keep theirs); restart the kernel with a larger --cluster-cidr that contains %s",
		t.cidr, AgentSubnetBits, who, n, t.cidr)
}

// AssignSubnets gives a subnet to every agent restored without one (it
// registered before the kernel assigned subnets), oldest agent first, and
// records them in c. It does nothing unless Restore found such agents;
// agents left without one when the CIDR is full get one when they
// register again.
func (t *Table) AssignSubnets(c *Changes) {
	if !t.missingSubnets {
		return
	}
	t.missingSubnets = false
	var bare []*pb.Agent
	for _, g := range t.agents {
		if g.GetSubnet() == "" {
			bare = append(bare, g)
		}
	}
	slices.SortFunc(bare, func(a, b *pb.Agent) int {
		return cmp.Or(cmp.Compare(idSeq(a.GetId(), "agent-"), idSeq(b.GetId(), "agent-")), cmp.Compare(a.GetId(), b.GetId()))
	})
	for _, g := range bare {
		s, ok := t.freeSubnet()
		if !ok {
			return
		}
		g.Subnet = s.String()
		t.holdSubnet(g.Subnet)
		c.Agents[g.GetId()] = g
	}
}
