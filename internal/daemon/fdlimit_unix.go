//go:build unix

package daemon

import "golang.org/x/sys/unix"

// raiseFDLimit raises the soft limit of open files to the hard limit (no
// privilege needed; raising the hard limit would need CAP_SYS_RESOURCE)
// and returns both. The Go runtime already does this at start on Linux
// (and gives children the original soft limit back); doing it here makes
// the figure we size the connection cap on explicit.
func raiseFDLimit() (soft, hard uint64, err error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0, 0, err
	}
	if r.Cur < r.Max {
		want := r
		want.Cur = r.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &want); err != nil {
			return r.Cur, r.Max, err
		}
		r = want
	}
	return r.Cur, r.Max, nil
}
