// dcos's task init: the first process of an isolated task, pid 1 of its
// pid namespace. The supervisor (package taskinit) starts it as root in
// new mount, pid, ipc and uts namespaces (and in the task's cgroups and
// network namespace); it confines its namespaces, starts the task with the
// task's credentials, reaps orphans and exits with the task's status.
//
// A static C program (gcc -static -Os -s, glibc), built by go generate
// into ../taskinit.bin and embedded in the supervisor, which runs it from
// a sealed memfd. It replaced a Go program of the same behaviour: the Go
// runtime's start cost ~5 ms per task start on a small machine, paid at
// every isolated task start and charged to the task's cgroups.
//
// Usage (argv, built by package taskinit):
//
//	init [-uid N] [-gid N] [-groups N,N] [-keepcaps] [-pidns] [-hide PATH]...
//	     [-cgroup DIR]... [-sandbox DIR] [-hostname NAME] -- PATH ARGV0 ARGS...
//
// or, in container mode (an image's entrypoint as pid 1):
//
//	init -rootfs DIR -pidns [-uid N] [-gid N] [-groups N,N] [-caps N,N]
//	     [-bind SRC DST]... [-robind SRC DST]... [-readonly] [-dir DIR]
//	     [-hostname NAME] [-cgroup DIR]... -- PATH ARGV0 ARGS...
//
// Container mode makes the node's mounts slaves, binds DIR (the image's
// root, which the driver mounted) onto itself, binds each SRC (a node
// path) onto DST inside it (made, a directory or an empty file like SRC,
// when missing; symbolic links in the image resolved inside DIR; -robind
// read-only, recursively), mounts a /proc with runc's default masks, a
// read-only /sys (an empty read-only tmpfs where sysfs cannot be mounted)
// and a /dev of its own (the node's null, zero, full, random, urandom and
// tty bound in, a new devpts, /dev/shm), joins the cgroups DIR and a new
// cgroup namespace, pivot_roots into DIR and detaches the node's root,
// changes to -dir (default /), remounts / read-only with -readonly, sets
// the hostname, then the credentials: uid 0 keeps the capabilities -caps
// (numbers; none without it) in its bounding, effective and permitted
// sets, without no_new_privs; any other uid has none and no_new_privs.
// Then init execs PATH (looked up in the environment's PATH when it has
// no slash): the entrypoint is pid 1, there is no init left, no reaper.
// Its status pipe closes on exec: EOF without "err" is the start.
//
// or, to run a command inside a running task (a health check's):
//
//	init -enter PID [-uid N] [-gid N] [-groups N,N] [-keepcaps | -caps N,N]
//	     [-cgroup DIR]... [-sandbox DIR] [-tty] -- PATH ARGV0 ARGS...
//
// Enter mode joins the cgroups DIR (the task's) and the ipc, uts, net,
// pid, cgroup and mount namespaces of process PID (those that differ from
// its own), drops
// capabilities as for a task (unless -keepcaps; -caps: those of a
// container's root are kept, without no_new_privs), changes to DIR
// (setns into a container's mount namespace makes its root the root and
// the working directory), then
// forks PATH (looked up in the environment's PATH when it has no slash)
// with the credentials, waits for it and exits with its status (128+N
// for signal N). It has no status pipe: errors go to stderr, exit 127. It
// dies with its parent (the agent), and its child with it. With -tty the
// child leads a new session whose controlling terminal is its stdin (a
// pty slave that is nobody's terminal yet): its process group is then one
// of the task's pid namespace, which a shell's job control needs.
//
// fd 3 is the status pipe to the supervisor: one line "ok" once the task
// runs (its execve succeeded) or "err MESSAGE" when it could not start
// (then the exit code is 127), and, when the task is killed by a signal,
// "signal N" before init exits with 128+N. The environment is the task's.
//
// Error texts follow Go's (the former init's, which tests and users see):
// errno texts are glibc's with a lower-case first letter, as Go's are.
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <stdint.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
// <linux/mount.h> clashes with glibc's <sys/mount.h>: mount_setattr's
// bits, as the kernel defines them.
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
struct dcos_mount_attr {
	uint64_t attr_set, attr_clr, propagation, userns_fd;
};

enum { STATUS_FD = 3, MAX_GROUPS = 65536 };

static const int waited[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD};

struct config {
	unsigned uid, gid;
	int have_groups; // -groups given (even empty): credentials are set
	gid_t *groups;
	size_t ngroups;
	int keepcaps, pidns;
	int tty; // enter mode: the command leads a new session on its stdin's terminal
	char **hide;
	size_t nhide;
	char **cgroups;
	size_t ncgroups;
	const char *sandbox;
	const char *path;
	char **argv;
	// Container mode (-rootfs) and what goes with it.
	const char *rootfs, *hostname, *dir;
	int readonly;
	struct bind {
		const char *src, *dst;
		int ro;
	} *binds;
	size_t nbinds;
	int have_caps; // -caps given: the capabilities a root task keeps
	uint64_t caps;
};

static void write_status(const char *s) {
	size_t n = strlen(s);
	while (n > 0) {
		ssize_t w = write(STATUS_FD, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

// The error message being built ("err " + message + "\n" once complete).
static char msg[8192];

static void setmsg(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
}

// errstr is errno e's text as Go's syscall.Errno.Error gives it.
static const char *errstr(int e) {
	static char b[2][256];
	static int i;
	char *s = b[i++ & 1];
	snprintf(s, sizeof b[0], "%s", strerror(e));
	if (strncmp(s, "Unknown error", 13) == 0)
		snprintf(s, sizeof b[0], "errno %d", e);
	else
		s[0] = (char)tolower((unsigned char)s[0]);
	return s;
}

// wrap sets the message "op path: errno text" and returns -1.
static int wrap(const char *op, const char *path, int e) {
	setmsg("%s %s: %s", op, path, errstr(e));
	return -1;
}

static void *xalloc(size_t n) {
	void *p = calloc(1, n ? n : 1);
	if (!p) {
		write_status("err init: out of memory\n");
		_exit(127);
	}
	return p;
}

// parse_num is strconv.ParseUint(s, 10, 32); on error it sets *err to
// the text of Go's error.
static int parse_num(const char *s, unsigned *out, const char **err) {
	unsigned long long v = 0;
	int range = 0;
	if (*s == '\0')
		goto syntax;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			goto syntax;
		if (!range) {
			v = v * 10 + (unsigned)(*p - '0');
			if (v > 0xffffffffULL)
				range = 1;
		}
	}
	if (range) {
		*err = "value out of range";
		return -1;
	}
	*out = (unsigned)v;
	return 0;
syntax:
	*err = "invalid syntax";
	return -1;
}

static int parse(int argc, char **argv, struct config *c) {
	int i = 1;
	c->hide = xalloc(sizeof(char *) * (size_t)argc);
	c->cgroups = xalloc(sizeof(char *) * (size_t)argc);
	c->binds = xalloc(sizeof(struct bind) * (size_t)argc);
	while (i < argc) {
		const char *a = argv[i++];
		if (strcmp(a, "--") == 0) {
			if (argc - i < 2) {
				setmsg("init: want PATH ARGV0 after --");
				return -1;
			}
			c->path = argv[i];
			c->argv = &argv[i + 1];
			return 0;
		}
		if (strcmp(a, "-keepcaps") == 0) {
			c->keepcaps = 1;
			continue;
		}
		if (strcmp(a, "-pidns") == 0) {
			c->pidns = 1;
			continue;
		}
		if (strcmp(a, "-tty") == 0) {
			c->tty = 1;
			continue;
		}
		if (strcmp(a, "-readonly") == 0) {
			c->readonly = 1;
			continue;
		}
		if (strcmp(a, "-bind") == 0 || strcmp(a, "-robind") == 0) {
			if (argc - i < 2) {
				setmsg("init: %s: want SOURCE TARGET", a);
				return -1;
			}
			struct bind *b = &c->binds[c->nbinds++];
			b->src = argv[i];
			b->dst = argv[i + 1];
			b->ro = a[1] == 'r';
			i += 2;
			continue;
		}
		if (i >= argc) {
			setmsg("init: %s: missing value", a);
			return -1;
		}
		const char *v = argv[i++];
		const char *nerr = NULL, *bad = v;
		if (strcmp(a, "-uid") == 0) {
			parse_num(v, &c->uid, &nerr);
		} else if (strcmp(a, "-gid") == 0) {
			parse_num(v, &c->gid, &nerr);
		} else if (strcmp(a, "-groups") == 0) {
			size_t n = 1;
			for (const char *p = v; *p; p++)
				n += *p == ',';
			free(c->groups);
			c->groups = xalloc(sizeof(gid_t) * n);
			c->ngroups = 0;
			c->have_groups = 1;
			char *dup = strdup(v), *save = NULL;
			if (!dup)
				return setmsg("init: out of memory"), -1;
			// strings.Split keeps empty fields; they are skipped, as is
			// what strtok_r skips.
			for (char *g = strtok_r(dup, ",", &save); g; g = strtok_r(NULL, ",", &save)) {
				unsigned x;
				if (parse_num(g, &x, &nerr) < 0) {
					bad = g;
					break;
				}
				c->groups[c->ngroups++] = x;
			}
			if (nerr) {
				setmsg("init: %s %s: strconv.ParseUint: parsing \"%s\": %s", a, v, bad, nerr);
				free(dup);
				return -1;
			}
			free(dup);
		} else if (strcmp(a, "-hide") == 0) {
			c->hide[c->nhide++] = (char *)v;
		} else if (strcmp(a, "-cgroup") == 0) {
			c->cgroups[c->ncgroups++] = (char *)v;
		} else if (strcmp(a, "-sandbox") == 0) {
			c->sandbox = v;
		} else if (strcmp(a, "-rootfs") == 0) {
			c->rootfs = v;
		} else if (strcmp(a, "-hostname") == 0) {
			c->hostname = v;
		} else if (strcmp(a, "-dir") == 0) {
			c->dir = v;
		} else if (strcmp(a, "-caps") == 0) {
			// Capability numbers, comma-separated (empty: none).
			c->have_caps = 1;
			c->caps = 0;
			char *dup = strdup(v), *save = NULL;
			if (!dup)
				return setmsg("init: out of memory"), -1;
			for (char *n = strtok_r(dup, ",", &save); n; n = strtok_r(NULL, ",", &save)) {
				unsigned x;
				if (parse_num(n, &x, &nerr) < 0 || x > 63) {
					setmsg("init: -caps %s: bad capability %s", v, n);
					free(dup);
					return -1;
				}
				c->caps |= 1ULL << x;
			}
			free(dup);
		} else {
			setmsg("init: unknown argument %s", a);
			return -1;
		}
		if (nerr) {
			setmsg("init: %s %s: strconv.ParseUint: parsing \"%s\": %s", a, v, bad, nerr);
			return -1;
		}
	}
	setmsg("init: no command");
	return -1;
}

// getwd is os.Getwd: $PWD when it names the working directory, else
// getcwd.
static char *getwd_go(void) {
	const char *pwd = getenv("PWD");
	struct stat dot, st;
	if (pwd && pwd[0] == '/' && stat(".", &dot) == 0 && stat(pwd, &st) == 0 &&
	    dot.st_dev == st.st_dev && dot.st_ino == st.st_ino)
		return strdup(pwd);
	return getcwd(NULL, 0);
}

static int tmpfs_over(const char *p) {
	if (mount("hidden", p, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k,nr_inodes=256") < 0)
		return wrap("hide", p, errno);
	return 0;
}

// hide_path covers directory p with an empty tmpfs, or file p with
// /dev/null. A missing p is fine.
static int hide_path(const char *p) {
	struct stat st;
	if (stat(p, &st) < 0)
		return 0;
	if (S_ISDIR(st.st_mode))
		return tmpfs_over(p);
	if (mount("/dev/null", p, "", MS_BIND, NULL) < 0)
		return wrap("hide", p, errno);
	return 0;
}

static int searchable(const struct stat *st, const struct config *c) {
	if (st->st_uid == c->uid)
		return (st->st_mode & 0100) != 0;
	int member = st->st_gid == c->gid;
	for (size_t i = 0; !member && i < c->ngroups; i++)
		member = c->groups[i] == st->st_gid;
	if (member)
		return (st->st_mode & 0010) != 0;
	return (st->st_mode & 0001) != 0;
}

// open_path covers the first directory on the way to dir that the task's
// uid cannot search.
static int open_path(const char *dir, const struct config *c) {
	const char *s = dir, *e = dir + strlen(dir);
	while (*s == '/')
		s++;
	while (e > s && e[-1] == '/')
		e--;
	size_t cap = strlen(dir) * 2 + 2;
	char *p = xalloc(cap);
	strcpy(p, "/");
	const char *part = s;
	for (;;) {
		const char *end = memchr(part, '/', (size_t)(e - part));
		if (!end)
			end = e;
		struct stat st;
		if (stat(p, &st) < 0)
			break; // made below
		if (!searchable(&st, c)) {
			int r = tmpfs_over(p);
			free(p);
			return r;
		}
		if (strcmp(p, "/") != 0)
			strcat(p, "/");
		strncat(p, part, (size_t)(end - part));
		if (end == e)
			break;
		part = end + 1;
	}
	free(p);
	return 0;
}

// mkdir_all is os.MkdirAll(path, 0755); on error it sets *failed to the
// path of Go's *PathError.
static int mkdir_all(const char *path, char **failed) {
	struct stat st;
	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return 0;
		*failed = strdup(path);
		errno = ENOTDIR;
		return -1;
	}
	size_t i = strlen(path);
	while (i > 0 && path[i - 1] == '/')
		i--;
	size_t j = i;
	while (j > 0 && path[j - 1] != '/')
		j--;
	if (j > 1) {
		char *parent = strndup(path, j - 1);
		if (!parent)
			return errno = ENOMEM, -1;
		int r = mkdir_all(parent, failed);
		free(parent);
		if (r < 0)
			return -1;
	}
	if (mkdir(path, 0755) < 0) {
		int e = errno;
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
			return 0;
		*failed = strdup(path);
		errno = e;
		return -1;
	}
	return 0;
}

static int cmpstr(const void *a, const void *b) {
	return strcmp(*(char *const *)a, *(char *const *)b);
}

// setup confines the namespaces init was started in, then drops what the
// task must not have. The working dir is restored after the mounts.
static int setup(struct config *c) {
	char *wd = getwd_go();
	if (!wd)
		return wrap("getwd", "", errno);
	// Nothing done here propagates back to the node; the node's unmounts
	// (volumes released) still propagate in.
	if (mount("", "/", "", MS_REC | MS_SLAVE, NULL) < 0)
		return wrap("mount", "/ (slave)", errno);
	int sbfd = -1;
	struct stat sbst;
	if (c->sandbox) {
		if ((sbfd = open(c->sandbox, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
			return wrap("open sandbox", c->sandbox, errno);
		if (fstat(sbfd, &sbst) < 0)
			return wrap("stat sandbox", c->sandbox, errno);
	}
	qsort(c->hide, c->nhide, sizeof(char *), cmpstr); // parents first
	for (size_t i = 0; i < c->nhide; i++)
		if (hide_path(c->hide[i]) < 0)
			return -1;
	if (c->sandbox) {
		// A directory on the way to the sandbox the task could not
		// traverse is replaced by an empty one holding just that way.
		if (c->uid != 0 && open_path(c->sandbox, c) < 0)
			return -1;
		struct stat st;
		if (stat(c->sandbox, &st) < 0 || st.st_dev != sbst.st_dev || st.st_ino != sbst.st_ino) {
			char *failed = NULL;
			if (mkdir_all(c->sandbox, &failed) < 0) {
				int e = errno;
				setmsg("mkdir %s: mkdir %s: %s", c->sandbox, failed ? failed : c->sandbox, errstr(e));
				return -1;
			}
			char src[64];
			snprintf(src, sizeof src, "/proc/self/fd/%d", sbfd);
			if (mount(src, c->sandbox, "", MS_BIND | MS_REC, NULL) < 0)
				return wrap("bind sandbox", c->sandbox, errno);
		}
		close(sbfd);
	}
	// A /proc of the task's own pid namespace; in the node's, one that
	// shows only the task's own user's processes.
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, c->pidns ? NULL : "hidepid=invisible") < 0)
		return wrap("mount", "/proc", errno);
	// The ipc namespace's own POSIX shared memory.
	struct stat shm;
	if (stat("/dev/shm", &shm) == 0 && S_ISDIR(shm.st_mode) &&
	    mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0)
		return wrap("mount", "/dev/shm", errno);
	if (chdir(wd) < 0)
		return wrap("chdir", wd, errno);
	free(wd);
	if (c->hostname && sethostname(c->hostname, strlen(c->hostname)) < 0)
		return wrap("sethostname", c->hostname, errno);
	if (c->keepcaps)
		return 0;
	for (int cp = 0; cp <= 63; cp++) {
		if (prctl(PR_CAPBSET_DROP, cp, 0, 0, 0) == 0)
			continue;
		if (errno == EINVAL)
			break;
		char n[16];
		snprintf(n, sizeof n, "%d", cp);
		return wrap("drop capability", n, errno);
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return wrap("clear ambient capabilities", "", errno);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return wrap("no_new_privs", "", errno);
	return 0;
}

// join_cgroups moves the calling process into c->cgroups.
static int join_cgroups(const struct config *c) {
	for (size_t i = 0; i < c->ncgroups; i++) {
		const char *d = c->cgroups[i];
		size_t n = strlen(d) + sizeof "/cgroup.procs";
		char *p = xalloc(n);
		snprintf(p, n, "%s/cgroup.procs", d);
		int fd = open(p, O_WRONLY | O_CLOEXEC);
		free(p);
		if (fd < 0)
			return wrap("cgroup", d, errno);
		ssize_t w;
		do
			w = write(fd, "0", 1);
		while (w < 0 && errno == EINTR);
		int e = errno;
		close(fd);
		if (w < 0)
			return wrap("cgroup", d, e);
	}
	return 0;
}

// enter_cgroups moves init into the cgroups the supervisor left to it,
// then makes a cgroup namespace rooted at the task's cgroups.
static int enter_cgroups(const struct config *c) {
	if (join_cgroups(c) < 0)
		return -1;
	if (unshare(CLONE_NEWCGROUP) < 0)
		return wrap("unshare", "cgroup", errno);
	return 0;
}

static int fail(void) {
	size_t n = strlen(msg);
	char *b = xalloc(n + 6);
	memcpy(b, "err ", 4);
	memcpy(b + 4, msg, n);
	memcpy(b + 4 + n, "\n", 2);
	write_status(b);
	return 127;
}

// start forks the task and returns its pid once its execve succeeded, or
// -1 with the message set.
static pid_t start(const struct config *c, const sigset_t *oldmask) {
	char *wd = getwd_go();
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return wrap("exec", c->path, errno), -1;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return wrap("exec", c->path, e), -1;
	}
	if (pid == 0) {
		// The task: default dispositions and the mask init had.
		struct sigaction dfl = {.sa_handler = SIG_DFL};
		for (int s = 1; s < NSIG; s++)
			if (s != SIGKILL && s != SIGSTOP)
				sigaction(s, &dfl, NULL);
		sigprocmask(SIG_SETMASK, oldmask, NULL);
		int e = 0;
		if (c->uid != 0 || c->gid != 0 || c->have_groups) {
			if (setgroups(c->ngroups, c->groups) < 0 || setgid(c->gid) < 0 || setuid(c->uid) < 0)
				e = errno;
		}
		if (!e && wd && wd[0] && chdir(wd) < 0)
			e = errno;
		for (int fd = 0; !e && fd <= 2; fd++)
			if (fcntl(fd, F_SETFD, 0) < 0)
				e = errno;
		if (!e) {
			extern char **environ;
			execve(c->path, c->argv, environ);
			e = errno;
		}
		while (write(p[1], &e, sizeof e) < 0 && errno == EINTR)
			;
		_exit(253);
	}
	close(p[1]);
	int e = 0;
	ssize_t n;
	do
		n = read(p[0], &e, sizeof e);
	while (n < 0 && errno == EINTR);
	close(p[0]);
	free(wd);
	if (n > 0) {
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		return wrap("exec", c->path, n == sizeof e ? e : EPIPE), -1;
	}
	return pid;
}

// drop_bounding empties the capability bounding set but for keep's bits.
static int drop_bounding(uint64_t keep) {
	for (int cp = 0; cp <= 63; cp++) {
		if (keep & (1ULL << cp))
			continue;
		if (prctl(PR_CAPBSET_DROP, cp, 0, 0, 0) == 0)
			continue;
		if (errno == EINVAL)
			break; // past the kernel's last capability
		char n[16];
		snprintf(n, sizeof n, "%d", cp);
		return wrap("drop capability", n, errno);
	}
	return 0;
}

// set_caps makes the effective and permitted sets keep (those of keep's
// capabilities the process has) and empties the inheritable and ambient
// sets.
static int set_caps(uint64_t keep) {
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) < 0)
		return wrap("capget", "", errno);
	uint64_t have = (uint64_t)d[0].permitted | (uint64_t)d[1].permitted << 32;
	keep &= have;
	d[0].effective = d[0].permitted = (uint32_t)keep;
	d[1].effective = d[1].permitted = (uint32_t)(keep >> 32);
	d[0].inheritable = d[1].inheritable = 0;
	if (syscall(SYS_capset, &h, d) < 0)
		return wrap("capset", "", errno);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return wrap("clear ambient capabilities", "", errno);
	return 0;
}

// under is root + p, for messages, and a link's target
// beside it.
static char *under(const char *root, const char *p) {
	size_t n = strlen(root) + strlen(p) + 2;
	char *s = xalloc(n);
	snprintf(s, n, "%s%s%s", root, p[0] == '/' ? "" : "/", p);
	return s;
}

// in_root opens path inside the directory rootfd as if it were the root
// (symbolic links in an image cannot lead out of it: openat2's
// RESOLVE_IN_ROOT), an O_PATH descriptor, following the mounts on the way.
// A missing path is made when kind is 'd' (a directory, and its parents)
// or 'f' (an empty file, its parents directories); kind 0: it must exist.
// A dangling link on the way is followed (inside the root): what it names
// is made.
static int in_root_n(int rootfd, const char *path, int kind, int depth);
static int in_root(int rootfd, const char *path, int kind) {
	return in_root_n(rootfd, path, kind, 0);
}

static int in_root_n(int rootfd, const char *path, int kind, int depth) {
	struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
	int fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof how);
	if (fd >= 0 || errno != ENOENT || !kind)
		return fd;
	char *parent = strdup(path);
	if (!parent)
		return errno = ENOMEM, -1;
	size_t n = strlen(parent);
	while (n > 0 && parent[n - 1] == '/')
		parent[--n] = '\0';
	char *slash = strrchr(parent, '/');
	const char *base = slash ? slash + 1 : parent;
	if (*base == '\0') {
		free(parent);
		return errno = ENOENT, -1;
	}
	char *b = strdup(base);
	if (slash == parent)
		parent[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(parent, "/");
	int pfd = in_root_n(rootfd, parent, 'd', depth);
	if (pfd < 0) {
		free(parent);
		free(b);
		return -1;
	}
	int r;
	if (kind == 'd') {
		r = mkdirat(pfd, b, 0755);
	} else {
		r = openat(pfd, b, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (r >= 0)
			close(r);
	}
	int e = errno;
	char link[PATH_MAX];
	ssize_t n2 = r < 0 && e == EEXIST ? readlinkat(pfd, b, link, sizeof link - 1) : -1;
	close(pfd);
	free(b);
	if (n2 > 0) {
		// A dangling link: make what it names, inside the root.
		if (depth >= 40) {
			free(parent);
			return errno = ELOOP, -1;
		}
		link[n2] = '\0';
		char *next = link[0] == '/' ? strdup(link) : under(parent, link);
		free(parent);
		if (!next)
			return errno = ENOMEM, -1;
		int fd2 = in_root_n(rootfd, next, kind, depth + 1);
		free(next);
		if (fd2 < 0)
			return -1;
		close(fd2);
	} else {
		free(parent);
		if (r < 0 && e != EEXIST)
			return errno = e, -1;
	}
	return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof how);
}

// fdpath is the /proc/self/fd path of fd (a buffer of 4, in turn).
static const char *fdpath(int fd) {
	static char b[4][64];
	static int i;
	char *s = b[i++ & 3];
	snprintf(s, sizeof b[0], "/proc/self/fd/%d", fd);
	return s;
}

// ro_remount makes the mount at p read-only (and the mounts beneath it
// with recursive), keeping its other flags.
static int ro_remount(const char *p, int recursive) {
	struct dcos_mount_attr a = {.attr_set = MOUNT_ATTR_RDONLY};
	if (syscall(SYS_mount_setattr, AT_FDCWD, p, recursive ? AT_RECURSIVE : 0, &a, sizeof a) == 0)
		return 0;
	if (errno != ENOSYS)
		return -1;
	// Before Linux 5.12: the top mount only, its flags restated.
	struct statvfs sv;
	if (statvfs(p, &sv) < 0)
		return -1;
	unsigned long fl = MS_BIND | MS_REMOUNT | MS_RDONLY;
	static const struct {
		unsigned long st, ms;
	} fls[] = {{ST_NOSUID, MS_NOSUID}, {ST_NODEV, MS_NODEV}, {ST_NOEXEC, MS_NOEXEC},
		   {ST_NOATIME, MS_NOATIME}, {ST_NODIRATIME, MS_NODIRATIME}, {ST_RELATIME, MS_RELATIME}};
	for (size_t i = 0; i < sizeof fls / sizeof fls[0]; i++)
		if (sv.f_flag & fls[i].st)
			fl |= fls[i].ms;
	return mount(NULL, p, NULL, fl, NULL);
}

// mount_in mounts (a bind of src with fstype NULL) at path inside the
// root, making the mount point (kind as in_root), and returns an O_PATH
// descriptor of the new mount's root, or -1 with the message set.
static int mount_in(int rootfd, const char *root, const char *src, const char *path, int kind, const char *fstype,
		    unsigned long flags, const char *data) {
	int fd = in_root(rootfd, path, kind);
	if (fd < 0)
		return wrap("mount point", under(root, path), errno), -1;
	if (!fstype)
		flags |= MS_BIND | MS_REC;
	if (mount(src, fdpath(fd), fstype ? fstype : "", flags, data) < 0) {
		int e = errno;
		close(fd);
		wrap(fstype ? fstype : "bind", under(root, path), e);
		return errno = e, -1;
	}
	close(fd);
	if ((fd = in_root(rootfd, path, 0)) < 0)
		return wrap("open", under(root, path), errno), -1;
	return fd;
}

// mask_proc covers the files of the new /proc (descriptor procfd) that
// tell about or act on the node, as runc's default masks and read-only
// paths do.
static int mask_proc(int procfd, const char *root) {
	static const char *const nulls[] = {"kcore", "keys", "latency_stats", "timer_list", "timer_stats", "sched_debug"};
	static const char *const empty[] = {"acpi", "scsi"};
	static const char *const ro[] = {"bus", "fs", "irq", "sys", "sysrq-trigger"};
	char p[96];
	struct stat st;
	for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", fdpath(procfd), nulls[i]);
		if (lstat(p, &st) == 0 && mount("/dev/null", p, "", MS_BIND, NULL) < 0)
			return wrap("mask", under(root, under("/proc", nulls[i])), errno);
	}
	for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", fdpath(procfd), empty[i]);
		if (lstat(p, &st) == 0 && mount("tmpfs", p, "tmpfs", MS_RDONLY, "size=0") < 0)
			return wrap("mask", under(root, under("/proc", empty[i])), errno);
	}
	for (size_t i = 0; i < sizeof ro / sizeof ro[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", fdpath(procfd), ro[i]);
		if (lstat(p, &st) < 0)
			continue;
		if (mount(p, p, "", MS_BIND | MS_REC, NULL) < 0 || ro_remount(p, 1) < 0)
			return wrap("read-only", under(root, under("/proc", ro[i])), errno);
	}
	return 0;
}

// make_dev fills the new /dev (descriptor devfd): the node's harmless
// device nodes bound in, a devpts of its own, /dev/shm and the usual
// links.
static int make_dev(int devfd, const char *root) {
	static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
	static const char *const links[][2] = {
	    {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
	    {"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"}};
	char p[96], src[32];
	for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
		int f = openat(devfd, nodes[i], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (f < 0)
			return wrap("create", under(root, under("/dev", nodes[i])), errno);
		close(f);
		snprintf(p, sizeof p, "%s/%s", fdpath(devfd), nodes[i]);
		snprintf(src, sizeof src, "/dev/%s", nodes[i]);
		if (mount(src, p, "", MS_BIND, NULL) < 0)
			return wrap("bind", src, errno);
	}
	if (mkdirat(devfd, "pts", 0755) < 0)
		return wrap("mkdir", under(root, "/dev/pts"), errno);
	snprintf(p, sizeof p, "%s/pts", fdpath(devfd));
	if (mount("devpts", p, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5") < 0)
		return wrap("devpts", under(root, "/dev/pts"), errno);
	if (mkdirat(devfd, "shm", 01777) < 0)
		return wrap("mkdir", under(root, "/dev/shm"), errno);
	snprintf(p, sizeof p, "%s/shm", fdpath(devfd));
	if (mount("shm", p, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=65536k") < 0)
		return wrap("tmpfs", under(root, "/dev/shm"), errno);
	for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
		if (symlinkat(links[i][0], devfd, links[i][1]) < 0)
			return wrap("symlink", under(root, under("/dev", links[i][1])), errno);
	return 0;
}

// container_mounts builds the container's mounts under c->rootfs: the
// root bound onto itself (pivot_root wants a mount point), the binds, a
// masked /proc, a read-only /sys and a /dev of its own.
static int container_mounts(const struct config *c, int *rootfdp) {
	const char *root = c->rootfs;
	if (mount(root, root, "", MS_BIND | MS_REC, NULL) < 0)
		return wrap("bind rootfs", root, errno);
	// Opened after the bind: the descriptor is the new mount's root.
	int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return wrap("open rootfs", root, errno);
	*rootfdp = rootfd;
	for (size_t i = 0; i < c->nbinds; i++) {
		const struct bind *b = &c->binds[i];
		struct stat st;
		if (stat(b->src, &st) < 0)
			return wrap("bind", b->src, errno);
		int fd = mount_in(rootfd, root, b->src, b->dst, S_ISDIR(st.st_mode) ? 'd' : 'f', NULL, 0, NULL);
		if (fd < 0)
			return -1;
		if (b->ro && ro_remount(fdpath(fd), 1) < 0)
			return wrap("read-only", under(root, b->dst), errno);
		close(fd);
	}
	int fd = mount_in(rootfd, root, "proc", "/proc", 'd', "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	if (fd < 0 || mask_proc(fd, root) < 0)
		return -1;
	close(fd);
	fd = mount_in(rootfd, root, "sysfs", "/sys", 'd', "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	if (fd < 0 && errno == EPERM) {
		// sysfs cannot be mounted here (a network namespace this user
		// namespace does not own): an empty read-only /sys rather than
		// the node's, whose devices and network a task must not see.
		fd = mount_in(rootfd, root, "sysfs", "/sys", 'd', "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
			      "size=0,mode=0555");
	}
	if (fd < 0)
		return -1;
	char p[96];
	struct stat st;
	snprintf(p, sizeof p, "%s/firmware", fdpath(fd));
	if (lstat(p, &st) == 0 && mount("tmpfs", p, "tmpfs", MS_RDONLY, "size=0") < 0)
		return wrap("mask", under(root, "/sys/firmware"), errno);
	close(fd);
	fd = mount_in(rootfd, root, "tmpfs", "/dev", 'd', "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k");
	if (fd < 0 || make_dev(fd, root) < 0)
		return -1;
	close(fd);
	return 0;
}

// container runs c->path as the container's pid 1: the init itself
// becomes the entrypoint (see the usage above). It returns only on
// failure, with the message set.
static int container(const struct config *c, const sigset_t *oldmask) {
	if (!c->pidns)
		return setmsg("init: -rootfs needs -pidns"), -1;
	// Nothing done here propagates back to the node; the node's unmounts
	// (volumes released) still propagate in.
	if (mount("", "/", "", MS_REC | MS_SLAVE, NULL) < 0)
		return wrap("mount", "/ (slave)", errno);
	int rootfd = -1;
	if (container_mounts(c, &rootfd) < 0)
		return -1;
	// The cgroups are the node's paths: joined before the node's files
	// are gone.
	if (join_cgroups(c) < 0)
		return -1;
	if (unshare(CLONE_NEWCGROUP) < 0)
		return wrap("unshare", "cgroup", errno);
	// pivot_root(".", ".") stacks the old root on the new one; detaching
	// it leaves the new one (runc's way, no directory for the old root).
	if (fchdir(rootfd) < 0)
		return wrap("chdir", c->rootfs, errno);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return wrap("pivot_root", c->rootfs, errno);
	if (umount2(".", MNT_DETACH) < 0)
		return wrap("unmount", "the old root", errno);
	close(rootfd);
	const char *dir = c->dir && c->dir[0] ? c->dir : "/";
	if (chdir("/") < 0 || chdir(dir) < 0)
		return wrap("chdir", dir, errno);
	if (c->readonly && ro_remount("/", 0) < 0)
		return wrap("read-only", "/", errno);
	if (c->hostname && sethostname(c->hostname, strlen(c->hostname)) < 0)
		return wrap("sethostname", c->hostname, errno);
	uint64_t keep = c->uid == 0 && c->have_caps ? c->caps : 0;
	if (drop_bounding(keep) < 0)
		return -1;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return wrap("clear ambient capabilities", "", errno);
	if (c->uid != 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return wrap("no_new_privs", "", errno);
	if (setgroups(c->ngroups, c->groups) < 0)
		return wrap("setgroups", "", errno);
	if (setgid(c->gid) < 0) {
		char n[16];
		snprintf(n, sizeof n, "%u", c->gid);
		return wrap("setgid", n, errno);
	}
	if (setuid(c->uid) < 0) {
		char n[16];
		snprintf(n, sizeof n, "%u", c->uid);
		return wrap("setuid", n, errno);
	}
	if (c->uid == 0 && set_caps(keep) < 0)
		return -1;
	// The entrypoint gets default dispositions and the mask init had;
	// fd 3 closes on exec (EOF on the status pipe: started).
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &dfl, NULL);
	sigprocmask(SIG_SETMASK, oldmask, NULL);
	for (int fd = 0; fd <= 2; fd++)
		if (fcntl(fd, F_SETFD, 0) < 0)
			return wrap("fd", "", errno);
	execvp(c->path, c->argv);
	int e = errno;
	// The message must reach the pipe: SIGPIPE ignored again.
	struct sigaction ign = {.sa_handler = SIG_IGN};
	sigaction(SIGPIPE, &ign, NULL);
	if (strchr(c->path, '/'))
		return wrap("exec", c->path, e);
	setmsg("exec %s: %s in the image's PATH", c->path, errstr(e));
	return -1;
}

// enter_ns joins the namespaces of pid that differ from the caller's; the
// mount namespace last (the others are opened through its /proc).
static int enter_ns(const char *pid) {
	static const char *const names[] = {"ipc", "uts", "net", "pid", "cgroup", "mnt"};
	int fds[6];
	for (size_t i = 0; i < 6; i++) {
		char theirs[64], ours[64];
		snprintf(theirs, sizeof theirs, "/proc/%s/ns/%s", pid, names[i]);
		snprintf(ours, sizeof ours, "/proc/self/ns/%s", names[i]);
		struct stat a, b;
		fds[i] = -1;
		if (stat(theirs, &a) < 0)
			return wrap("stat", theirs, errno);
		if (stat(ours, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			continue;
		if ((fds[i] = open(theirs, O_RDONLY | O_CLOEXEC)) < 0)
			return wrap("open", theirs, errno);
	}
	for (size_t i = 0; i < 6; i++) {
		if (fds[i] < 0)
			continue;
		if (setns(fds[i], 0) < 0)
			return wrap("setns", names[i], errno);
		close(fds[i]);
	}
	return 0;
}

// enter runs c->path in the task of process pid (see the usage above).
static int enter(const char *pid, struct config *c) {
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	// Not to be ptraced or have its /proc opened by the task's processes
	// (its child joins their pid namespace) until the command's exec,
	// which makes it dumpable again.
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (join_cgroups(c) < 0 || enter_ns(pid) < 0)
		goto fail;
	if (c->sandbox && chdir(c->sandbox) < 0) {
		wrap("chdir", c->sandbox, errno);
		goto fail;
	}
	if (c->have_caps) {
		// A container's root: its capabilities, no no_new_privs (the
		// effective and permitted sets are cut in the child, after the
		// credentials).
		if (drop_bounding(c->caps) < 0)
			goto fail;
	} else if (!c->keepcaps) {
		for (int cp = 0; cp <= 63; cp++) {
			if (prctl(PR_CAPBSET_DROP, cp, 0, 0, 0) == 0 || errno == EINVAL)
				continue;
			if (errno == EPERM && geteuid() != 0)
				break; // an unprivileged agent: nothing to drop
			char n[16];
			snprintf(n, sizeof n, "%d", cp);
			wrap("drop capability", n, errno);
			goto fail;
		}
		prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
			wrap("no_new_privs", "", errno);
			goto fail;
		}
	}
	pid_t child = fork(); // in the task's pid namespace
	if (child < 0) {
		wrap("fork", c->path, errno);
		goto fail;
	}
	if (child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		if (c->have_groups && (setgroups(c->ngroups, c->groups) < 0 || setgid(c->gid) < 0 || setuid(c->uid) < 0)) {
			fprintf(stderr, "enter: credentials: %s\n", errstr(errno));
			_exit(127);
		}
		if (c->have_caps && set_caps(c->caps) < 0) {
			fprintf(stderr, "enter: %s\n", msg);
			_exit(127);
		}
		// A change of credentials cleared it; it outlives the exec.
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		if (c->tty && (setsid() < 0 || ioctl(0, TIOCSCTTY, 0) < 0)) {
			fprintf(stderr, "enter: terminal: %s\n", errstr(errno));
			_exit(127);
		}
		execvp(c->path, c->argv);
		fprintf(stderr, "exec %s: %s\n", c->path, errstr(errno));
		_exit(127);
	}
	int st;
	while (waitpid(child, &st, 0) < 0)
		if (errno != EINTR)
			return 127;
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
fail:
	fprintf(stderr, "enter: %s\n", msg);
	return 127;
}

int main(int argc, char **argv) {
	if (argc > 2 && strcmp(argv[1], "-enter") == 0) {
		const char *pid = argv[2];
		unsigned n;
		const char *err;
		if (parse_num(pid, &n, &err) < 0 || n == 0) {
			fprintf(stderr, "enter: pid %s: %s\n", pid, n == 0 ? "must not be 0" : err);
			return 127;
		}
		struct config c = {0};
		argv[2] = argv[0];
		if (parse(argc - 2, argv + 2, &c) < 0) {
			fprintf(stderr, "enter: %s\n", msg);
			return 127;
		}
		return enter(pid, &c);
	}
	// The signals init waits for are blocked from the start (the task
	// gets init's original mask back), so that none is lost and none
	// kills init; SIGCHLD must not be ignored, or children are reaped
	// by the kernel. The task, in init's process group, gets the same
	// signals from the supervisor directly.
	sigset_t set, old;
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof waited / sizeof waited[0]; i++)
		sigaddset(&set, waited[i]);
	sigprocmask(SIG_BLOCK, &set, &old);
	struct sigaction dfl = {.sa_handler = SIG_DFL}, ign = {.sa_handler = SIG_IGN};
	sigaction(SIGCHLD, &dfl, NULL);
	// A status pipe whose reader is gone (a supervisor that gave up)
	// fails the write, as it did in the Go init, instead of killing init
	// and with it the task. The task gets SIGPIPE's default back.
	sigaction(SIGPIPE, &ign, NULL);
	fcntl(STATUS_FD, F_SETFD, FD_CLOEXEC);

	struct config c = {0};
	if (parse(argc, argv, &c) < 0)
		return fail();
	if (c.rootfs) {
		container(&c, &old);
		return fail();
	}
	if (setup(&c) < 0 || enter_cgroups(&c) < 0)
		return fail();
	pid_t pid = start(&c, &old);
	if (pid < 0)
		return fail();
	write_status("ok\n");
	for (;;) {
		if (sigwaitinfo(&set, NULL) < 0 && errno != EINTR)
			return 127;
		for (;;) {
			int st;
			pid_t p = waitpid(-1, &st, WNOHANG);
			if (p < 0 && errno == EINTR)
				continue;
			if (p <= 0)
				break;
			if (p != pid)
				continue; // an orphan
			if (WIFSIGNALED(st)) {
				char b[32];
				snprintf(b, sizeof b, "signal %d\n", WTERMSIG(st));
				write_status(b);
				return 128 + WTERMSIG(st);
			}
			return WEXITSTATUS(st);
		}
	}
}
