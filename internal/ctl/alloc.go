package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dcos-kernel/dcos/internal/quantity"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// allocFlags are the flags that shape an AllocateRequest; withCount adds
// --count (run always asks for one instance).
func allocFlags(withCount bool) []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "cpus", Usage: "`CORES` per instance, e.g. 0.5 for half a core (required)"},
		&cli.StringFlag{Name: "mem", Usage: "memory `SIZE` per instance, e.g. 64Mi, 2Gi, 512M (required)"},
		&cli.StringFlag{Name: "disk", Usage: "scratch disk `SIZE` per instance, e.g. 1Gi"},
		&cli.IntFlag{Name: "ports", Usage: "`N` host ports per instance, from the agent's range (the allocation lists them); run counts its --port flags without a host port when not set"},
	}
	if withCount {
		flags = append(flags, &cli.IntFlag{Name: "count", Usage: "`N` instances of the same size", Value: 1},
			&cli.BoolFlag{Name: "gang", Usage: "the --count instances are one gang: granted together in one cycle, or none of them (see --gang-min)", DisableDefaultText: true},
			&cli.IntFlag{Name: "gang-min", Usage: "`N` of the gang's instances (1 to --count) are enough to start it together; implies --gang", DefaultText: "all of --count"})
	}
	return append(flags,
		&cli.StringFlag{Name: "role", Usage: "`ROLE` to allocate under"},
		&cli.IntFlag{Name: "priority", Usage: "priority `P`; the policy may preempt lower priorities for higher ones"},
		&cli.StringSliceFlag{Name: "constraint", Aliases: []string{"c"}, Usage: "placement by agent label, repeatable: `K=V` (equals), K!=V (unset or differs), K~=A,B (one of)"},
		&cli.DurationFlag{Name: "lease", Usage: "lease `TTL`, e.g. 30s: the allocation expires unless kept alive", DefaultText: "none, held until revoked"},
	)
}

func launchFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "environment variable `K=V` of the task, repeatable"},
		secretEnvFlag(), // secrets.go
		&cli.StringFlag{Name: "workdir", Aliases: []string{"w"}, Usage: "working `DIR`, relative to the task's sandbox unless absolute"},
		&cli.StringFlag{Name: "user", Usage: "`USER` to run the task as: root or a user name of the agent's host, if the operator allowed it for the allocation's role (dcosd --role-users); default: an unprivileged user of the owner's own"},
		&cli.StringFlag{Name: "driver", Usage: "task driver `NAME` on the agent (default exec; see \"dcosctl plugin ls\")"},
		&cli.StringFlag{Name: "driver-config", Usage: "driver configuration `JSON`, passed to the driver as is"},
		&cli.StringFlag{Name: "network", Usage: "task network `MODE`: host (the agent's network, the default) or bridge (its own, with an address from the agent's subnet)"},
		&cli.DurationFlag{Name: "kill-grace", Usage: "`DURATION` the task gets between SIGTERM and SIGKILL when it is stopped, 0 to 10m", DefaultText: "the agent's, 5s"},
		&cli.StringFlag{Name: "log-max-size", Usage: "`SIZE` at which each of the task's stdout and stderr files is rotated, 4Ki to 1Gi", DefaultText: "the agent's, 10Mi"},
		&cli.IntFlag{Name: "log-max-files", Usage: "`N` files kept of each of the task's output streams (the live one included), 1 to 100", DefaultText: "the agent's, 5"},
		&cli.StringSliceFlag{Name: "port", Usage: "a host port of the task, repeatable; `SPEC` is NAME:CONTAINER_PORT[:HOST_PORT][/udp], e.g. http:8080 or dns:53:5353/udp (no HOST_PORT: the next of the allocation's host ports); implies --network bridge unless --network host, where SPEC is NAME (any of the allocation's ports) or NAME:HOST_PORT"},
	}, healthFlags()...)
}

// portNameRE is what the kernel accepts as a port name.
var portNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// parsePort parses --port NAME:CONTAINER_PORT[:HOST_PORT][/tcp|/udp], or
// for a host-network task NAME[:HOST_PORT][/tcp|/udp].
func parsePort(s string, hostNet bool) (*syscallsv1.PortRequest, error) {
	spec, protocol, _ := strings.Cut(s, "/")
	if protocol != "" && protocol != "tcp" && protocol != "udp" {
		return nil, usagef("--port %q: protocol %q: want tcp or udp", s, protocol)
	}
	parts := strings.Split(spec, ":")
	switch {
	case hostNet && len(parts) > 2:
		return nil, usagef("--port %q: a --network host task listens on its host port: want NAME or NAME:HOST_PORT, e.g. http or http:8080", s)
	case hostNet && len(parts) == 1:
		parts = append(parts, "0")
	case len(parts) < 2 || len(parts) > 3:
		return nil, usagef("--port %q: want NAME:CONTAINER_PORT[:HOST_PORT][/udp], e.g. http:8080 or dns:53:5353/udp", s)
	}
	if !portNameRE.MatchString(parts[0]) {
		return nil, usagef("--port %q: name %q: want 1-63 characters of [a-z0-9_]", s, parts[0])
	}
	cport, err := strconv.ParseUint(parts[1], 10, 16)
	if err != nil || cport == 0 && !hostNet {
		return nil, usagef("--port %q: container port %q: want a number from 1 to 65535", s, parts[1])
	}
	p := &syscallsv1.PortRequest{Name: parts[0], ContainerPort: uint32(cport), Protocol: protocol}
	if len(parts) == 3 {
		hport, err := strconv.ParseUint(parts[2], 10, 16)
		if err != nil {
			return nil, usagef("--port %q: host port %q: want a number from 0 to 65535 (0, or none: any free port)", s, parts[2])
		}
		p.HostPort = uint32(hport)
	}
	return p, nil
}

// allocateRequest builds the request the alloc flags of c describe.
func allocateRequest(c *cli.Context) (*syscallsv1.AllocateRequest, error) {
	if !c.IsSet("cpus") {
		return nil, usagef("%s: --cpus is required", c.Command.Name)
	}
	if !c.IsSet("mem") {
		return nil, usagef("%s: --mem is required", c.Command.Name)
	}
	cpus, err := strconv.ParseFloat(c.String("cpus"), 64)
	if err != nil || math.IsNaN(cpus) || math.IsInf(cpus, 0) {
		return nil, usagef("--cpus: %q is not a number of cores (e.g. 0.5, 2)", c.String("cpus"))
	}
	res := &syscallsv1.Resources{Cpus: cpus}
	if res.MemBytes, err = quantity.ParseBytes(c.String("mem")); err != nil {
		return nil, usagef("--mem: %v", err)
	}
	if c.IsSet("disk") {
		if res.DiskBytes, err = quantity.ParseBytes(c.String("disk")); err != nil {
			return nil, usagef("--disk: %v", err)
		}
	}
	if c.IsSet("ports") {
		n := c.Int("ports")
		if n < 0 || n > 1<<16 {
			return nil, usagef("--ports: want a number of host ports from 0, got %d", n)
		}
		res.Ports = int64(n)
	}
	req := &syscallsv1.AllocateRequest{
		Resources: res,
		Count:     1,
		Role:      c.String("role"),
		Priority:  int32(c.Int("priority")),
	}
	if c.IsSet("count") {
		n := c.Int("count")
		if n < 1 || n > 1<<20 {
			return nil, usagef("--count: want a number from 1, got %d", n)
		}
		req.Count = int32(n)
	}
	if c.Bool("gang") || c.IsSet("gang-min") {
		req.Gang = &syscallsv1.Gang{}
		if c.IsSet("gang-min") {
			m := c.Int("gang-min")
			if m < 1 || m > int(req.Count) {
				return nil, usagef("--gang-min: want a number from 1 to --count (%d), got %d", req.Count, m)
			}
			req.Gang.MinCount = int32(m)
		}
	}
	for _, s := range c.StringSlice("constraint") {
		con, err := parseConstraint(s)
		if err != nil {
			return nil, err
		}
		req.Constraints = append(req.Constraints, con)
	}
	if c.IsSet("lease") {
		d := c.Duration("lease")
		if d <= 0 {
			return nil, usagef("--lease: want a positive duration, got %s", d)
		}
		req.LeaseTtl = durationpb.New(d)
	}
	return req, nil
}

// parseConstraint parses "k=v" (equals), "k!=v" (not equals) and
// "k~=a,b" (in).
func parseConstraint(s string) (*syscallsv1.Constraint, error) {
	i := strings.IndexByte(s, '=')
	if i <= 0 {
		return nil, usagef("--constraint %q: want K=V, K!=V or K~=A,B", s)
	}
	label, value := s[:i], s[i+1:]
	op := syscallsv1.Constraint_OP_EQUALS
	switch label[len(label)-1] {
	case '!':
		op, label = syscallsv1.Constraint_OP_NOT_EQUALS, label[:len(label)-1]
	case '~':
		op, label = syscallsv1.Constraint_OP_IN, label[:len(label)-1]
	}
	values := []string{value}
	if op == syscallsv1.Constraint_OP_IN {
		values = strings.Split(value, ",")
	}
	if label == "" {
		return nil, usagef("--constraint %q: empty label", s)
	}
	for _, v := range values {
		if v == "" {
			return nil, usagef("--constraint %q: empty value", s)
		}
	}
	return &syscallsv1.Constraint{Label: label, Op: op, Values: values}, nil
}

// launchRequest builds a LaunchRequest from the launch flags of c.
func launchRequest(c *cli.Context, allocID string, argv []string) (*syscallsv1.LaunchRequest, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, usagef("%s: no command; put it after \"--\"", c.Command.Name)
	}
	return launchSpec(c, &syscallsv1.LaunchRequest{AllocationId: allocID, Command: argv[0], Args: argv[1:]})
}

// launchSpec fills req, which holds the command, from the other launch
// flags of c.
func launchSpec(c *cli.Context, req *syscallsv1.LaunchRequest) (*syscallsv1.LaunchRequest, error) {
	req.WorkingDir = c.String("workdir")
	req.User = c.String("user")
	req.Driver = c.String("driver")
	req.DriverConfig = c.String("driver-config")
	if dc := req.DriverConfig; dc != "" && !json.Valid([]byte(dc)) {
		return nil, usagef("--driver-config: not valid JSON: %q", dc)
	}
	switch n := c.String("network"); n {
	case "", "host", "bridge":
		req.Network = n
	default:
		return nil, usagef("--network: want bridge or host, got %q", n)
	}
	if len(c.StringSlice("port")) > 0 && req.Network == "" {
		req.Network = "bridge"
	}
	for _, s := range c.StringSlice("port") {
		p, err := parsePort(s, req.Network == "host")
		if err != nil {
			return nil, err
		}
		req.Ports = append(req.Ports, p)
	}
	for _, kv := range c.StringSlice("env") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--env %q: want K=V", kv)
		}
		if req.Env == nil {
			req.Env = map[string]string{}
		}
		req.Env[k] = v
	}
	if err := addSecretEnv(c, req); err != nil { // secrets.go
		return nil, err
	}
	if c.IsSet("kill-grace") {
		d := c.Duration("kill-grace")
		if d < 0 {
			return nil, usagef("--kill-grace: want a duration of 0 or more, got %s", d)
		}
		req.KillGracePeriod = durationpb.New(d)
	}
	if c.IsSet("log-max-size") || c.IsSet("log-max-files") {
		req.Logs = &syscallsv1.LogConfig{MaxFiles: int32(c.Int("log-max-files"))}
		if c.IsSet("log-max-size") {
			n, err := quantity.ParseBytes(c.String("log-max-size"))
			if err != nil {
				return nil, usagef("--log-max-size: %v", err)
			}
			req.Logs.MaxBytes = n
		}
	}
	if err := applyHealthFlags(c, req); err != nil {
		return nil, err
	}
	return req, nil
}

func allocCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "alloc",
		Usage: "allocate resources",
		Description: `Ask the kernel for --count instances of --cpus and --mem (and --disk). Print
each allocation's id, state and agent; when some are pending, also print the
kernel's reason. Pending allocations are placed as soon as resources free up
(see "dcosctl watch --kind allocation"). -o json prints the Allocate response.

With --gang the instances are granted all together in one cycle, or none of
them while they do not all fit (--gang-min N: at least N of them together);
a waiting gang holds nothing (docs/kernel.md, "Gangs").

  dcosctl alloc --cpus 0.5 --mem 64Mi --constraint zone=b --lease 30s
  dcosctl alloc --cpus 1 --mem 1Gi --count 8 --gang`,
		Flags: append(allocFlags(true),
			&cli.StringSliceFlag{Name: "volume", Aliases: []string{"v"}, Usage: "a persistent volume to claim (count 1), repeatable: `NAME[=SIZE]`; with SIZE it is created on the agent granted, without it the allocation lands on its agent"}),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			f, err := outputFormat(c)
			if err != nil {
				return err
			}
			req, err := allocateRequest(c)
			if err != nil {
				return err
			}
			for _, s := range c.StringSlice("volume") {
				claim, _, err := parseVolume(s+":-", false) // the path is launch's
				if err != nil {
					return usagef("--volume %q: want NAME or NAME=SIZE, e.g. data=1Gi", s)
				}
				req.Volumes = append(req.Volumes, claim)
			}
			k, err := dial(c, e)
			if err != nil {
				return err
			}
			res, err := k.Allocate(c.Context, connect.NewRequest(req))
			if err != nil {
				return callError("Allocate", err)
			}
			if f == formatJSON {
				return writeJSON(e.stdout, res.Msg)
			}
			t := newTable(e.stdout, "ALLOCATION", "STATE", "AGENT")
			for _, a := range res.Msg.GetAllocations() {
				t.row(a.GetId(), allocState(a.GetState()), a.GetAgentId())
			}
			if err := t.flush(); err != nil {
				return err
			}
			if r := res.Msg.GetPendingReason(); r != "" {
				fmt.Fprintf(e.stdout, "pending: %s\n", r)
			}
			return nil
		},
	}
}

func launchCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "launch",
		Usage:     "start a task inside a granted allocation",
		ArgsUsage: "ALLOC_ID -- CMD [ARGS...]",
		Description: `Start CMD with ARGS (no shell) in the allocation ALLOC_ID and print the task
id. -o json prints the Launch response.

  dcosctl launch a-1 --env PORT=8080 -- python3 -m http.server 8080
  dcosctl launch a-1 --port http:8080 -- python3 -m http.server 8080`,
		Flags: append(launchFlags(),
			&cli.StringSliceFlag{Name: "volume", Aliases: []string{"v"}, Usage: "a persistent volume the allocation claims, mounted in the sandbox, repeatable: `NAME:PATH[:ro]`"},
			&cli.StringSliceFlag{Name: "host-volume", Usage: "a host volume the agent declares, mounted in the sandbox, repeatable: `NAME:PATH[:ro]`"}),
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) == 0 {
				return usagef("launch: want ALLOC_ID -- CMD [ARGS...]")
			}
			f, err := outputFormat(c)
			if err != nil {
				return err
			}
			req, err := launchRequest(c, args[0], args[1:])
			if err != nil {
				return err
			}
			var claims syscallsv1.AllocateRequest
			if err := addVolumes(c, &claims, req); err != nil {
				return err
			}
			for _, cl := range claims.GetVolumes() {
				if cl.GetSizeBytes() != 0 {
					return usagef("launch: --volume %s: a size is alloc's (launch mounts a volume the allocation claims)", cl.GetName())
				}
			}
			k, err := dial(c, e)
			if err != nil {
				return err
			}
			res, err := k.Launch(c.Context, connect.NewRequest(req))
			if err != nil {
				return callError("Launch", err)
			}
			if f == formatJSON {
				return writeJSON(e.stdout, res.Msg)
			}
			_, err = fmt.Fprintln(e.stdout, res.Msg.GetTask().GetId())
			return err
		},
	}
}

// dynamicPorts counts the ports of r the kernel takes from the
// allocation's host ports: those without a host port (on the host network,
// without a container port either, which names the host port there).
func dynamicPorts(r *syscallsv1.LaunchRequest) int64 {
	var n int64
	for _, p := range r.GetPorts() {
		if p.GetHostPort() == 0 && (r.GetNetwork() != "host" || p.GetContainerPort() == 0) {
			n++
		}
	}
	return n
}

// allocateOne allocates one instance and returns it granted: at once, or
// after watching for the grant when wait is set. A pending allocation that
// run will not use is revoked.
func allocateOne(ctx context.Context, k syscallsv1connect.KernelClient, req *syscallsv1.AllocateRequest, wait bool, e *env) (*syscallsv1.Allocation, error) {
	res, err := k.Allocate(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, callError("Allocate", err)
	}
	allocs := res.Msg.GetAllocations()
	if len(allocs) != 1 {
		for _, a := range allocs {
			fmt.Fprintf(e.stderr, "dcosctl: %s\n", release(ctx, k, a.GetId(), "dcosctl run: unexpected answer"))
		}
		return nil, fmt.Errorf("kernel answered Allocate with %d allocations for a count of 1", len(allocs))
	}
	alloc := allocs[0]
	switch alloc.GetState() {
	case syscallsv1.AllocationState_ALLOCATION_STATE_GRANTED:
		return alloc, nil
	case syscallsv1.AllocationState_ALLOCATION_STATE_PENDING:
	default:
		return nil, fmt.Errorf("kernel answered Allocate with allocation %s %s", alloc.GetId(), allocState(alloc.GetState()))
	}
	reason := res.Msg.GetPendingReason()
	if reason == "" {
		reason = alloc.GetPendingReason()
	}
	if !wait {
		rel := release(ctx, k, alloc.GetId(), "dcosctl run: pending, not waiting")
		return nil, fmt.Errorf("allocation %s is pending: %s (%s; pass --wait to wait for resources)", alloc.GetId(), reason, rel)
	}
	fmt.Fprintf(e.stderr, "dcosctl: allocation %s is pending: %s; waiting\n", alloc.GetId(), reason)
	granted, err := waitGranted(ctx, k, alloc.GetId(), res.Msg.GetRevision())
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, release(ctx, k, alloc.GetId(), "dcosctl run: wait ended"))
	}
	return granted, nil
}

// waitGranted watches from revision after until allocation id is granted
// or revoked. Watching from the Allocate revision cannot miss the grant.
func waitGranted(ctx context.Context, k syscallsv1connect.KernelClient, id string, after int64) (*syscallsv1.Allocation, error) {
	stream, err := k.Watch(ctx, connect.NewRequest(&syscallsv1.WatchRequest{
		AfterRevision: after,
		Kinds: []syscallsv1.EventKind{
			syscallsv1.EventKind_EVENT_KIND_ALLOCATION_GRANTED,
			syscallsv1.EventKind_EVENT_KIND_ALLOCATION_REVOKED,
		},
	}))
	if err != nil {
		return nil, callError("Watch", err)
	}
	defer stream.Close()
	for stream.Receive() {
		ev := stream.Msg()
		if ev.GetAllocation().GetId() != id {
			continue
		}
		switch ev.GetKind() {
		case syscallsv1.EventKind_EVENT_KIND_ALLOCATION_GRANTED:
			return ev.GetAllocation(), nil
		case syscallsv1.EventKind_EVENT_KIND_ALLOCATION_REVOKED:
			reason := ev.GetReason()
			if reason == "" {
				reason = ev.GetAllocation().GetRevokeReason()
			}
			return nil, fmt.Errorf("allocation %s was revoked while pending: %s", id, reason)
		}
	}
	if err := stream.Err(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, callError("Watch", err)
	}
	return nil, fmt.Errorf("watch ended before allocation %s was granted", id)
}

// release revokes an allocation run made but will not use, even when ctx
// is cancelled (the user interrupted), and says what became of it: "allocation
// a-N revoked", or why not and how to revoke it by hand.
func release(ctx context.Context, k syscallsv1connect.KernelClient, id, reason string) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := k.Revoke(ctx, connect.NewRequest(&syscallsv1.RevokeRequest{Id: id, Reason: reason})); err != nil {
		return fmt.Sprintf("allocation %s NOT revoked: %v; revoke it with: dcosctl revoke %s", id, callError("Revoke", err), id)
	}
	return fmt.Sprintf("allocation %s revoked", id)
}

func revokeCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "revoke",
		Usage:     "take back an allocation (a-...) or a task (t-...), or many at once (--all)",
		ArgsUsage: "ID | --all [--role ROLE] [--owner NAME] [--pending]",
		Description: `Revoke the allocation or task ID: an allocation's tasks are killed and its
resources freed. Idempotent: revoking something already revoked succeeds.

With --all, revoke in one call every live allocation you may revoke (a
framework: its own; an operator: anyone's) that matches --role, --owner and
--pending, and print how many. -o json prints the Revoke response.

  dcosctl revoke a-3
  dcosctl revoke --all --pending              # my pending allocations
  dcosctl revoke --all --role batch --owner spark`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "reason", Usage: "`REASON` recorded with the revocation"},
			&cli.BoolFlag{Name: "all", Usage: "revoke every allocation that matches --role, --owner and --pending", DisableDefaultText: true},
			&cli.StringFlag{Name: "role", Usage: "with --all: only allocations of `ROLE`"},
			&cli.StringFlag{Name: "owner", Usage: "with --all: only allocations owned by `NAME`"},
			&cli.BoolFlag{Name: "pending", Usage: "with --all: only allocations not granted yet", DisableDefaultText: true},
		},
		Action: func(c *cli.Context) error {
			all := c.Bool("all")
			switch {
			case all && c.Args().Len() != 0:
				return usagef("revoke: give an ID or --all, not both")
			case !all && c.Args().Len() != 1:
				return usagef("revoke: want one ID (or --all), got %d arguments", c.Args().Len())
			case !all && (c.IsSet("role") || c.IsSet("owner") || c.IsSet("pending")):
				return usagef("revoke: --role, --owner and --pending go with --all")
			}
			f, k, err := formatAndDial(c, e)
			if err != nil {
				return err
			}
			req := &syscallsv1.RevokeRequest{Id: c.Args().First(), Reason: c.String("reason"),
				All: all, Role: c.String("role"), Owner: c.String("owner"), Pending: c.Bool("pending")}
			res, err := k.Revoke(c.Context, connect.NewRequest(req))
			if err != nil {
				return callError("Revoke", err)
			}
			if f == formatJSON {
				return writeJSON(e.stdout, res.Msg)
			}
			if all {
				_, err = fmt.Fprintf(e.stdout, "revoked %d allocations\n", len(res.Msg.GetRevokedIds()))
				return err
			}
			_, err = fmt.Fprintf(e.stdout, "revoked %s\n", req.GetId())
			return err
		},
	}
}
