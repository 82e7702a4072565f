package daemon

import (
	"io"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/agent"
)

// TestLogLimits parses --log-max-size and --log-max-files through dcosd
// agent's and dcosd dev's real flags.
func TestLogLimits(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantBytes int64
		wantFiles int
		wantErr   string
	}{
		{name: "defaults", wantBytes: 10 << 20, wantFiles: 5},
		{name: "set", args: []string{"--log-max-size", "64Ki", "--log-max-files", "3"}, wantBytes: 64 << 10, wantFiles: 3},
		{name: "too small", args: []string{"--log-max-size", "1Ki"}, wantErr: "--log-max-size 1Ki: want 4Ki to 1Gi"},
		{name: "not a size", args: []string{"--log-max-size", "big"}, wantErr: "--log-max-size"},
		{name: "no files", args: []string{"--log-max-files", "0"}, wantErr: "--log-max-files 0: want 1 to 100"},
	}
	for _, cmd := range []*cli.Command{agentCommand(), devCommand()} {
		for _, tt := range tests {
			t.Run(cmd.Name+"/"+tt.name, func(t *testing.T) {
				var cfg agent.Config
				var err error
				c := *cmd
				c.Action = func(c *cli.Context) error { err = logLimits(c, &cfg); return nil }
				args := []string{"dcosd", c.Name}
				if c.Name == "agent" {
					args = append(args, "--kernel", "http://127.0.0.1:1", "--token", "x")
				}
				app := &cli.App{Commands: []*cli.Command{&c}, Writer: io.Discard, ErrWriter: io.Discard}
				if rerr := app.Run(append(args, tt.args...)); rerr != nil {
					t.Fatal(rerr)
				}
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("err = %v, want %q", err, tt.wantErr)
					}
					return
				}
				if err != nil || cfg.LogMaxBytes != tt.wantBytes || cfg.LogMaxFiles != tt.wantFiles {
					t.Errorf("LogMaxBytes, LogMaxFiles = %d, %d, %v; want %d, %d", cfg.LogMaxBytes, cfg.LogMaxFiles, err, tt.wantBytes, tt.wantFiles)
				}
			})
		}
	}
}
