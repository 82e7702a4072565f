package cgroups

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// maxNameLen bounds a cgroup name made from a container ID (NAME_MAX is 255).
const maxNameLen = 200

// cgroupName returns the cgroup directory name of a container: the ID when
// it is made only of [A-Za-z0-9-], else the ID with every other byte
// written as _xx (hex), so that the mapping is one-to-one, the name is a
// single path element, and it contains no dot (so it can never collide with
// a control file such as memory.max). An ID whose escaped form is longer
// than maxNameLen becomes "h_" and its SHA-256. An empty ID has no name.
func cgroupName(id string) string {
	if id == "" {
		return ""
	}
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' {
			b.WriteByte(c)
			continue
		}
		const hexdig = "0123456789abcdef"
		b.WriteByte('_')
		b.WriteByte(hexdig[c>>4])
		b.WriteByte(hexdig[c&15])
	}
	if b.Len() > maxNameLen {
		sum := sha256.Sum256([]byte(id))
		return "h_" + hex.EncodeToString(sum[:])
	}
	return b.String()
}
