package contract

import (
	"fmt"
	"math"
	"net/netip"

	pluginsv1 "github.com/dcos-kernel/dcos/plugins/contract/proto/v1"
)

// addrString is a's wire form: empty for the zero Addr.
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// prefixString is p's wire form: empty for the zero Prefix.
func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

// parseAddr reads an address's wire form; empty is the zero Addr.
func parseAddr(field, s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s: %w", field, err)
	}
	return a, nil
}

// parsePrefix reads a prefix's wire form; empty is the zero Prefix.
func parsePrefix(field, s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s: %w", field, err)
	}
	return p, nil
}

func portsToProto(ps []PortMapping) []*pluginsv1.PortMapping {
	if ps == nil {
		return nil
	}
	out := make([]*pluginsv1.PortMapping, 0, len(ps))
	for _, p := range ps {
		out = append(out, &pluginsv1.PortMapping{Name: p.Name, HostPort: uint32(p.HostPort), ContainerPort: uint32(p.ContainerPort), Protocol: p.Protocol})
	}
	return out
}

func portsFromProto(ps []*pluginsv1.PortMapping) ([]PortMapping, error) {
	if ps == nil {
		return nil, nil
	}
	out := make([]PortMapping, 0, len(ps))
	for _, p := range ps {
		if p.GetHostPort() > math.MaxUint16 || p.GetContainerPort() > math.MaxUint16 {
			return nil, fmt.Errorf("port %q: %d:%d out of range", p.GetName(), p.GetHostPort(), p.GetContainerPort())
		}
		out = append(out, PortMapping{Name: p.GetName(), HostPort: uint16(p.GetHostPort()), ContainerPort: uint16(p.GetContainerPort()), Protocol: p.GetProtocol()})
	}
	return out, nil
}

func networkStatusToProto(s *NetworkStatus) *pluginsv1.NetworkStatus {
	if s == nil {
		return nil
	}
	return &pluginsv1.NetworkStatus{
		ContainerId: s.ContainerID, Mode: string(s.Mode), Netns: s.Netns, Interface: s.Interface,
		Ip: addrString(s.IP), Gateway: addrString(s.Gateway), Ports: portsToProto(s.Ports), Env: s.Env,
	}
}

func networkStatusFromProto(s *pluginsv1.NetworkStatus) (*NetworkStatus, error) {
	ip, err := parseAddr("ip", s.GetIp())
	if err != nil {
		return nil, err
	}
	gw, err := parseAddr("gateway", s.GetGateway())
	if err != nil {
		return nil, err
	}
	ports, err := portsFromProto(s.GetPorts())
	if err != nil {
		return nil, err
	}
	return &NetworkStatus{
		ContainerID: s.GetContainerId(), Mode: NetworkMode(s.GetMode()), Netns: s.GetNetns(), Interface: s.GetInterface(),
		IP: ip, Gateway: gw, Ports: ports, Env: s.GetEnv(),
	}, nil
}

func nodeConfigToProto(c NodeConfig) *pluginsv1.NetConfigureNodeRequest {
	req := &pluginsv1.NetConfigureNodeRequest{
		AgentId: c.AgentID, Subnet: prefixString(c.Subnet), ClusterCidr: prefixString(c.ClusterCIDR),
		Underlay: addrString(c.Underlay), Peers: make([]*pluginsv1.Peer, 0, len(c.Peers)),
	}
	for _, p := range c.Peers {
		req.Peers = append(req.Peers, &pluginsv1.Peer{AgentId: p.AgentID, Underlay: addrString(p.Underlay), Subnet: prefixString(p.Subnet)})
	}
	return req
}

func nodeConfigFromProto(req *pluginsv1.NetConfigureNodeRequest) (NodeConfig, error) {
	c := NodeConfig{AgentID: req.GetAgentId()}
	var err error
	if c.Subnet, err = parsePrefix("subnet", req.GetSubnet()); err != nil {
		return NodeConfig{}, err
	}
	if c.ClusterCIDR, err = parsePrefix("cluster cidr", req.GetClusterCidr()); err != nil {
		return NodeConfig{}, err
	}
	if c.Underlay, err = parseAddr("underlay", req.GetUnderlay()); err != nil {
		return NodeConfig{}, err
	}
	for _, p := range req.GetPeers() {
		peer := Peer{AgentID: p.GetAgentId()}
		if peer.Underlay, err = parseAddr("peer "+p.GetAgentId()+" underlay", p.GetUnderlay()); err != nil {
			return NodeConfig{}, err
		}
		if peer.Subnet, err = parsePrefix("peer "+p.GetAgentId()+" subnet", p.GetSubnet()); err != nil {
			return NodeConfig{}, err
		}
		c.Peers = append(c.Peers, peer)
	}
	return c, nil
}
