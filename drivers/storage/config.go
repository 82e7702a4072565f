package storage

import (
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
)

// Enforcement is how a driver holds sandboxes and volumes to their size.
type Enforcement string

const (
	// EnforceAuto (Config.Enforcement only) picks EnforceQuota where the
	// state dir's filesystem accounts project quotas, else EnforceLoop
	// where loop devices and mkfs.ext4 are available, else EnforceNone.
	EnforceAuto Enforcement = ""
	// EnforceQuota puts each sized directory into its own project with a
	// hard block limit: a writer past it gets EDQUOT. Costs nothing up
	// front; needs project quotas on the state dir's filesystem.
	EnforceQuota Enforcement = "quota"
	// EnforceLoop mounts an ext4 image of the size, allocated up front,
	// on each sized directory: a writer past it gets ENOSPC.
	EnforceLoop Enforcement = "loop"
	// EnforceNone does not enforce sizes (Enforced is false).
	EnforceNone Enforcement = "none"
)

// HostVolume is a directory (or file) of the node that an operator lets
// tasks mount (`--host-volume name=/path[,ro]`).
type HostVolume struct {
	// Path is absolute and clean.
	Path string
	// ReadOnly host volumes are mounted read-only whatever a task asks.
	ReadOnly bool
}

// Config configures a Driver.
type Config struct {
	// StateDir is the driver's own directory: sandboxes/, volumes/,
	// images/ (loop images) and meta/ (volume records). Created if
	// missing. Quota enforcement applies if its filesystem has project
	// quotas.
	StateDir string
	// Enforcement forces a mode; EnforceAuto (empty) chooses.
	Enforcement Enforcement
	// HostVolumes are the host paths that Mount accepts, by name.
	HostVolumes map[string]HostVolume
	// Logger receives the driver's logs; nil discards them.
	Logger *slog.Logger
}

// ParseHostVolume parses the flag form name=/path[,ro] (or ,rw).
func ParseHostVolume(s string) (name string, hv HostVolume, err error) {
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" || rest == "" {
		return "", HostVolume{}, fmt.Errorf("host volume %q: want name=/path[,ro]", s)
	}
	path, opt, _ := strings.Cut(rest, ",")
	switch opt {
	case "", "rw":
	case "ro":
		hv.ReadOnly = true
	default:
		return "", HostVolume{}, fmt.Errorf("host volume %q: option %q: want ro or rw", s, opt)
	}
	hv.Path = path
	checked, err := checkHostVolumes(map[string]HostVolume{name: hv})
	if err != nil {
		return "", HostVolume{}, err
	}
	return name, checked[name], nil
}

// checkHostVolumes checks that every host volume has a name and an
// absolute path, and returns them with clean paths.
func checkHostVolumes(in map[string]HostVolume) (map[string]HostVolume, error) {
	out := make(map[string]HostVolume, len(in))
	for name, hv := range in {
		if name == "" || strings.ContainsAny(name, "=,/ ") {
			return nil, fmt.Errorf("host volume name %q: want a name without = , / or spaces", name)
		}
		if !filepath.IsAbs(hv.Path) {
			return nil, fmt.Errorf("host volume %q: path %q is not absolute", name, hv.Path)
		}
		hv.Path = filepath.Clean(hv.Path)
		out[name] = hv
	}
	return out, nil
}

// MinSize is the smallest size a sized sandbox or volume may have: the
// smallest ext4 image that still holds a useful amount of data.
const MinSize = 4 << 20

// checkSize checks a sandbox (zero allowed: unlimited) or volume size.
func checkSize(size int64, zeroOK bool) error {
	switch {
	case size == 0 && zeroOK:
		return nil
	case size < MinSize:
		return fmt.Errorf("size %d: want at least %d bytes (4 MiB)", size, MinSize)
	}
	return nil
}

// escapeID returns the file name of a container or volume ID.
func escapeID(id string) (string, error) {
	if id == "" || len(id) > 200 {
		return "", fmt.Errorf("ID %q: want 1 to 200 bytes", id)
	}
	name := url.PathEscape(id)
	if name == "." || name == ".." {
		return "", fmt.Errorf("ID %q: not a valid name", id)
	}
	return name, nil
}

// unescapeID reverses escapeID.
func unescapeID(name string) (string, bool) {
	id, err := url.PathUnescape(name)
	if err != nil || id == "" {
		return "", false
	}
	if n, _ := escapeID(id); n != name {
		return "", false
	}
	return id, true
}

// checkTarget checks a mount target: a relative path that stays in the
// sandbox, in clean form.
func checkTarget(t string) error {
	if t == "" || !filepath.IsLocal(t) || filepath.Clean(t) != t || t == "." {
		return fmt.Errorf("target %q: want a clean relative path inside the sandbox", t)
	}
	return nil
}

func sandboxesDir(state string) string { return filepath.Join(state, "sandboxes") }
func volumesDir(state string) string   { return filepath.Join(state, "volumes") }
func imagesDir(state string) string    { return filepath.Join(state, "images") }
func metaDir(state string) string      { return filepath.Join(state, "meta") }
func sandboxImage(state, name string) string {
	return filepath.Join(imagesDir(state), "sandbox-"+name+".img")
}
func volumeImage(state, name string) string {
	return filepath.Join(imagesDir(state), "volume-"+name+".img")
}
