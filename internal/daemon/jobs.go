package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/frameworks/jobs"
	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/sdk/framework"
)

// devJobsPrincipal is the framework principal of dcosd dev's jobs
// framework (the default of dcosctl job --framework).
const devJobsPrincipal = "jobs"

// jobsFlags configure a replica of the jobs framework (frameworks/jobs),
// standalone (dcosd jobs) or inside dcosd dev.
var jobsFlags = []cli.Flag{
	&cli.StringFlag{Name: "jobs-election", Value: "jobs", Usage: "election the jobs replicas campaign in (one leads)"},
	&cli.StringFlag{Name: "jobs-candidate", Usage: "this replica's name in the election (default hostname-pid-random)"},
	&cli.DurationFlag{Name: "jobs-ttl", Value: 10 * time.Second, Usage: "leadership lease of a jobs replica"},
	&cli.IntFlag{Name: "jobs-workers", Value: 4, Usage: "jobs reconciled in parallel"},
}

func jobsCommand() *cli.Command {
	return &cli.Command{
		Name:  "jobs",
		Usage: "run a replica of the jobs framework, which runs the batch jobs `dcosctl job` applies (run several: one leads)",
		Description: `The jobs framework runs work to completion, by hand or on a cron
schedule. Give it a framework token of its own (the principal dcosctl job
--framework names; "jobs" by default) and the kernel's address, or several
kernels' separated by commas. Its specs, runs and leadership live in the
kernel, so replicas need nothing else in common. An MPI job's launcher
task gets --kernel and this token in its environment (DCOS_KERNEL,
DCOS_TOKEN), so that mpirun may start its daemons in the rank hosts with
dcosctl exec: docs/jobs.md says what that exposes.

Example:
   dcosd jobs --kernel https://10.0.0.1:7070 --ca-cert ca.crt --token $JOBS_TOKEN`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "kernel", Required: true, Usage: "kernel URL(s), comma-separated, e.g. https://10.0.0.1:7070", EnvVars: []string{"DCOS_KERNEL"}},
			caCertFlag,
			&cli.StringFlag{Name: "token", Required: true, Usage: "the jobs framework's token", EnvVars: []string{"DCOS_TOKEN"}},
		}, jobsFlags...),
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
			fmt.Fprintf(c.App.Writer, "dcos jobs: started against %s\n", strings.Join(endpoints, ","))
			return runJobs(c.Context, c, cl, log, strings.Join(endpoints, ","), c.String("token"))
		},
	}
}

// runJobs runs one jobs replica on cl until ctx ends, starting it again
// after an error with a backoff up to 30s (as runInit). kernelURL and
// token are what its MPI launchers get (jobs.Config).
func runJobs(ctx context.Context, c *cli.Context, cl *framework.Client, log *slog.Logger, kernelURL, token string) error {
	log = log.With("component", "jobs")
	candidate := c.String("jobs-candidate")
	if candidate == "" && c.Command.Name == "dev" {
		candidate = "dcosd-dev"
	}
	wait := time.Second
	for {
		started := time.Now()
		err := jobs.Serve(ctx, jobs.Config{
			Client: cl, Election: c.String("jobs-election"), Candidate: candidate,
			TTL: c.Duration("jobs-ttl"), Workers: c.Int("jobs-workers"), Logger: log,
			KernelURL: kernelURL, Token: token,
		})
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > time.Minute {
			wait = time.Second
		}
		log.Error("jobs stopped; starting again", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// ensureDevJobsToken returns the jobs framework's token of the tokens
// file at path, adding it when missing (the file exists: ensureDevTokens
// made it).
func ensureDevJobsToken(path string) (api.TokenEntry, error) {
	tf, err := api.LoadTokensFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return api.TokenEntry{}, err
	}
	e, changed := tf.EnsureNamed("framework", devJobsPrincipal)
	if changed {
		if err := api.SaveTokensFile(path, tf); err != nil {
			return e, err
		}
	}
	return e, nil
}
