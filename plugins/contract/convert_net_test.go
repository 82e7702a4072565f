package contract

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	pluginsv1 "github.com/dcos-kernel/dcos/plugins/contract/proto/v1"
)

// netipCmp compares netip values by ==, as their doc says to.
var netipCmp = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

// FuzzNetworkStatusFromProto: a status from a plugin (or a checkpoint) is
// either refused or read into one that encodes back to the same status.
func FuzzNetworkStatusFromProto(f *testing.F) {
	f.Add("10.1.2.5", "10.1.2.1", uint32(31000), uint32(8080))
	f.Add("", "", uint32(0), uint32(0))
	f.Add("fe80::1%eth0", "::1", uint32(70000), uint32(1))
	f.Add("10.1.2", "x", uint32(1), uint32(65536))
	f.Fuzz(func(t *testing.T, ip, gw string, hostPort, containerPort uint32) {
		pb := &pluginsv1.NetworkStatus{ContainerId: "c", Mode: "bridge", Ip: ip, Gateway: gw,
			Ports: []*pluginsv1.PortMapping{{Name: "p", HostPort: hostPort, ContainerPort: containerPort, Protocol: "tcp"}}}
		st, err := networkStatusFromProto(pb)
		if err != nil {
			return
		}
		again, err := networkStatusFromProto(networkStatusToProto(st))
		if err != nil {
			t.Fatalf("re-reading %+v: %v", st, err)
		}
		if diff := cmp.Diff(st, again, netipCmp); diff != "" {
			t.Errorf("round trip (-first +second):\n%s", diff)
		}
	})
}

// FuzzNodeConfigFromProto: a node config from the host is either refused or
// read into one that encodes back to the same config.
func FuzzNodeConfigFromProto(f *testing.F) {
	f.Add("10.1.2.0/24", "10.1.0.0/16", "192.168.0.1", "10.1.3.0/24", "192.168.0.2")
	f.Add("", "", "", "", "")
	f.Add("10.1.2.0/33", "10.1.0.0", "::", "::/0", "1.2.3.4.5")
	f.Fuzz(func(t *testing.T, subnet, cidr, underlay, peerSubnet, peerUnderlay string) {
		req := &pluginsv1.NetConfigureNodeRequest{AgentId: "a1", Subnet: subnet, ClusterCidr: cidr, Underlay: underlay,
			Peers: []*pluginsv1.Peer{{AgentId: "a2", Subnet: peerSubnet, Underlay: peerUnderlay}}}
		c, err := nodeConfigFromProto(req)
		if err != nil {
			return
		}
		again, err := nodeConfigFromProto(nodeConfigToProto(c))
		if err != nil {
			t.Fatalf("re-reading %+v: %v", c, err)
		}
		if diff := cmp.Diff(c, again, netipCmp); diff != "" {
			t.Errorf("round trip (-first +second):\n%s", diff)
		}
	})
}
