package supervisor

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// envValue returns the value of key in env ("KEY=value" each, the last
// one wins), or "".
func envValue(env []string, key string) string {
	for _, kv := range slices.Backward(env) {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// lookPath resolves a command as a shell would with PATH path: a name with
// a slash is used as is (relative to dir), other names are searched in
// path (relative entries are skipped). Errors name the command.
func lookPath(command, path, dir string) (string, error) {
	isExec := func(p string) error {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fs.ErrPermission
		}
		return nil
	}
	if strings.Contains(command, "/") {
		if err := isExec(command); err != nil {
			return "", fmt.Errorf("command %q: %w", command, err)
		}
		return command, nil
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" || !filepath.IsAbs(d) {
			continue // relative PATH entries would depend on the working dir
		}
		if p := filepath.Join(d, command); isExec(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q: not found in PATH %q", command, path)
}

// LookPath resolves command as the supervisor does for a task with PATH
// path and working directory dir (see lookPath).
func LookPath(command, path, dir string) (string, error) { return lookPath(command, path, dir) }
