package agent

import (
	"fmt"
	"os"
	"runtime"

	"github.com/dcos-kernel/dcos/agent/internal/hostos"
	"github.com/dcos-kernel/dcos/internal/quantity"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// node is what the agent tells the kernel about its node.
type node struct {
	hostname  string
	resources *syscallsv1.Resources
}

// fingerprint measures the node: cpus from the Go runtime, memory from
// /proc/meminfo, disk as the total size of the file system holding
// dataDir, and the hostname. Fields named in override replace the
// measured ones, as Mesos' --resources does; a measurement that fails is an
// error unless it is overridden.
func fingerprint(dataDir string, override quantity.Resources) (node, error) {
	var n node
	host, err := os.Hostname()
	if err != nil {
		return n, fmt.Errorf("fingerprint: hostname: %w", err)
	}
	n.hostname = host
	r := &syscallsv1.Resources{Cpus: float64(runtime.NumCPU())}
	if override.MemBytes == nil {
		if r.MemBytes, err = hostos.MemTotal(); err != nil {
			return n, fmt.Errorf("fingerprint: memory: %w", err)
		}
	}
	if override.DiskBytes == nil {
		if r.DiskBytes, err = hostos.DiskTotal(dataDir); err != nil {
			return n, fmt.Errorf("fingerprint: disk: %w", err)
		}
	}
	n.resources = applyOverride(r, override)
	return n, nil
}

// applyOverride returns r with the fields named in o replaced.
func applyOverride(r *syscallsv1.Resources, o quantity.Resources) *syscallsv1.Resources {
	out := &syscallsv1.Resources{Cpus: r.GetCpus(), MemBytes: r.GetMemBytes(), DiskBytes: r.GetDiskBytes()}
	if o.CPUs != nil {
		out.Cpus = *o.CPUs
	}
	if o.MemBytes != nil {
		out.MemBytes = *o.MemBytes
	}
	if o.DiskBytes != nil {
		out.DiskBytes = *o.DiskBytes
	}
	return out
}
