// Package atomicfile replaces small files whole: a reader sees the old
// content or the new, never a part. The agent's checkpoints, the storage
// driver's volume records, the bridge driver's address leases, the exec
// supervisor's exit records and dcosctl's client config are written this
// way.
package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
)

// Write replaces path with b: b goes to a temporary file in path's
// directory (mode 0600; its name satisfies IsTemp), which is then renamed
// over path. On an error the temporary file is removed and path is
// untouched. It does not fsync: the content survives the process, not a
// crash of the machine.
func Write(path string, b []byte) error {
	return write(path, b, false)
}

// WriteDurable is Write that also survives a crash of the machine: it
// fsyncs the file before the rename and the directory after it.
func WriteDurable(path string, b []byte) error {
	if err := write(path, b, true); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func write(path string, b []byte, sync bool) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// IsTemp reports whether a directory entry's name is one of Write's
// temporary files (left behind only by a process that died mid-write), so
// that a loader may skip or remove it.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".tmp")
}
