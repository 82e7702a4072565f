"""dask_worker.py [DASK WORKER ARGS...]: a Dask worker sized by its dcos allocation.

Reads the task's own cgroup limits (v1 or v2), which the agent sets from the
allocation's cpus and mem, and starts `dask worker` with --nthreads
ceil(cpus) and --memory-limit mem, so that Dask's own memory management
(spill at 60%, pause at 80%) works against the limit the kernel enforces
rather than the whole node's memory. A limit that is not set ("max") is
left to Dask's default. --no-nanny: the init restarts a worker that dies,
so Dask's own restarter is not needed. Other arguments (the scheduler, or
--scheduler-file) are passed on.
"""
import glob
import math
import os
import sys


def cgroup_mounts():
    """(mount point, root, fstype, options) of each cgroup file system this process sees."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(fields) >= 5 and len(rfields) >= 3 and rfields[0] in ("cgroup", "cgroup2"):
                out.append((fields[4], fields[3], rfields[0], rfields[2].split(",")))
    return out


def own_cgroup(mount, root):
    """The directory of this process's cgroup under mount, or None.

    A task has its own cgroup namespace: /proc/self/cgroup says "/", and the
    mount's root is shown relative to the namespace's, e.g. "/../.." when
    the hierarchy's root is two levels up. The cgroup is then the directory
    that many levels down whose cgroup.procs lists this process (the kernel
    shows only the pids of our own pid namespace there).
    """
    ups = [c for c in root.split("/") if c]
    if any(c != ".." for c in ups):
        return None
    pattern = os.path.join(mount, *(["*"] * len(ups))) if ups else mount
    me = str(os.getpid())
    for d in glob.glob(pattern):
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                if me in f.read().split():
                    return d
        except OSError:
            continue
    return None


def read(path):
    try:
        with open(path) as f:
            return f.read().split()
    except OSError:
        return None


def limits():
    """(cpus, mem_bytes): the tightest limits from this cgroup up to the root; None when unset."""
    cpus = mem = None
    for mount, root, fstype, opts in cgroup_mounts():
        d = own_cgroup(mount, root)
        while d and d.startswith(mount):
            if fstype == "cgroup2":
                c, m = read(os.path.join(d, "cpu.max")), read(os.path.join(d, "memory.max"))
                c = (c[0], c[1]) if c and c[0] != "max" else None
                m = m[0] if m and m[0] != "max" else None
            else:
                q, p = read(os.path.join(d, "cpu.cfs_quota_us")), read(os.path.join(d, "cpu.cfs_period_us"))
                c = (q[0], p[0]) if "cpu" in opts and q and p and int(q[0]) > 0 else None
                m = read(os.path.join(d, "memory.limit_in_bytes")) if "memory" in opts else None
                m = m[0] if m and int(m[0]) < 1 << 60 else None
            if c:
                v = int(c[0]) / int(c[1])
                cpus = v if cpus is None else min(cpus, v)
            if m:
                mem = int(m) if mem is None else min(mem, int(m))
            if d == mount:
                break
            d = os.path.dirname(d)
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
