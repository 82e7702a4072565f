package daemon

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/drivers/storage"
	"github.com/dcos-kernel/dcos/internal/quantity"
	"github.com/dcos-kernel/dcos/internal/store"
)

// devDefaultDisk is the disk `dcosd dev` gives allocations that ask for
// none when sandboxes are sized.
const devDefaultDisk = 64 << 20

// devDefaults turns on, for `dcosd dev` as root, what a user tries next —
// bridge networking, container images and sized sandboxes — unless their
// flags were given (--network-driver none, --image-driver none,
// --storage-driver none turn them off). With sized
// sandboxes it also sets --default-disk (unless given) and, unless
// --resources names a disk, bounds the agent's disk by the free space of
// the data dir's filesystem less the store's floor, since sandboxes and
// the kernel's etcd share it: allocations can never add up to filling it
// (see devResources). It returns one line per feature for the start
// banner, the last one unfinished when sized (devResources completes it).
func devDefaults(c *cli.Context, dataDir string, root bool) (features []string, sized bool, err error) {
	switch {
	case !c.Bool("task-isolation"):
		features = append(features, "task isolation: OFF (--task-isolation=false): tasks run as this process's user and see the node")
	case !root:
		features = append(features, "task isolation: off (not root): tasks run as your user and can read what you can")
	default:
		features = append(features, "task isolation: enabled (a uid per framework from "+c.String("task-uids")+", no capabilities, own mount/pid namespaces without the data dir and tokens; --task-isolation=false turns it off)")
	}
	switch {
	case c.IsSet("network-driver"):
		if nd := c.String("network-driver"); nd != builtinNet {
			features = append(features, "bridge networking: off (--network-driver "+nd+")")
		} else if !root {
			features = append(features, "bridge networking: off (not root: the bridge driver needs root)")
		} else {
			features = append(features, "bridge networking: enabled (--network-driver bridge)")
		}
	case !root:
		features = append(features, "bridge networking: off (not root: the bridge driver needs root)")
	default:
		if err := c.Set("network-driver", builtinNet); err != nil {
			return nil, false, err
		}
		features = append(features, "bridge networking: enabled (tasks may ask for --network bridge; --network-driver none turns it off)")
	}
	switch {
	case c.IsSet("image-driver") && c.String("image-driver") != builtinImage:
		features = append(features, "container images: off (--image-driver "+c.String("image-driver")+")")
	case !root:
		features = append(features, "container images: off (not root: the oci driver needs root)")
	case !c.Bool("task-isolation"):
		features = append(features, "container images: off (--task-isolation=false: image tasks run isolated or not at all)")
	default:
		if err := c.Set("image-driver", builtinImage); err != nil {
			return nil, false, err
		}
		features = append(features, "container images: enabled (dcosctl run --image REF; --image-driver none turns it off)")
	}

	switch {
	case c.IsSet("storage-driver") && c.String("storage-driver") != builtinStorage:
		features = append(features, "sized sandboxes: off (--storage-driver "+c.String("storage-driver")+")")
	case !root:
		features = append(features, "sized sandboxes: off (not root: the local storage driver needs root); a task can fill the data dir's filesystem, the kernel then refuses writes")
	default:
		mode, why := storage.Detect(dataDir)
		if e := c.String("storage-enforcement"); e != "" {
			mode, why = storage.Enforcement(e), nil
		}
		if mode == storage.EnforceNone {
			if why == nil {
				why = fmt.Errorf("--storage-enforcement none")
			}
			features = append(features, fmt.Sprintf("sized sandboxes: off (%v)", why))
			break
		}
		if !c.IsSet("storage-driver") {
			if err := c.Set("storage-driver", builtinStorage); err != nil {
				return nil, false, err
			}
		}
		detail := string(mode)
		if !c.IsSet("default-disk") {
			if err := c.Set("default-disk", quantity.FormatBytes(devDefaultDisk)); err != nil {
				return nil, false, err
			}
		}
		detail += ", allocations without a disk get " + c.String("default-disk")
		features = append(features, "sized sandboxes: enabled ("+detail)
		sized = true
	}
	return features, sized, nil
}

// devResources returns the agent's --resources and the end of the sized
// sandboxes' start line: with sized sandboxes and no disk named, the disk
// is bounded by devDiskBound, measured once the kernel's etcd has started.
func devResources(c *cli.Context, dataDir string, sized bool) (resources, detail string, err error) {
	resources = c.String("resources")
	if !sized {
		return resources, "", nil
	}
	detail = "; --storage-driver none turns it off)"
	bound, ok, err := devDiskBound(c, dataDir)
	if err != nil || !ok {
		return resources, detail, err
	}
	return joinResources(resources, "disk="+fmt.Sprint(bound)),
		", agent disk " + quantity.FormatBytes(bound) + ": free space less the --store-min-free floor" + detail, nil
}

// devDiskBound is the agent's disk when --resources names none: the free
// space of dataDir's filesystem less the store's floor (at least 0).
func devDiskBound(c *cli.Context, dataDir string) (int64, bool, error) {
	if r := c.String("resources"); r != "" {
		res, err := quantity.ParseResources(r)
		if err != nil {
			return 0, false, fmt.Errorf("--resources: %w", err)
		}
		if res.DiskBytes != nil {
			return 0, false, nil
		}
	}
	minFree, err := quantity.ParseBytes(c.String("store-min-free"))
	if err != nil {
		return 0, false, fmt.Errorf("--store-min-free: %w", err)
	}
	free, err := store.FreeBytes(dataDir)
	if err != nil {
		return 0, false, nil // not measurable: the agent measures its total
	}
	return max(free-minFree, 0), true, nil
}

func joinResources(list, kv string) string {
	if list == "" {
		return kv
	}
	return list + "," + kv
}
