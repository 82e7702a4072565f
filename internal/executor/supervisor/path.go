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

// lookPathIn resolves a container's command inside root: an absolute path
// is used as it is, a name without a slash is searched in path's absolute
// entries, each resolved with root as "/" (symbolic links, absolute or
// not, stay inside root). It returns the path inside the container, for
// the task init to exec after it changed root. Errors name the command.
func lookPathIn(root, command, path string) (string, error) {
	isExec := func(p string) error {
		host, err := resolveIn(root, p)
		if err != nil {
			return err
		}
		fi, err := os.Stat(host)
		if err != nil {
			return err
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fs.ErrPermission
		}
		return nil
	}
	switch {
	case filepath.IsAbs(command):
		if err := isExec(command); err != nil {
			return "", fmt.Errorf("command %q in %s: %w", command, root, err)
		}
		return command, nil
	case strings.Contains(command, "/"):
		return "", fmt.Errorf("command %q: want an absolute path inside the container or a name searched in PATH", command)
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" || !filepath.IsAbs(d) {
			continue
		}
		if p := filepath.Join(d, command); isExec(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q: not found in %s with PATH %q", command, root, path)
}

// resolveIn returns the host path of p, a path inside root, following
// symbolic links as if root were "/" (at most 40). The file it names may
// not exist.
func resolveIn(root, p string) (string, error) {
	cur := "/"
	rest := strings.Split(strings.TrimPrefix(filepath.Clean("/"+p), "/"), "/")
	for links := 0; len(rest) > 0; {
		name := rest[0]
		rest = rest[1:]
		if name == "" || name == "." {
			continue
		}
		next := filepath.Join(cur, name) // ".." stops at "/"
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			cur = next // not a link, or missing: os.Stat says which
			continue
		}
		if links++; links > 40 {
			return "", fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		rest = append(strings.Split(strings.TrimPrefix(target, "/"), "/"), rest...)
	}
	return filepath.Join(root, cur), nil
}

// LookPath resolves command as the supervisor does for a task with PATH
// path and working directory dir (see lookPath).
func LookPath(command, path, dir string) (string, error) { return lookPath(command, path, dir) }
