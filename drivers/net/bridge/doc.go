// Package bridge is the node's "bridge" network driver (contract.NetDriver):
// each bridge-mode container gets its own network namespace, joined by a
// veth pair to the node's Linux bridge (default "dcos0", which holds the
// gateway, the first host of the node's subnet), an address from the node's
// subnet, and a default route via the gateway. Host-mode containers share
// the node's namespace; the driver only reserves their host ports.
//
// Between nodes the driver routes (L3) over one VXLAN device (default
// "dcos-vx", VNI 88, UDP 4789, learning off). For each peer it installs,
// all derived from the peer's subnet and underlay address:
//
//	route   <peer subnet> via <peer subnet's .0> dev dcos-vx onlink src <our gateway>
//	neigh   <peer subnet's .0> lladdr 02:dc:<peer subnet> dev dcos-vx permanent
//	fdb     02:dc:<peer subnet> dst <peer underlay> dev dcos-vx self permanent
//
// so that a packet for another node's container is encapsulated to exactly
// that node, with no ARP or flooding over the overlay (flannel's scheme).
// Forwarding is enabled per device (net.ipv4.conf.<dev>.forwarding) on the
// bridge and the VXLAN device only, not host-wide.
//
// Namespaces are bind-mounted under StateDir/netns/dcos-<escaped id>, not
// under /run/netns: they belong to one driver instance, so GC can never
// touch another driver's (or another test's) namespaces, and they are not
// listed by `ip netns`; enter one with `nsenter --net=<path>`.
//
// Addresses are leased by a small pool persisted in StateDir/ipam.json
// (written atomically: temp file renamed over the old one; not fsynced,
// as no namespace survives a reboot, see pool.save)
// before any kernel object is created, so a restarted driver never hands
// out an address a live container holds. Everything the driver creates on
// the host is named with a "dcos" prefix.
//
// Host ports of bridge-mode containers are DNAT entries in one nftables
// table per node, "ip <bridge>" (a map from protocol and host port to
// container address and port, used for packets to any local address),
// written over netlink with github.com/google/nftables (no nft binary);
// the same table masquerades hairpin traffic and traffic from the subnet
// leaving the cluster CIDR. Host-side veths are in hairpin mode, so that
// a container reaches its own host port with br_netfilter loaded. While a
// container has a host port, the driver holds it with a placeholder socket
// on 0.0.0.0 in the node's namespace (bound before the DNAT entry is
// installed, closed after it is removed, re-opened by Recover), so that
// no process of the node can have the port too: Setup of a port another
// socket has fails with ErrConflict, and a later bind gets EADDRINUSE.
// Host-mode containers' ports are not held: the task binds them itself.
// On a kernel without nf_tables, bridge-mode port mappings return
// ErrNotSupported. Host ports are not reachable through 127.0.0.1 (no
// route_localnet), and
// clients on other machines, like egress to outside the cluster, need
// forwarding on the uplink device, which the driver does not enable (it is
// a host-wide choice left to the node's provisioning).
//
// It is not a firewall: it filters nothing.
package bridge
