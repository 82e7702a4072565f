// Package ebpf accounts each task's network traffic in the kernel: two
// cgroup_skb programs (ingress and egress) count the bytes and packets of
// every socket in a task's cgroup v2 directory into per-CPU counters, which
// Counters sums on read.
//
// One Accounting per agent loads the programs and the counter map once;
// Attach links both programs to a task cgroup (one bpf_link per direction)
// and Detach removes the links and the task's counters. With a PinDir the
// map and the links are pinned in bpffs, so counting goes on while the agent
// restarts and a new Accounting adopts them (see docs/ebpf.md).
//
// It is not a firewall: the programs always let packets through. It does not
// measure CPU or memory (the cgroup files do, see isolators/cgroups). The
// programs are C in bpf/, compiled by bpf2go (go generate); the generated
// .go and .o files are committed.
//
// On a kernel without what the programs need, Load returns an error that
// wraps ErrNotSupported and names the missing feature (a *FeatureError).
// On other systems than Linux every constructor returns ErrNotSupported.
package ebpf
