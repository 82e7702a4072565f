package kernel

import (
	"fmt"
	"math"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Resources is an amount of resources in integral units: millicores,
// bytes and a count of host ports. Integral units keep sums exact; the ABI's float cpus are converted
// at the edge with millicore precision.
type Resources struct {
	MilliCPU int64
	Mem      int64
	Disk     int64
	Ports    int64
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{r.MilliCPU + o.MilliCPU, r.Mem + o.Mem, r.Disk + o.Disk, r.Ports + o.Ports}
}

// Sub returns r - o.
func (r Resources) Sub(o Resources) Resources {
	return Resources{r.MilliCPU - o.MilliCPU, r.Mem - o.Mem, r.Disk - o.Disk, r.Ports - o.Ports}
}

// Fits reports whether need fits in r, dimension by dimension.
func (r Resources) Fits(need Resources) bool {
	return need.MilliCPU <= r.MilliCPU && need.Mem <= r.Mem && need.Disk <= r.Disk && need.Ports <= r.Ports
}

// IsZero reports whether every dimension is zero.
func (r Resources) IsZero() bool { return r == Resources{} }

func (r Resources) String() string {
	if r.Ports != 0 {
		return fmt.Sprintf("cpus=%g,mem=%d,disk=%d,ports=%d", float64(r.MilliCPU)/1000, r.Mem, r.Disk, r.Ports)
	}
	return fmt.Sprintf("cpus=%g,mem=%d,disk=%d", float64(r.MilliCPU)/1000, r.Mem, r.Disk)
}

// FromProto converts ABI resources; nil is zero. Callers validate first:
// cpus are rounded to the nearest millicore.
func FromProto(p *pb.Resources) Resources {
	if p == nil {
		return Resources{}
	}
	return Resources{MilliCPU: int64(math.Round(p.GetCpus() * 1000)), Mem: p.GetMemBytes(), Disk: p.GetDiskBytes(), Ports: p.GetPorts()}
}

// Proto converts r to the ABI form.
func (r Resources) Proto() *pb.Resources {
	return &pb.Resources{Cpus: float64(r.MilliCPU) / 1000, MemBytes: r.Mem, DiskBytes: r.Disk, Ports: r.Ports}
}
