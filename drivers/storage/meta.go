package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/dcos-kernel/dcos/internal/atomicfile"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

// metaVersion is the version of the volume records the driver writes.
const metaVersion = 1

// volumeMeta is a volume's record, StateDir/meta/<escaped ID>.json: the
// volume exists exactly as long as its record does.
type volumeMeta struct {
	contract.Volume
	Version     int         `json:"version"`
	Enforcement Enforcement `json:"enforcement"`
	// Project is the volume's quota project (EnforceQuota only).
	Project uint32 `json:"project,omitempty"`
}

// decodeMeta decodes and checks a volume record.
func decodeMeta(b []byte) (*volumeMeta, error) {
	var v volumeMeta
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	switch {
	case v.Version != metaVersion:
		return nil, fmt.Errorf("version %d: want %d", v.Version, metaVersion)
	case v.ID == "" || v.Role == "" || v.Path == "":
		return nil, errors.New("no ID, role or path")
	case v.SizeBytes < MinSize:
		return nil, fmt.Errorf("size %d: below the minimum", v.SizeBytes)
	}
	switch v.Enforcement {
	case EnforceLoop, EnforceQuota, EnforceNone:
	default:
		return nil, fmt.Errorf("enforcement %q: unknown", v.Enforcement)
	}
	if v.Enforced != (v.Enforcement != EnforceNone) {
		return nil, fmt.Errorf("enforced %v with enforcement %q", v.Enforced, v.Enforcement)
	}
	return &v, nil
}

// writeMeta writes v's record atomically and durably
// (atomicfile.WriteDurable).
func writeMeta(dir, name string, v *volumeMeta) error {
	v.Version = metaVersion
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteDurable(filepath.Join(dir, name+".json"), b); err != nil {
		return fmt.Errorf("write volume record: %w", err)
	}
	return nil
}

// removeMeta removes a volume's record durably.
func removeMeta(dir, name string) error {
	if err := os.Remove(filepath.Join(dir, name+".json")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove volume record: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// loadVolumes reads the volume records in dir. A record that cannot be
// read is logged and skipped, and its volume's data left alone: nothing
// is removed on the strength of a file the driver could not understand.
// Leftover temporary files are removed.
func loadVolumes(dir string, log *slog.Logger) (map[string]*volumeMeta, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]*volumeMeta{}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if atomicfile.IsTemp(e.Name()) {
			os.Remove(p)
			continue
		}
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		v, err := decodeMeta(b)
		if err == nil {
			if n, _ := escapeID(v.ID); n != name {
				err = fmt.Errorf("ID %q does not match the file name", v.ID)
			}
		}
		if err != nil {
			log.Error("storage: unreadable volume record: volume not offered, data kept", "file", p, "err", err)
			out[name] = nil // known name: its directory is not a leftover
			continue
		}
		out[name] = v
	}
	return out, nil
}
