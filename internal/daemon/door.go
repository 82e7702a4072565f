package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/kernel"
)

// fdHeadroom is how many file descriptors the connection cap leaves for
// the rest of the process: etcd's WAL, snapshots and peers, the store
// client, plugins, logs.
const fdHeadroom = 1000

// doorFlags configure the API port's front door (docs/kernel.md, "The
// front door").
var doorFlags = []cli.Flag{
	&cli.IntFlag{Name: "max-connections", Value: api.DefaultMaxConnections, Usage: fmt.Sprintf("connections the API port holds at once, more are closed at accept; clamped to the open-files limit minus %d (0: only that clamp)", fdHeadroom)},
	&cli.IntFlag{Name: "max-connections-per-client", Value: api.DefaultMaxConnectionsPerClient, Usage: "connections one client IP address may hold at once (0: no cap)"},
	&cli.DurationFlag{Name: "read-timeout", Value: api.DefaultTimeouts().Read, Usage: "time to read a whole request, headers and body (Watch streams: until their request is read)"},
	&cli.DurationFlag{Name: "write-timeout", Value: api.DefaultTimeouts().Write, Usage: "time from a unary call's headers to the end of its answer (not Watch streams)"},
	&cli.DurationFlag{Name: "idle-timeout", Value: api.DefaultTimeouts().Idle, Usage: "keep-alive connections without a call for this long are closed"},
	&cli.StringSliceFlag{Name: "rate-limit", Usage: "syscalls per second each principal of a role may make, `ROLE[:NAME]=RATE[,burst=N]` or ROLE[:NAME]=unlimited; with :NAME the limit of that one principal (repeatable; default operator=unlimited, framework=200,burst=400, agent=2000,burst=4000; dcosd dev adds framework:init=unlimited for its init)"},
}

// parseRateLimits reads --rate-limit values over the defaults (a
// "burst=N" piece belongs to the value before it: see rejoinSplit): the
// limits of roles, and those of single principals (ROLE:NAME=...).
func parseRateLimits(items []string) (map[kernel.Role]api.RateLimit, map[kernel.Principal]api.RateLimit, error) {
	specs := rejoinSplit(items, func(p string) bool { return strings.HasPrefix(p, "burst=") })
	limits, own := api.DefaultRateLimits(), map[kernel.Principal]api.RateLimit{}
	for _, s := range specs {
		p, l, err := api.ParsePrincipalRateLimit(s)
		if err != nil {
			return nil, nil, fmt.Errorf("--rate-limit: %w", err)
		}
		if p.Name != "" {
			own[p] = l
			continue
		}
		limits[p.Role] = l
	}
	return limits, own, nil
}

// connectionCaps returns the API port's caps: --max-connections clamped
// so that fdHeadroom descriptors stay free under the open-files limit,
// which is first raised to its hard limit. It logs what it chose.
func connectionCaps(c *cli.Context, log *slog.Logger) (total, perClient int) {
	total, perClient = c.Int("max-connections"), c.Int("max-connections-per-client")
	soft, hard, err := raiseFDLimit()
	if err != nil {
		log.Warn("open-files limit: could not raise the soft limit to the hard limit", "soft", soft, "hard", hard, "err", err)
	}
	if soft > 0 {
		room := max(int(min(soft, 1<<30))-fdHeadroom, 1)
		if total <= 0 || total > room {
			total = room
		}
	}
	log.Info("api connection caps", "max_connections", total, "max_connections_per_client", perClient,
		"open_files_soft", soft, "open_files_hard", hard, "kept_free", fdHeadroom)
	return total, perClient
}

// listenAPI opens the API port with the caps of the flags.
func listenAPI(c *cli.Context, log *slog.Logger) (*api.ConnLimiter, error) {
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return nil, err
	}
	total, perClient := connectionCaps(c, log)
	return api.LimitListener(ln, total, perClient, log.With("component", "api")), nil
}

// apiTimeouts returns the API server's timeouts from the flags.
func apiTimeouts(c *cli.Context) api.Timeouts {
	t := api.DefaultTimeouts()
	t.Read, t.Write, t.Idle = c.Duration("read-timeout"), c.Duration("write-timeout"), c.Duration("idle-timeout")
	return t
}
