package daemon

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// runDevDefaults parses args as dcosd dev's flags and calls devDefaults.
func runDevDefaults(t *testing.T, root bool, args ...string) (features []string, sized bool, flags map[string]string) {
	t.Helper()
	cmd := devCommand()
	cmd.Action = func(c *cli.Context) error {
		var err error
		features, sized, err = devDefaults(c, t.TempDir(), root)
		flags = map[string]string{}
		for _, f := range []string{"network-driver", "image-driver", "storage-driver", "default-disk"} {
			flags[f] = c.String(f)
		}
		return err
	}
	app := &cli.App{Commands: []*cli.Command{cmd}, Writer: io.Discard, ErrWriter: io.Discard}
	if err := app.RunContext(context.Background(), append([]string{"dcosd", "dev"}, args...)); err != nil {
		t.Fatal(err)
	}
	return features, sized, flags
}

func TestDevDefaults(t *testing.T) {
	for _, tc := range []struct {
		name      string
		root      bool
		args      []string
		wantLines []string // prefixes, one per feature
		wantSized bool
		wantFlags map[string]string
	}{
		{name: "root turns both on", root: true, args: []string{"--storage-enforcement", "loop"},
			wantLines: []string{"task isolation: enabled", "bridge networking: enabled", "container images: enabled", "sized sandboxes: enabled (loop, allocations without a disk get 64Mi"},
			wantSized: true, wantFlags: map[string]string{"network-driver": "bridge", "image-driver": "oci", "storage-driver": "local", "default-disk": "64Mi"}},
		{name: "root keeps a given default disk", root: true, args: []string{"--storage-enforcement", "loop", "--default-disk", "1Gi"},
			wantLines: []string{"task isolation: enabled", "bridge networking: enabled", "container images: enabled", "sized sandboxes: enabled (loop, allocations without a disk get 1Gi"},
			wantSized: true, wantFlags: map[string]string{"network-driver": "bridge", "image-driver": "oci", "storage-driver": "local", "default-disk": "1Gi"}},
		{name: "root turned off", root: true, args: []string{"--network-driver", "none", "--image-driver", "none", "--storage-driver", "none"},
			wantLines: []string{"task isolation: enabled", "bridge networking: off (--network-driver none)", "container images: off (--image-driver none)", "sized sandboxes: off (--storage-driver none)"},
			wantFlags: map[string]string{"network-driver": "none", "image-driver": "none", "storage-driver": "none", "default-disk": ""}},
		{name: "root without enforcement", root: true, args: []string{"--storage-enforcement", "none"},
			wantLines: []string{"task isolation: enabled", "bridge networking: enabled", "container images: enabled", "sized sandboxes: off (--storage-enforcement none)"},
			wantFlags: map[string]string{"network-driver": "bridge", "image-driver": "oci", "storage-driver": "none", "default-disk": ""}},
		{name: "root without isolation", root: true, args: []string{"--task-isolation=false", "--storage-enforcement", "none"},
			wantLines: []string{"task isolation: OFF (--task-isolation=false)", "bridge networking: enabled", "container images: off (--task-isolation=false", "sized sandboxes: off (--storage-enforcement none)"},
			wantFlags: map[string]string{"network-driver": "bridge", "image-driver": "none", "storage-driver": "none", "default-disk": ""}},
		{name: "not root", root: false,
			wantLines: []string{"task isolation: off (not root", "bridge networking: off (not root", "container images: off (not root", "sized sandboxes: off (not root"},
			wantFlags: map[string]string{"network-driver": "none", "image-driver": "none", "storage-driver": "none", "default-disk": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines, sized, flags := runDevDefaults(t, tc.root, tc.args...)
			if len(lines) != len(tc.wantLines) {
				t.Fatalf("lines %q, want %d", lines, len(tc.wantLines))
			}
			for i, l := range lines {
				if !strings.HasPrefix(l, tc.wantLines[i]) {
					t.Errorf("line %d = %q, want prefix %q", i, l, tc.wantLines[i])
				}
			}
			if sized != tc.wantSized {
				t.Errorf("sized %v, want %v", sized, tc.wantSized)
			}
			for k, v := range tc.wantFlags {
				if flags[k] != v {
					t.Errorf("--%s = %q, want %q", k, flags[k], v)
				}
			}
		})
	}
}
