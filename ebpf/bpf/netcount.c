//go:build ignore

// cgroup_skb programs that count the bytes and packets each task cgroup
// sends (egress) and receives (ingress). Compiled by bpf2go (see
// ../generate.go); the objects are committed.
//
// Counting is keyed by the cgroup v2 id of the socket the packet belongs to
// (bpf_skb_cgroup_id). Only ids that user space registered (a zero value put
// into dcos_net by Attach) are counted: the programs never create entries, so
// a task's entry lives exactly from Attach to Detach.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// netcount is one CPU's counters of one cgroup. Field order is ABI: the Go
// side reads it through the generated netcountNetcount type.
struct netcount {
	__u64 rx_bytes;
	__u64 rx_packets;
	__u64 tx_bytes;
	__u64 tx_packets;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct netcount);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dcos_net SEC(".maps");

// Atomic adds: a softirq (an ACK sent from the receive path) can interrupt a
// process-context egress program on the same CPU between load and store.
static __always_inline void count(struct __sk_buff *skb, int egress)
{
	__u64 id = bpf_skb_cgroup_id(skb);
	struct netcount *c = bpf_map_lookup_elem(&dcos_net, &id);

	if (!c)
		return;
	if (egress) {
		__sync_fetch_and_add(&c->tx_bytes, skb->len);
		__sync_fetch_and_add(&c->tx_packets, 1);
	} else {
		__sync_fetch_and_add(&c->rx_bytes, skb->len);
		__sync_fetch_and_add(&c->rx_packets, 1);
	}
}

// Both programs only count: they always return 1 (let the packet through).

SEC("cgroup_skb/ingress")
int dcos_ingress(struct __sk_buff *skb)
{
	count(skb, 0);
	return 1;
}

SEC("cgroup_skb/egress")
int dcos_egress(struct __sk_buff *skb)
{
	count(skb, 1);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
