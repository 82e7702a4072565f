"""dask_worker.py [DASK WORKER ARGS...]: a Dask worker sized by its dcos allocation.

Reads the task's own cgroup (v2) limits, which the agent sets from the
allocation's cpus and mem, and starts `dask worker` with --nthreads
ceil(cpus) and --memory-limit mem, so that Dask's own memory management
(spill at 60%, pause at 80%) works against the limit the kernel enforces
rather than the whole node's memory. A limit that is not set ("max") is
left to Dask's default. --no-nanny: the init restarts a worker that dies,
so Dask's own restarter is not needed. Other arguments (the scheduler, or
--scheduler-file) are passed on.
"""
import math
import os
import sys


def cgroup_dirs():
    """The directories of this process's cgroup and its ancestors, innermost first."""
    rel = "/"
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                rel = line[3:].strip()
    d = os.path.normpath("/sys/fs/cgroup/" + rel.lstrip("/"))
    out = []
    while True:
        out.append(d)
        if d in ("/sys/fs/cgroup", "/"):
            return out
        d = os.path.dirname(d)


def read(path):
    try:
        with open(path) as f:
            return f.read().split()
    except OSError:
        return None


def limits():
    """(cpus, mem_bytes) from the tightest limits on the way up; None when unset."""
    cpus = mem = None
    for d in cgroup_dirs():
        c = read(os.path.join(d, "cpu.max"))
        if c and c[0] != "max":
            v = int(c[0]) / int(c[1])
            cpus = v if cpus is None else min(cpus, v)
        m = read(os.path.join(d, "memory.max"))
        if m and m[0] != "max":
            v = int(m[0])
            mem = v if mem is None else min(mem, v)
    return cpus, mem


def main(args):
    cpus, mem = limits()
    cmd = [sys.executable, "-m", "distributed.cli.dask_worker", "--no-nanny", "--no-dashboard"]
    cmd += ["--nthreads", str(max(1, math.ceil(cpus - 1e-9)) if cpus else 1)]
    if mem:
        cmd += ["--memory-limit", str(mem)]
    cmd += args
    print("dask_worker.py: cpus", cpus, "mem", mem, "->", " ".join(cmd), flush=True)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
