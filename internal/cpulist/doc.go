// Package cpulist reads and writes Linux CPU lists: the "0-3,5" format of
// cpuset.cpus, /sys/devices/system/cpu/online and the Cpus_allowed_list
// line of /proc/PID/status (see cpuset(7), "List format").
//
// It is the one parser of that format in dcos: the kernel validates a
// role's cpuset with it, the cgroups door and isolator intersect a role's
// CPUs with an agent's with it. It is pure (no I/O) and builds everywhere.
//
// It is not a cpu affinity API: it does not call sched_setaffinity, and it
// does not know which CPUs a host has.
package cpulist
