package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	dinit "github.com/dcos-kernel/dcos/frameworks/init"
	"github.com/dcos-kernel/dcos/sdk/framework"
)

// initFlags configure a replica of the distributed init (frameworks/init),
// standalone (dcosd init) or inside dcosd dev.
var initFlags = []cli.Flag{
	&cli.StringFlag{Name: "init-election", Value: "default", Usage: "election the init replicas campaign in (one leads)"},
	&cli.StringFlag{Name: "init-candidate", Usage: "this replica's name in the election (default hostname-pid-random)"},
	&cli.DurationFlag{Name: "init-ttl", Value: 10 * time.Second, Usage: "leadership lease: a replica that stops renewing is replaced after this long (a clean stop resigns at once)"},
	&cli.IntFlag{Name: "init-workers", Value: 4, Usage: "services reconciled in parallel"},
}

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "run a replica of the distributed init, which keeps the services `dcosctl svc` applies running (run several: one leads)",
		Description: `The init is a framework: give it a framework token of its own (the
principal dcosctl svc --framework names; "init" by default) and the kernel's
address, or several kernels' separated by commas. Its specs, deployments and
leadership live in the kernel, so replicas need nothing else in common.

Example:
   dcosd init --kernel https://10.0.0.1:7070 --ca-cert ca.crt --token $INIT_TOKEN`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "kernel", Required: true, Usage: "kernel URL(s), comma-separated, e.g. https://10.0.0.1:7070", EnvVars: []string{"DCOS_KERNEL"}},
			caCertFlag,
			&cli.StringFlag{Name: "token", Required: true, Usage: "the init's framework token", EnvVars: []string{"DCOS_TOKEN"}},
		}, initFlags...),
		Action: func(c *cli.Context) error {
			log := logger(c)
			var endpoints []string
			for _, e := range strings.Split(c.String("kernel"), ",") {
				if e = strings.TrimSpace(e); e != "" {
					endpoints = append(endpoints, e)
				}
			}
			// The bundle file is followed: the agent replaces a task's
			// $DCOS_CA_FILE after a CA rotation (transport.CAFile).
			cl, err := framework.New(framework.Config{Endpoints: endpoints, Token: c.String("token"), Logger: log, CAFile: c.String("ca-cert")})
			if err != nil {
				return fmt.Errorf("--kernel/--token: %w", err)
			}
			fmt.Fprintf(c.App.Writer, "dcos init: started against %s\n", strings.Join(endpoints, ","))
			return runInit(c.Context, c, cl, log)
		},
	}
}

// runInit runs one init replica on cl until ctx ends. A replica that
// stops on an error (its kernel unreachable for longer than the client
// retries) logs it and starts again, backing off up to 30s: the init
// outlives a kernel's restart, as agents do.
func runInit(ctx context.Context, c *cli.Context, cl *framework.Client, log *slog.Logger) error {
	log = log.With("component", "init")
	candidate := c.String("init-candidate")
	if candidate == "" && c.Command.Name == "dev" {
		// One dcosd dev per data dir: a stable name lets a restarted dev
		// take its own lease back at once (a renewal, same epoch)
		// instead of waiting out the one its last run held.
		candidate = "dcosd-dev"
	}
	wait := time.Second
	for {
		started := time.Now()
		err := dinit.Run(ctx, dinit.Config{
			Client: cl, Election: c.String("init-election"), Candidate: candidate,
			TTL: c.Duration("init-ttl"), Workers: c.Int("init-workers"), Logger: log,
		})
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > time.Minute {
			wait = time.Second
		}
		log.Error("init stopped; starting again", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}
