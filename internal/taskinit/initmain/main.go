//go:build linux

// Command initmain is the exec driver's task init: the first process of
// an isolated task, pid 1 of its pid namespace. The supervisor starts it as
// root in new mount, pid, ipc and uts namespaces (and in the task's cgroups
// and network namespace); it confines its namespaces, starts the task with
// the task's credentials, reaps orphans and exits with the task's status.
//
// It is built into ../taskinit.bin by go generate (a static binary of a
// few hundred KiB that starts in well under a millisecond) and embedded in
// the supervisor, which runs it from a sealed memfd. Keep its imports to
// the standard library's smallest packages and x/sys/unix: every package
// init is paid at every task start and its memory is charged to the
// task's memory cgroup.
//
// Usage (argv, built by package taskinit):
//
//	init [-uid N] [-gid N] [-groups N,N] [-keepcaps] [-pidns] [-hide PATH]...
//	     [-cgroup DIR]... [-sandbox DIR] -- PATH ARGV0 ARGS...
//
// fd 3 is the status pipe to the supervisor: one line "ok" once the task
// runs or "err MESSAGE" when it could not start (then the exit code is
// 127), and, when the task is killed by a signal, "signal N" before init
// exits with 128+N. The environment is the task's.
package main

import (
	"errors"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

const statusFd = 3

type config struct {
	uid, gid uint32
	groups   []uint32
	keepCaps bool
	pidns    bool
	hide     []string
	cgroups  []string
	sandbox  string
	path     string
	argv     []string
}

func main() {
	// Capability bounding set and no_new_privs are per thread: set them
	// on the thread that forks the task.
	runtime.LockOSThread()
	os.Exit(run())
}

func writeStatus(s string) {
	b := []byte(s + "\n")
	for len(b) > 0 {
		n, err := unix.Write(statusFd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return
		}
		b = b[n:]
	}
}

func run() int {
	// Handled, not ignored: an ignored disposition would be inherited by
	// the task across exec. As pid 1 of its namespace, init would
	// otherwise ignore them anyway; the task, in init's process group,
	// gets the same signals from the supervisor directly. First, so that
	// the runtime's signal thread starts while the mounts are made.
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGCHLD)
	unix.CloseOnExec(statusFd)
	cfg, err := parse(os.Args[1:])
	if err == nil {
		err = setup(cfg)
	}
	if err != nil {
		writeStatus("err " + err.Error())
		return 127
	}
	attr := &syscall.SysProcAttr{}
	if cfg.uid != 0 || cfg.gid != 0 || cfg.groups != nil {
		attr.Credential = &syscall.Credential{Uid: cfg.uid, Gid: cfg.gid, Groups: cfg.groups}
		if attr.Credential.Groups == nil {
			attr.Credential.Groups = []uint32{}
		}
	}
	if err := enterCgroups(cfg.cgroups); err != nil {
		writeStatus("err " + err.Error())
		return 127
	}
	wd, _ := os.Getwd()
	pid, err := syscall.ForkExec(cfg.path, cfg.argv, &syscall.ProcAttr{
		Dir: wd, Env: os.Environ(), Files: []uintptr{0, 1, 2}, Sys: attr,
	})
	if err != nil {
		writeStatus("err exec " + cfg.path + ": " + err.Error())
		return 127
	}
	writeStatus("ok")
	for range sigs {
		for {
			var ws unix.WaitStatus
			p, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if p <= 0 || err != nil {
				break
			}
			if p != pid {
				continue // an orphan
			}
			if ws.Signaled() {
				writeStatus("signal " + strconv.Itoa(int(ws.Signal())))
				return 128 + int(ws.Signal())
			}
			return ws.ExitStatus()
		}
	}
	return 127
}

func parse(args []string) (*config, error) {
	c := &config{}
	num := func(s string) (uint32, error) {
		n, err := strconv.ParseUint(s, 10, 32)
		return uint32(n), err
	}
	for len(args) > 0 {
		a := args[0]
		args = args[1:]
		if a == "--" {
			if len(args) < 2 {
				return nil, errors.New("init: want PATH ARGV0 after --")
			}
			c.path, c.argv = args[0], args[1:]
			return c, nil
		}
		var err error
		switch a {
		case "-keepcaps":
			c.keepCaps = true
			continue
		case "-pidns":
			c.pidns = true
			continue
		}
		if len(args) == 0 {
			return nil, errors.New("init: " + a + ": missing value")
		}
		v := args[0]
		args = args[1:]
		switch a {
		case "-uid":
			c.uid, err = num(v)
		case "-gid":
			c.gid, err = num(v)
		case "-groups":
			c.groups = []uint32{}
			for _, g := range strings.Split(v, ",") {
				if g == "" {
					continue
				}
				n, gerr := num(g)
				if gerr != nil {
					err = gerr
					break
				}
				c.groups = append(c.groups, n)
			}
		case "-hide":
			c.hide = append(c.hide, v)
		case "-cgroup":
			c.cgroups = append(c.cgroups, v)
		case "-sandbox":
			c.sandbox = v
		default:
			return nil, errors.New("init: unknown argument " + a)
		}
		if err != nil {
			return nil, errors.New("init: " + a + " " + v + ": " + err.Error())
		}
	}
	return nil, errors.New("init: no command")
}

func wrap(op, path string, err error) error {
	return errors.New(op + " " + path + ": " + err.Error())
}

// setup confines the namespaces init was started in, then drops what the
// task must not have. The working dir is restored after the mounts.
func setup(c *config) error {
	wd, err := os.Getwd()
	if err != nil {
		return wrap("getwd", "", err)
	}
	// Nothing done here propagates back to the node; the node's unmounts
	// (volumes released) still propagate in.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return wrap("mount", "/ (slave)", err)
	}
	sbFd := -1
	var sbStat unix.Stat_t
	if c.sandbox != "" {
		if sbFd, err = unix.Open(c.sandbox, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return wrap("open sandbox", c.sandbox, err)
		}
		defer unix.Close(sbFd)
		if err := unix.Fstat(sbFd, &sbStat); err != nil {
			return wrap("stat sandbox", c.sandbox, err)
		}
	}
	hide := append([]string(nil), c.hide...)
	sort.Strings(hide) // parents first: a path under a hidden one is gone
	for _, p := range hide {
		if err := hidePath(p); err != nil {
			return err
		}
	}
	if c.sandbox != "" {
		if c.uid != 0 {
			// A directory on the way to the sandbox the task could not
			// traverse (a 0700 /root, a test's temp dir) is replaced by
			// an empty one holding just that way.
			if err := openPath(c.sandbox, c.uid, c.gid, c.groups); err != nil {
				return err
			}
		}
		var st unix.Stat_t
		if err := unix.Stat(c.sandbox, &st); err != nil || st.Dev != sbStat.Dev || st.Ino != sbStat.Ino {
			if err := os.MkdirAll(c.sandbox, 0o755); err != nil {
				return wrap("mkdir", c.sandbox, err)
			}
			src := "/proc/self/fd/" + strconv.Itoa(sbFd)
			if err := unix.Mount(src, c.sandbox, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				return wrap("bind sandbox", c.sandbox, err)
			}
		}
	}
	// A /proc of the task's own pid namespace; in the node's, one that
	// shows only the task's own user's processes.
	procOpts := ""
	if !c.pidns {
		procOpts = "hidepid=invisible"
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, procOpts); err != nil {
		return wrap("mount", "/proc", err)
	}
	// The ipc namespace's own POSIX shared memory.
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if err := unix.Mount("shm", "/dev/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
			return wrap("mount", "/dev/shm", err)
		}
	}
	if err := unix.Chdir(wd); err != nil {
		return wrap("chdir", wd, err)
	}
	if c.keepCaps {
		return nil
	}
	for cp := 0; cp <= 63; cp++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(cp), 0, 0, 0); err == unix.EINVAL {
			break
		} else if err != nil {
			return wrap("drop capability", strconv.Itoa(cp), err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return wrap("clear ambient capabilities", "", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return wrap("no_new_privs", "", err)
	}
	return nil
}

// enterCgroups moves init into dirs, the cgroups the supervisor left to it
// (cpu: so that its own start-up does not eat the task's cpu quota), then
// makes a cgroup namespace rooted at the task's cgroups (init is in all of
// them now, which a clone flag could not guarantee for cgroup v2).
func enterCgroups(dirs []string) error {
	for _, d := range dirs {
		fd, err := unix.Open(d+"/cgroup.procs", unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return wrap("cgroup", d, err)
		}
		_, err = unix.Write(fd, []byte("0"))
		unix.Close(fd)
		if err != nil {
			return wrap("cgroup", d, err)
		}
	}
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return wrap("unshare", "cgroup", err)
	}
	return nil
}

// hidePath covers directory p with an empty read-only-for-others tmpfs,
// or file p with /dev/null. A missing p is fine.
func hidePath(p string) error {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return nil
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return tmpfsOver(p)
	}
	if err := unix.Mount("/dev/null", p, "", unix.MS_BIND, ""); err != nil {
		return wrap("hide", p, err)
	}
	return nil
}

func tmpfsOver(p string) error {
	if err := unix.Mount("hidden", p, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755,size=64k,nr_inodes=256"); err != nil {
		return wrap("hide", p, err)
	}
	return nil
}

// openPath covers the first directory on the way to dir that uid cannot
// search.
func openPath(dir string, uid, gid uint32, groups []uint32) error {
	p := "/"
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return nil // made below
		}
		if !searchable(&st, uid, gid, groups) {
			return tmpfsOver(p)
		}
		if p == "/" {
			p += part
		} else {
			p += "/" + part
		}
	}
	return nil
}

func searchable(st *unix.Stat_t, uid, gid uint32, groups []uint32) bool {
	switch {
	case st.Uid == uid:
		return st.Mode&0o100 != 0
	case st.Gid == gid || containsGid(groups, st.Gid):
		return st.Mode&0o010 != 0
	}
	return st.Mode&0o001 != 0
}

func containsGid(gs []uint32, g uint32) bool {
	for _, x := range gs {
		if x == g {
			return true
		}
	}
	return false
}
