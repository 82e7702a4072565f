package oci

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// User is a container user's ids and home, resolved in its image.
type User struct {
	UID, GID uint32
	Groups   []uint32
	Home     string
}

// ResolveUser resolves an image's user, as Docker does: "" (root), "NAME",
// "UID", "NAME:GROUP", "UID:GID" and mixes, against rootfs's /etc/passwd
// and /etc/group (read without following links out of rootfs). A numeric
// uid need not exist in /etc/passwd; a name must. The supplementary groups
// are the user's in /etc/group.
func ResolveUser(rootfs, spec string) (*User, error) {
	user, group, hasGroup := strings.Cut(spec, ":")
	if user == "" {
		user = "0"
	}
	passwd := readDB(rootfs, "etc/passwd")
	groups := readDB(rootfs, "etc/group")
	c := &User{Home: "/"}
	name := ""
	if n, err := strconv.ParseUint(user, 10, 32); err == nil {
		c.UID = uint32(n)
		for _, f := range passwd {
			if len(f) >= 6 && f[2] == user {
				name, c.GID, c.Home = f[0], parseID(f[3]), f[5]
				break
			}
		}
	} else {
		found := false
		for _, f := range passwd {
			if len(f) >= 6 && f[0] == user {
				name, c.UID, c.GID, c.Home, found = f[0], parseID(f[2]), parseID(f[3]), f[5], true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("user %q: no such user in the image's /etc/passwd", user)
		}
	}
	if hasGroup {
		if n, err := strconv.ParseUint(group, 10, 32); err == nil {
			c.GID = uint32(n)
		} else {
			found := false
			for _, f := range groups {
				if len(f) >= 3 && f[0] == group {
					c.GID, found = parseID(f[2]), true
					break
				}
			}
			if !found {
				return nil, fmt.Errorf("user %q: no such group %q in the image's /etc/group", spec, group)
			}
		}
	}
	if name != "" {
		for _, f := range groups {
			if len(f) >= 4 && f[3] != "" && parseID(f[2]) != c.GID {
				for _, m := range strings.Split(f[3], ",") {
					if m == name {
						c.Groups = append(c.Groups, parseID(f[2]))
					}
				}
			}
		}
	}
	if c.Home == "" {
		c.Home = "/"
	}
	return c, nil
}

func parseID(s string) uint32 {
	n, _ := strconv.ParseUint(s, 10, 32)
	return uint32(n)
}

// readDB reads a colon-separated database in rootfs (nil when missing):
// at most 4 MiB, never through a link out of rootfs.
func readDB(rootfs, name string) [][]string {
	f, err := os.OpenInRoot(rootfs, name)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(io.LimitReader(f, 4<<20))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out
}
