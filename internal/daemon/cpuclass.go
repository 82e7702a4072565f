package daemon

import (
	"fmt"
	"strings"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// parseCPUClass reads a CPU class as operators write it: "normal" or
// "idle" (any case; also the enum's own names, e.g. CPU_CLASS_IDLE).
func parseCPUClass(s string) (pb.CpuClass, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if v, ok := pb.CpuClass_value[u]; ok {
		return pb.CpuClass(v), nil
	}
	if v, ok := pb.CpuClass_value["CPU_CLASS_"+u]; ok && u != "" {
		return pb.CpuClass(v), nil
	}
	return 0, fmt.Errorf("cpu class %q: want normal or idle", s)
}

// parseRoleCPUClasses reads --role-cpu-class NAME=CLASS into roles.
func parseRoleCPUClasses(roles map[string]kernel.RoleConfig, classes []string) error {
	for _, s := range classes {
		name, v, ok := strings.Cut(s, "=")
		class, err := parseCPUClass(v)
		if !ok || name == "" || err != nil {
			return fmt.Errorf("--role-cpu-class %q: want NAME=normal or NAME=idle", s)
		}
		r := roles[name]
		r.CPUClass = class
		roles[name] = r
	}
	return nil
}
