package ctl

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// healthFlags are launch's and run's flags for the task's health and
// readiness checks (LaunchRequest.health_check, readiness_check).
func healthFlags() []cli.Flag {
	const spec = "`CHECK` is http:PORT[/PATH] (GET answers 200-399), tcp:PORT (a connection opens) or cmd:SHELL_COMMAND (run with sh -c inside the task, exits 0); PORT is a --port name or a number"
	return []cli.Flag{
		&cli.StringFlag{Name: "health", Usage: "health check run by the agent; " + spec},
		&cli.StringFlag{Name: "ready", Usage: "readiness check, as --health (default: ready while running and not unhealthy)"},
		&cli.DurationFlag{Name: "check-interval", Usage: "`INTERVAL` between probes of --health and --ready", DefaultText: "10s"},
		&cli.DurationFlag{Name: "check-timeout", Usage: "`TIMEOUT` of one probe, at most the interval", DefaultText: "2s"},
		&cli.DurationFlag{Name: "check-grace", Usage: "`PERIOD` after the start in which failures do not count", DefaultText: "30s"},
		&cli.IntFlag{Name: "check-failures", Usage: "`N` failures in a row that make the task unhealthy (not ready)", DefaultText: "3"},
	}
}

// applyHealthFlags sets req's checks from the flags of c; unset timing
// flags are left to the kernel's defaults.
func applyHealthFlags(c *cli.Context, req *syscallsv1.LaunchRequest) error {
	for _, f := range []struct {
		name string
		dst  **syscallsv1.HealthCheck
	}{{"health", &req.HealthCheck}, {"ready", &req.ReadinessCheck}} {
		s := c.String(f.name)
		if s == "" {
			continue
		}
		hc, err := parseCheck(s)
		if err != nil {
			return usagef("--%s %q: %v", f.name, s, err)
		}
		if c.IsSet("check-interval") {
			hc.Interval = durationpb.New(c.Duration("check-interval"))
		}
		if c.IsSet("check-timeout") {
			hc.Timeout = durationpb.New(c.Duration("check-timeout"))
		}
		if c.IsSet("check-grace") {
			hc.GracePeriod = durationpb.New(c.Duration("check-grace"))
		}
		if c.IsSet("check-failures") {
			hc.ConsecutiveFailures = int32(c.Int("check-failures"))
		}
		*f.dst = hc
	}
	return nil
}

// parseCheck parses http:PORT[/PATH], tcp:PORT or cmd:SHELL_COMMAND.
func parseCheck(s string) (*syscallsv1.HealthCheck, error) {
	kind, rest, _ := strings.Cut(s, ":")
	switch kind {
	case "http":
		port, path, _ := strings.Cut(rest, "/")
		name, num, err := checkPort(port)
		if err != nil {
			return nil, err
		}
		return &syscallsv1.HealthCheck{Http: &syscallsv1.HTTPCheck{PortName: name, Port: num, Path: "/" + path}}, nil
	case "tcp":
		name, num, err := checkPort(rest)
		if err != nil {
			return nil, err
		}
		return &syscallsv1.HealthCheck{Tcp: &syscallsv1.TCPCheck{PortName: name, Port: num}}, nil
	case "cmd":
		if strings.TrimSpace(rest) == "" {
			return nil, errors.New("want a command after cmd:")
		}
		return &syscallsv1.HealthCheck{Command: &syscallsv1.CommandCheck{Command: "sh", Args: []string{"-c", rest}}}, nil
	}
	return nil, errors.New("want http:PORT[/PATH], tcp:PORT or cmd:COMMAND")
}

// checkPort is a check's port: a number, or else the name of a --port
// (a name of digits only cannot be told from a number: it is one).
func checkPort(s string) (name string, num uint32, err error) {
	if s == "" {
		return "", 0, errors.New("want a port name or number")
	}
	if strings.Trim(s, "0123456789") == "" { // a number, never a name
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil || n == 0 {
			return "", 0, fmt.Errorf("port %q: want a number in [1, 65535] or a --port name", s)
		}
		return "", uint32(n), nil
	}
	if !portNameRE.MatchString(s) {
		return "", 0, fmt.Errorf("port %q: want a --port name or a number in [1, 65535]", s)
	}
	return s, 0, nil
}
