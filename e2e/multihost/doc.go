// Package multihost turns one Linux machine into several "hosts" for
// tests: each host is a named network namespace joined by a veth pair to a
// test bridge in the root namespace, with its own IPv4 address, so that
// daemons started inside behave as if they ran on separate machines of one
// L2 segment. It is the multi-host harness of the end-to-end tests (agents
// in hosts, a kernel in the root namespace) and is meant to be reused by
// any test that needs more than one node.
//
// The contract:
//
//   - New(t) creates a Network: a Linux bridge in the root namespace named
//     "mh" + 6 random hex digits (never "dcos…", so that it is never taken
//     for something dcos made), on a random 172.31.X.0/24 that overlaps no
//     route or address of the root namespace; the root side holds .1
//     (Gateway), so a server in the root namespace listening on Gateway is
//     reachable from every host.
//   - AddHost(name) creates a host: a network namespace bind-mounted at
//     /run/netns/<network>-<name> (so `ip -n` works for debugging), a veth
//     pair whose root end is on the bridge and whose other end is the
//     host's eth0 with .N/24 (N = 2, 3, … in order), lo up, a default
//     route via Gateway, and IPv4 forwarding on (a node provisioned for
//     routing to containers, as the bridge driver's docs ask). Nothing
//     else: no NAT, no filter.
//   - Host.Command runs a program in the host's network namespace ONLY,
//     through `nsenter --net=PATH --` (util-linux): the mount namespace,
//     and so /sys/fs/cgroup and /sys/fs/bpf, stay the root's, which a
//     dcosd agent needs. (`ip netns exec` would remount /sys.) nsenter
//     execs the program, so the process's pid is the program's.
//   - Host.Cut and Restore take the host's link down and up (its root
//     end), to cut it off the network without stopping anything in it.
//   - Everything is removed by the Network's Close (every host, then the
//     bridge), registered with t.Cleanup by New, so it runs even when the
//     test fails; Host.Close removes one host earlier. Both are idempotent.
//     Removing a host deletes its veth pair and its namespace's mount;
//     whatever dcos left inside the namespace (its bridge, VXLAN device,
//     nftables table) goes with the namespace once no process holds it —
//     so a test must list what it expects gone BEFORE closing the host.
//
// Cleanup order: t.Cleanup runs last-registered first, so create the
// Network before anything that starts processes inside its hosts, whose
// cleanup must stop them first.
//
// It is not a network emulator: no latency, loss or bandwidth shaping, and
// IPv4 only. It needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and Linux;
// elsewhere New skips the test.
package multihost
