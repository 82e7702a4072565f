package ebpf

import "path/filepath"

// BPFFS is where bpffs is mounted (and mounted by Load when a PinDir
// beneath it is asked for and it is not there yet).
const BPFFS = "/sys/fs/bpf"

// Config says how Load sets up accounting.
type Config struct {
	// PinDir, if set, is a directory on bpffs where the counter map and
	// every attachment's links are pinned, so that counting survives the
	// agent's restart (use PinDirFor). Load mounts bpffs at BPFFS when
	// PinDir is beneath it and nothing is mounted there yet. Empty: nothing
	// is pinned, and Close detaches everything.
	PinDir string
	// Disable, if set, makes Load fail with a *FeatureError (wrapping
	// ErrNotSupported) that carries this reason, without probing the
	// kernel: for operators who want accounting off, and for tests of the
	// path taken when the kernel cannot do it.
	Disable string
}

// PinDirFor returns the pin directory of one agent, BPFFS/dcos/<agent>.
// agent must be a single path element (e.g. the agent's id or a hash of its
// data dir) so that several agents on one host never share pins.
func PinDirFor(agent string) string {
	return filepath.Join(BPFFS, "dcos", agent)
}

// Counters are the traffic of one cgroup since it was first attached: bytes
// and packets as the IP layer hands them to or takes them from its sockets.
// Bytes include IP and transport headers (not link-layer ones). A "packet"
// is one sk_buff: with GSO/GRO (always on loopback and veth) it can carry up
// to 64 KiB, so packet counts are not wire packets.
type Counters struct {
	RxBytes, RxPackets uint64 // ingress: received by the cgroup's sockets
	TxBytes, TxPackets uint64 // egress: sent by the cgroup's sockets
}

// Add returns the sum of c and d.
func (c Counters) Add(d Counters) Counters {
	return Counters{
		RxBytes: c.RxBytes + d.RxBytes, RxPackets: c.RxPackets + d.RxPackets,
		TxBytes: c.TxBytes + d.TxBytes, TxPackets: c.TxPackets + d.TxPackets,
	}
}
