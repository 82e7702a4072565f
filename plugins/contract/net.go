package contract

import (
	"context"
	"net/netip"
	"strings"
)

// NetDriver gives containers their network on one node: in bridge mode a
// network namespace joined to the node's bridge by a veth, an address from
// the node's subnet, host ports mapped to container ports, and routes (or
// VXLAN) to the other nodes' subnets; in host mode the node's own network
// with host ports reserved. It is shaped after Mesos's network isolator and
// Nomad's network hook: the host calls ConfigureNode once it knows the
// cluster, Setup before a task starts (the task driver then starts the task in
// NetworkStatus.Netns), Teardown once the task is gone, and, after a restart,
// ConfigureNode, Recover and GC, in that order. When it stops, the host
// calls RemoveNode, which keeps the node's network while containers use it.
//
// All methods are safe for concurrent use. Container IDs are chosen by the
// host and are unique on a node. Status returns an error wrapping
// ErrTaskNotFound for an ID the driver does not know; Teardown is idempotent.
// A mode or call the driver does not support returns ErrNotSupported; a host
// port already taken returns ErrConflict; an empty address or port pool
// returns ErrExhausted.
type NetDriver interface {
	// Setup creates the container's network and returns its status, which
	// the host checkpoints and passes to Recover after a restart. Host
	// ports of 0 are picked by the driver. Setting up an ID that is already
	// set up returns ErrConflict; on any error nothing of the container is
	// left behind. Bridge mode before ConfigureNode is an error.
	Setup(ctx context.Context, req NetworkRequest) (*NetworkStatus, error)

	// Teardown releases everything of the container: its namespace, veth,
	// address and host ports. It is idempotent: tearing down an unknown or
	// already torn down container returns nil.
	Teardown(ctx context.Context, containerID string) error

	// Status returns the container's network as Setup returned it.
	Status(ctx context.Context, containerID string) (*NetworkStatus, error)

	// Recover rebuilds the driver's state (address and port allocations)
	// after a restart from the statuses the host checkpointed. A container
	// whose namespace is gone is forgotten, not an error. Recovering a
	// container the driver already tracks is a no-op.
	Recover(ctx context.Context, containers []NetworkStatus) error

	// ConfigureNode sets up the node's side of the cluster network: the
	// bridge and IPAM for cfg.Subnet, and a route (or VXLAN forwarding
	// entry) to each peer's subnet. cfg is the whole desired state: peers no
	// longer listed are removed. It is idempotent and is called again
	// whenever the peers change. Changing Subnet while containers hold
	// addresses in it returns ErrConflict.
	ConfigureNode(ctx context.Context, cfg NodeConfig) error

	// GC removes what the driver finds on the node (namespaces, veths, NAT
	// rules) of containers not in live, e.g. leftovers of a crash between
	// Setup and the host's checkpoint, and returns their IDs. It is
	// idempotent.
	GC(ctx context.Context, live []string) (removed []string, err error)

	// RemoveNode removes everything ConfigureNode created on the node (the
	// bridge, the VXLAN device, their addresses, routes, neighbors and
	// forwarding entries, the NAT rules) and forgets the node
	// configuration; a later Setup in bridge mode needs ConfigureNode
	// again. It refuses with ErrConflict, changing nothing, while
	// containers hold addresses (they keep their network). It is
	// idempotent: on a node never configured, or already removed, it
	// returns nil.
	RemoveNode(ctx context.Context) error
}

// NetworkMode is how a container is networked.
type NetworkMode string

const (
	// NetworkModeBridge gives the container its own network namespace and
	// an address on the node's bridge.
	NetworkModeBridge NetworkMode = "bridge"
	// NetworkModeHost runs the container in the node's network namespace;
	// its ports are host ports, which the driver reserves.
	NetworkModeHost NetworkMode = "host"
)

// PortMapping maps a host port to a container port.
type PortMapping struct {
	// Name names the port for the task: it sees it as DCOS_PORT_<NAME>
	// (see PortEnv). Names are unique within a request.
	Name string
	// HostPort is the port on the node; 0 asks the driver to pick a free
	// one, which the status reports.
	HostPort uint16
	// ContainerPort is the port the task listens on in bridge mode; 0 means
	// HostPort. In host mode it must be 0 or HostPort.
	ContainerPort uint16
	// Protocol is "tcp" or "udp"; empty means "tcp".
	Protocol string
}

// NetworkRequest asks for a container's network.
type NetworkRequest struct {
	ContainerID string
	Mode        NetworkMode
	Ports       []PortMapping
}

// NetworkStatus is a container's network as a driver set it up.
type NetworkStatus struct {
	ContainerID string
	Mode        NetworkMode
	// Netns is the path of the container's network namespace (e.g.
	// /run/netns/<id>), which the task driver starts the task in; empty in
	// host mode.
	Netns string
	// Interface is the container's interface inside Netns (e.g. "eth0").
	Interface string
	// IP is the container's address; Gateway its default route. In host
	// mode they may be the node's address and unset.
	IP      netip.Addr
	Gateway netip.Addr
	// Ports are the request's mappings, with the host ports the driver
	// picked filled in.
	Ports []PortMapping
	// Env is added to the task's environment: TaskIPEnv and a PortEnv for
	// each port, whose value is the port the task listens on.
	Env map[string]string
}

// NodeConfig is a node's place in the cluster network.
type NodeConfig struct {
	// AgentID is this node's agent.
	AgentID string
	// Subnet is this node's container subnet (e.g. 10.1.2.0/24); the
	// driver allocates container addresses from it.
	Subnet netip.Prefix
	// ClusterCIDR holds every node's subnet (e.g. 10.1.0.0/16); traffic to
	// it is not masqueraded.
	ClusterCIDR netip.Prefix
	// Underlay is this node's address on the network between nodes (the
	// source of its VXLAN packets).
	Underlay netip.Addr
	// Peers are every other node.
	Peers []Peer
}

// Peer is another node of the cluster network.
type Peer struct {
	AgentID string
	// Underlay is the peer's address on the network between nodes.
	Underlay netip.Addr
	// Subnet is the peer's container subnet.
	Subnet netip.Prefix
}

// TaskIPEnv is the environment variable that holds a task's address.
const TaskIPEnv = "DCOS_TASK_IP"

// PortEnv returns the environment variable that holds the port named name:
// DCOS_PORT_ and the name upper-cased, with every character other than a
// letter or digit replaced by '_' ("http-admin" → DCOS_PORT_HTTP_ADMIN).
func PortEnv(name string) string {
	var b strings.Builder
	b.WriteString("DCOS_PORT_")
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
