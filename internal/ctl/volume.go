package ctl

import (
	"strings"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/internal/quantity"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// volumeFlags are run's volume flags.
func volumeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "volume", Aliases: []string{"v"}, Usage: "a persistent volume mounted in the sandbox, repeatable: `NAME[=SIZE]:PATH[:ro]`; with SIZE it is created (on the agent the task lands on), without it claimed (the task lands on its agent)"},
		&cli.StringSliceFlag{Name: "host-volume", Usage: "a host volume the agent declares, mounted in the sandbox, repeatable: `NAME:PATH[:ro]`"},
	}
}

// parseVolume parses --volume NAME[=SIZE]:PATH[:ro] (host false) or
// --host-volume NAME:PATH[:ro] into a claim (nil for a host volume) and a
// mount.
func parseVolume(s string, host bool) (*syscallsv1.VolumeClaim, *syscallsv1.VolumeMount, error) {
	flag, want := "--volume", "NAME[=SIZE]:PATH[:ro], e.g. data=1Gi:data or data:data:ro"
	if host {
		flag, want = "--host-volume", "NAME:PATH[:ro], e.g. certs:etc/certs:ro"
	}
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return nil, nil, usagef("%s %q: want %s", flag, s, want)
	}
	m := &syscallsv1.VolumeMount{Path: parts[1], Host: host}
	if len(parts) == 3 {
		if parts[2] != "ro" && parts[2] != "rw" {
			return nil, nil, usagef("%s %q: option %q: want ro or rw", flag, s, parts[2])
		}
		m.ReadOnly = parts[2] == "ro"
	}
	name, size, sized := strings.Cut(parts[0], "=")
	m.Name = name
	if host {
		if sized {
			return nil, nil, usagef("%s %q: a host volume has no size", flag, s)
		}
		return nil, m, nil
	}
	claim := &syscallsv1.VolumeClaim{Name: name}
	if sized {
		n, err := quantity.ParseBytes(size)
		if err != nil {
			return nil, nil, usagef("%s %q: size: %v", flag, s, err)
		}
		claim.SizeBytes = n
	}
	return claim, m, nil
}

// addVolumes adds c's --volume and --host-volume flags to an allocation
// and a launch.
func addVolumes(c *cli.Context, areq *syscallsv1.AllocateRequest, lreq *syscallsv1.LaunchRequest) error {
	for _, host := range []bool{false, true} {
		flag := "volume"
		if host {
			flag = "host-volume"
		}
		for _, s := range c.StringSlice(flag) {
			claim, m, err := parseVolume(s, host)
			if err != nil {
				return err
			}
			if claim != nil {
				areq.Volumes = append(areq.Volumes, claim)
			}
			lreq.Volumes = append(lreq.Volumes, m)
		}
	}
	return nil
}

func volumeCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "volume",
		Usage: "list, create and destroy persistent volumes",
		Subcommands: []*cli.Command{
			{
				Name:  "ls",
				Usage: "list persistent volumes",
				Description: `Print one row per volume: name, role, agent, size, the allocation that
claims it (- when free) and its owner. Frameworks see their own.`,
				Flags: []cli.Flag{&cli.StringFlag{Name: "agent", Usage: "only agent `ID`"}},
				Action: func(c *cli.Context) error {
					f, k, err := listCall(c, e)
					if err != nil {
						return err
					}
					res, err := k.ListVolumes(c.Context, connect.NewRequest(&syscallsv1.ListVolumesRequest{AgentId: c.String("agent")}))
					if err != nil {
						return callError("ListVolumes", err)
					}
					if f == formatJSON {
						return writeJSON(e.stdout, res.Msg)
					}
					t := newTable(e.stdout, "NAME", "ROLE", "AGENT", "SIZE", "ALLOCATION", "OWNER")
					for _, v := range res.Msg.GetVolumes() {
						t.row(v.GetName(), dash(v.GetRole()), dash(v.GetAgentId()), quantity.FormatBytes(v.GetSizeBytes()),
							dash(v.GetAllocationId()), dash(v.GetOwner()))
					}
					return t.flush()
				},
			},
			{
				Name:      "create",
				Usage:     "create a persistent volume on some agent",
				ArgsUsage: "NAME",
				Description: `Create volume NAME of --size for --role: an allocation of one millicore and 1 MiB
claims it (placed by the policy like any other, --constraint narrows where),
and is released once granted; the volume stays on that agent. It is made on
the agent's disk when a task first mounts it.

  dcosctl volume create pgdata --size 10Gi --role db`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "size", Usage: "`SIZE`, e.g. 10Gi (required)"},
					&cli.StringFlag{Name: "role", Usage: "`ROLE` the volume belongs to"},
					&cli.StringSliceFlag{Name: "constraint", Aliases: []string{"c"}, Usage: "placement by agent label, as for alloc: `K=V`, K!=V, K~=A,B"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usagef("volume create: want one NAME")
					}
					size, err := quantity.ParseBytes(c.String("size"))
					if err != nil || size <= 0 {
						return usagef("volume create: --size %q: want a size, e.g. 10Gi", c.String("size"))
					}
					req := &syscallsv1.AllocateRequest{Resources: &syscallsv1.Resources{Cpus: 0.001, MemBytes: 1 << 20}, Count: 1, Role: c.String("role"),
						Volumes: []*syscallsv1.VolumeClaim{{Name: c.Args().First(), SizeBytes: size}}}
					for _, s := range c.StringSlice("constraint") {
						con, err := parseConstraint(s)
						if err != nil {
							return err
						}
						req.Constraints = append(req.Constraints, con)
					}
					k, err := dial(c, e)
					if err != nil {
						return err
					}
					alloc, err := allocateOne(c.Context, k, req, false, e)
					if err != nil {
						return err
					}
					release(c.Context, k, alloc.GetId(), "dcosctl volume create: volume placed")
					t := newTable(e.stdout, "NAME", "AGENT")
					t.row(c.Args().First(), alloc.GetAgentId())
					return t.flush()
				},
			},
			{
				Name:      "destroy",
				Usage:     "destroy a persistent volume and its data",
				ArgsUsage: "NAME...",
				Description: `Destroy each volume: its data is deleted on its agent and its disk freed.
A volume claimed by a live allocation is refused (revoke the allocation
first). Destroying a volume that does not exist is not an error.`,
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return usagef("volume destroy: want one or more NAMEs")
					}
					k, err := dial(c, e)
					if err != nil {
						return err
					}
					for _, name := range c.Args().Slice() {
						if _, err := k.DestroyVolume(c.Context, connect.NewRequest(&syscallsv1.DestroyVolumeRequest{Name: name})); err != nil {
							return callError("DestroyVolume", err)
						}
					}
					return nil
				},
			},
		},
	}
}

// dash is s, or "-" when empty.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
