package daemon

import (
	"io"
	"log/slog"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/kernel"
)

// runDoorFlags parses args with the front door's flags, as dcosd does
// (its flag parser splits values at commas), and calls f.
func runDoorFlags(t *testing.T, args []string, f func(*cli.Context) error) error {
	t.Helper()
	app := &cli.App{Flags: doorFlags, Action: f, Writer: io.Discard, ErrWriter: io.Discard}
	return app.Run(append([]string{"dcosd"}, args...))
}

func TestParseRateLimits(t *testing.T) {
	var got map[kernel.Role]api.RateLimit
	var own map[kernel.Principal]api.RateLimit
	err := runDoorFlags(t, []string{"--rate-limit", "framework=100,burst=5", "--rate-limit", "agent=unlimited", "--rate-limit", "operator=7.5", "--rate-limit", "framework:init=unlimited,framework:tiny=1,burst=3"},
		func(c *cli.Context) (err error) {
			got, own, err = parseRateLimits(c.StringSlice("rate-limit"))
			return err
		})
	if err != nil {
		t.Fatal(err)
	}
	want := map[kernel.Role]api.RateLimit{
		kernel.RoleFramework: {Rate: 100, Burst: 5},
		kernel.RoleAgent:     {},
		kernel.RoleOperator:  {Rate: 7.5, Burst: 15},
	}
	for r, w := range want {
		if got[r] != w {
			t.Errorf("%v: got %+v, want %+v", r, got[r], w)
		}
	}
	wantOwn := map[kernel.Principal]api.RateLimit{
		{Name: "init", Role: kernel.RoleFramework}: {},
		{Name: "tiny", Role: kernel.RoleFramework}: {Rate: 1, Burst: 3},
	}
	if len(own) != len(wantOwn) {
		t.Errorf("principal limits %v, want %v", own, wantOwn)
	}
	for p, w := range wantOwn {
		if l, ok := own[p]; !ok || l != w {
			t.Errorf("%v: got %+v (%v), want %+v", p, l, ok, w)
		}
	}
	if got, _, err := parseRateLimits(nil); err != nil || got[kernel.RoleFramework] != (api.RateLimit{Rate: 200, Burst: 400}) || !got[kernel.RoleOperator].Unlimited() {
		t.Errorf("defaults: %v %v", got, err)
	}
	for _, bad := range [][]string{{"framework"}, {"root=1"}, {"framework=0"}, {"framework=-1"}, {"framework=NaN"}, {"framework=1", "burst=0"}, {"framework=1,burst=x"}, {"framework=lots"}, {"framework:=1"}} {
		if _, _, err := parseRateLimits(bad); err == nil {
			t.Errorf("parseRateLimits(%q): want an error", bad)
		}
	}
}

func TestConnectionCaps(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	soft, _, err := raiseFDLimit()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name               string
		args               []string
		wantTotal, wantPer int
	}{
		{"defaults", nil, min(api.DefaultMaxConnections, int(soft)-fdHeadroom), api.DefaultMaxConnectionsPerClient},
		{"above the fd limit", []string{"--max-connections", "100000000"}, int(soft) - fdHeadroom, api.DefaultMaxConnectionsPerClient},
		{"zero: the clamp", []string{"--max-connections", "0", "--max-connections-per-client", "0"}, int(soft) - fdHeadroom, 0},
		{"small", []string{"--max-connections", "10", "--max-connections-per-client", "3"}, 10, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runDoorFlags(t, tt.args, func(c *cli.Context) error {
				total, per := connectionCaps(c, log)
				if total != tt.wantTotal || per != tt.wantPer {
					t.Errorf("caps %d, %d; want %d, %d (soft limit %d)", total, per, tt.wantTotal, tt.wantPer, soft)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
