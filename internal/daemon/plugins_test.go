package daemon

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/dcos-kernel/dcos/plugins/contract"
	"github.com/dcos-kernel/dcos/plugins/host"
)

// TestPluginCommand_Errors checks that `dcosd plugin builtin` refuses, before
// serving anything, what only a mistaken caller would ask for.
func TestPluginCommand_Errors(t *testing.T) {
	tests := []struct {
		name     string
		stateDir string // the driver's MemberStateDirEnv
		args     []string
		want     string
	}{
		{"not started by the agent", "", nil, "DCOS_PLUGIN_STATE_DIR_DRIVER_EXEC is not set"},
		{"parent without isolator", t.TempDir(), []string{"--cgroup-parent", "/x"}, "--cgroup-parent without --isolator cgroups"},
		{"unknown isolator", t.TempDir(), []string{"--isolator", "gpu"}, `--isolator "gpu": want cgroups`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(host.MemberStateDirEnv(contract.KindDriver, builtinDriver), tt.stateDir)
			var stdout, stderr bytes.Buffer
			args := append([]string{"dcosd", "plugin", builtinGroup}, tt.args...)
			if code := Run(context.Background(), args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr.String(), tt.want)
			}
		})
	}
}
