package ctl

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/internal/quantity"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// defaultImageWait is how long `image rm` waits for the agents to drop the
// image: removals ride on heartbeats (one to deliver, one to report).
const defaultImageWait = 10 * time.Second

// imagePoll is how often `image rm` looks at the agents' lists.
const imagePoll = 250 * time.Millisecond

func imageCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "image",
		Usage: "list and remove the container images cached on agents",
		Description: `Agents report the images their image drivers (e.g. oci) keep; the kernel
lists them with each agent and relays removals with the agents' next
heartbeats.`,
		Subcommands: []*cli.Command{
			{
				Name:  "ls",
				Usage: "list the images cached on agents",
				Description: `Print one row per image and agent: agent, driver, reference, digest
(shortened), unpacked size, tasks running it now and when a task last
started from it. -o json prints every field, with full digests.

  dcosctl image ls
  dcosctl image ls --agent agent-1 -o json`,
				Flags: []cli.Flag{&cli.StringFlag{Name: "agent", Usage: "only agent `ID`"}},
				Action: func(c *cli.Context) error {
					f, k, err := listCall(c, e)
					if err != nil {
						return err
					}
					res, err := k.ListAgents(c.Context, connect.NewRequest(&syscallsv1.ListAgentsRequest{}))
					if err != nil {
						return callError("ListAgents", err)
					}
					ims, err := agentImages(res.Msg.GetAgents(), c.String("agent"))
					if err != nil {
						return err
					}
					if f == formatJSON {
						return writeImagesJSON(e, ims)
					}
					now := e.now()
					t := newTable(e.stdout, "AGENT", "DRIVER", "IMAGE", "DIGEST", "SIZE", "TASKS", "LAST USED")
					for _, im := range ims {
						used := "never"
						if im.GetLastUsed() != nil {
							used = formatAge(now, im.GetLastUsed()) + " ago"
						}
						t.row(im.agent, im.GetDriver(), im.GetRef(), shortDigest(im.GetDigest()),
							quantity.FormatBytes(im.GetSizeBytes()), strconv.Itoa(int(im.GetTasks())), used)
					}
					return t.flush()
				},
			},
			{
				Name:      "rm",
				Usage:     "remove an image from the agents that cache it",
				ArgsUsage: "REF",
				Description: `Ask every agent that lists REF (a reference as "image ls" shows it, or a
manifest digest) to delete it and the layers no other image uses; --agent
asks one agent only. Then wait up to --wait until no such agent lists it
(--wait 0: do not wait). An image a task runs is kept: the agents that
still list it are named, with their tasks; stop those tasks and run rm
again (a removal is delivered once).

  dcosctl image rm 127.0.0.1:5000/nginx:test
  dcosctl image rm sha256:4c1f0e3a... --agent agent-2 --wait 0`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "agent", Usage: "only agent `ID`"},
					&cli.DurationFlag{Name: "wait", Usage: "how long to wait for the agents to drop the image (`DURATION`; 0: do not wait)", Value: defaultImageWait},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usagef("image rm: want one REF")
					}
					if c.Duration("wait") < 0 {
						return usagef("image rm: --wait %s: must not be negative", c.Duration("wait"))
					}
					ref, agent := c.Args().First(), c.String("agent")
					k, err := dial(c, e)
					if err != nil {
						return err
					}
					res, err := k.RemoveImage(c.Context, connect.NewRequest(&syscallsv1.RemoveImageRequest{AgentId: agent, Ref: ref}))
					if err != nil {
						return callError("RemoveImage", err)
					}
					ids := res.Msg.GetAgentIds()
					if len(ids) == 0 {
						if agent != "" {
							return fmt.Errorf("image rm: agent %s does not list image %s (see dcosctl image ls)", agent, ref)
						}
						return fmt.Errorf("image rm: no agent lists image %s (see dcosctl image ls)", ref)
					}
					if c.Duration("wait") == 0 {
						fmt.Fprintf(e.stdout, "removal of %s sent to %s\n", ref, strings.Join(ids, ", "))
						return nil
					}
					still, err := waitImageGone(c.Context, k, ref, ids, c.Duration("wait"))
					if err != nil {
						return err
					}
					if len(still) == 0 {
						fmt.Fprintf(e.stdout, "%s removed from %s\n", ref, strings.Join(ids, ", "))
						return nil
					}
					var why []string
					for _, im := range still {
						why = append(why, fmt.Sprintf("%s (%s, %d tasks)", im.agent, im.GetRef(), im.GetTasks()))
					}
					return fmt.Errorf("image rm: after %s, %s still listed by %s: an image a task runs is kept; stop its tasks and run image rm again",
						c.Duration("wait"), ref, strings.Join(why, ", "))
				},
			},
		},
	}
}

// agentImage is an image with the agent that lists it.
type agentImage struct {
	*syscallsv1.ImageInfo
	agent string
}

// agentImages returns the images of agents (only agent's when not empty),
// sorted by agent, driver and reference. An agent the kernel does not
// know is an error.
func agentImages(agents []*syscallsv1.Agent, agent string) ([]agentImage, error) {
	var out []agentImage
	found := agent == ""
	for _, a := range agents {
		if agent != "" && a.GetId() != agent {
			continue
		}
		found = true
		for _, im := range a.GetImages() {
			out = append(out, agentImage{ImageInfo: im, agent: a.GetId()})
		}
	}
	if !found {
		return nil, fmt.Errorf("image ls: no agent %s (see dcosctl agents)", agent)
	}
	slices.SortFunc(out, func(x, y agentImage) int {
		return cmp.Or(cmp.Compare(x.agent, y.agent), cmp.Compare(x.GetDriver(), y.GetDriver()), cmp.Compare(x.GetRef(), y.GetRef()))
	})
	return out, nil
}

// writeImagesJSON prints {"images": [...]}, each image's ImageInfo fields
// and its "agentId".
func writeImagesJSON(e *env, ims []agentImage) error {
	list := make([]map[string]json.RawMessage, 0, len(ims))
	for _, im := range ims {
		b, err := marshalCompact(im.ImageInfo)
		if err != nil {
			return err
		}
		obj := map[string]json.RawMessage{}
		if err := json.Unmarshal(b, &obj); err != nil {
			return fmt.Errorf("encode image: %w", err)
		}
		id, _ := json.Marshal(im.agent)
		obj["agentId"] = id
		list = append(list, obj)
	}
	b, err := json.Marshal(map[string]any{"images": list})
	if err != nil {
		return fmt.Errorf("encode images: %w", err)
	}
	return writeIndented(e.stdout, b)
}

// waitImageGone polls the agents ids until none lists ref (by reference or
// digest) or wait has passed, and returns the images still listed.
func waitImageGone(ctx context.Context, k syscallsv1connect.KernelClient, ref string, ids []string, wait time.Duration) ([]agentImage, error) {
	deadline := time.Now().Add(wait)
	for {
		res, err := k.ListAgents(ctx, connect.NewRequest(&syscallsv1.ListAgentsRequest{}))
		if err != nil {
			return nil, callError("ListAgents", err)
		}
		all, _ := agentImages(res.Msg.GetAgents(), "")
		var still []agentImage
		for _, im := range all {
			if slices.Contains(ids, im.agent) && (im.GetRef() == ref || im.GetDigest() == ref) {
				still = append(still, im)
			}
		}
		if len(still) == 0 || !time.Now().Before(deadline) {
			return still, nil
		}
		t := time.NewTimer(min(imagePoll, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// shortDigest is a digest's algorithm and first 12 hex digits, as docker
// abbreviates image ids: sha256:4c1f0e3a9d7b.
func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok {
		return shortSHA(d)
	}
	return alg + ":" + shortSHA(hex)
}
