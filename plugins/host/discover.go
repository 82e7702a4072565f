package host

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// found is a plugin executable found in the plugin directory.
type found struct {
	kind, name, path string
}

// filePrefix returns the file name prefix of plugins of kind.
func filePrefix(kind string) string { return "dcos-" + kind + "-" }

// parseFileName returns the kind and name of a plugin file name, or ok false
// if the name is not one of a plugin.
func parseFileName(file string) (kind, name string, ok bool) {
	for _, k := range kinds {
		if n, cut := strings.CutPrefix(file, filePrefix(k)); cut && validName(n) {
			return k, n, true
		}
	}
	return "", "", false
}

// discover lists the plugin executables in dir, sorted by file name. Other
// files are skipped and logged: at debug level, or as a warning when the
// file looks like a plugin that cannot be run.
func discover(dir string, log *slog.Logger) ([]found, error) {
	if dir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("plugin dir: %w", err)
	}
	var out []found
	for _, e := range entries {
		if e.Name() == CatalogFile {
			continue
		}
		path := filepath.Join(dir, e.Name())
		kind, name, ok := parseFileName(e.Name())
		if !ok {
			lvl := slog.LevelDebug
			if slices.ContainsFunc(kinds, func(k string) bool { return strings.HasPrefix(e.Name(), filePrefix(k)) }) {
				lvl = slog.LevelWarn
			}
			log.Log(context.Background(), lvl, "plugin dir: ignoring file: not dcos-<driver|isolator|net|storage>-<name> with a name of [a-z0-9][a-z0-9_-]*", "path", path)
			continue
		}
		fi, err := os.Stat(path) // follows symlinks
		if err != nil {
			log.Warn("plugin dir: ignoring plugin", "path", path, "err", err)
			continue
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			log.Warn("plugin dir: ignoring plugin: not an executable file", "path", path, "mode", fi.Mode().String())
			continue
		}
		if fi.Mode().Perm()&0o022 != 0 {
			log.Warn("plugin dir: plugin is writable by group or others: it is refused at its next start if altered, but make it writable by root only", "path", path, "mode", fi.Mode().String())
		}
		out = append(out, found{kind: kind, name: name, path: path})
	}
	slices.SortFunc(out, func(a, b found) int { return strings.Compare(a.path, b.path) })
	return out, nil
}
