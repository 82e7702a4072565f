package supervisor

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"slices"
	"strings"
)

// hierarchy is one mounted cgroup hierarchy and the directory of it the
// supervisor was in when it started.
type hierarchy struct {
	mount string // mount point
	v2    bool
	home  string // directory to return to; "" if not visible under mount
}

// cgroupHomes finds, for each cgroup hierarchy mounted in mountinfo, the
// directory the process whose /proc/PID/cgroup is procCgroup belongs to.
func cgroupHomes(mountinfo, procCgroup []byte) ([]hierarchy, error) {
	type member struct {
		controllers []string
		path        string
	}
	var members []member
	sc := bufio.NewScanner(bytes.NewReader(procCgroup))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) != 3 {
			continue
		}
		var cs []string
		if f[1] != "" {
			cs = strings.Split(f[1], ",")
		}
		members = append(members, member{controllers: cs, path: f[2]})
	}
	var hs []hierarchy
	sc = bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 || (qf[0] != "cgroup" && qf[0] != "cgroup2") {
			continue
		}
		root, mnt := pf[3], pf[4]
		h := hierarchy{mount: mnt, v2: qf[0] == "cgroup2"}
		opts := strings.Split(qf[2], ",")
		for _, m := range members {
			match := h.v2 && len(m.controllers) == 0
			if !h.v2 && len(m.controllers) > 0 {
				match = true
				for _, c := range m.controllers {
					if !slices.Contains(opts, c) {
						match = false
					}
				}
			}
			if !match {
				continue
			}
			rel, ok := strings.CutPrefix(m.path, root)
			if root == "/" {
				rel, ok = m.path, true
			}
			if ok && (rel == "" || strings.HasPrefix(rel, "/")) {
				h.home = path.Join(mnt, rel)
			}
			break
		}
		hs = append(hs, h)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	return hs, nil
}

// hierarchyOf returns the hierarchy whose mount point is the longest
// prefix of dir.
func hierarchyOf(hs []hierarchy, dir string) (hierarchy, bool) {
	best, found := hierarchy{}, false
	for _, h := range hs {
		if (dir == h.mount || strings.HasPrefix(dir, h.mount+"/")) && len(h.mount) >= len(best.mount) {
			best, found = h, true
		}
	}
	return best, found
}
