package host

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// catalog maps a file name (a base name, or an absolute path as
// `sha256sum /abs/path` writes it) to the sha256 registered for it.
type catalog map[string][]byte

// lookup returns the checksum registered for the plugin file at path (an
// absolute path), by absolute path first, then by base name.
func (c catalog) lookup(path string) ([]byte, bool) {
	if sum, ok := c[path]; ok {
		return sum, true
	}
	sum, ok := c[filepath.Base(path)]
	return sum, ok
}

// loadCatalog reads the catalog at path. A missing file is an empty catalog:
// every discovered plugin is then refused, with the command that registers
// it.
func loadCatalog(path string) (catalog, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return catalog{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	defer f.Close()
	return parseCatalog(path, f)
}

// parseCatalog parses sha256sum output: one `<64 hex digits>  <file name>`
// per line (a `*` before the name, binary mode, is accepted). Blank lines
// and lines starting with # are skipped. A malformed line, or a file listed
// twice with different checksums, is an error naming the line; name is the
// catalog's path, for messages.
func parseCatalog(name string, r io.Reader) (catalog, error) {
	c := catalog{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \t\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sumHex, file, ok := strings.Cut(line, " ")
		if ok {
			// "<sum>  <name>" (text mode) or "<sum> *<name>" (binary mode).
			switch {
			case strings.HasPrefix(file, " "), strings.HasPrefix(file, "*"):
				file = file[1:]
			default:
				ok = false
			}
		}
		sum, err := hex.DecodeString(sumHex)
		if !ok || err != nil || len(sum) != 32 || file == "" || strings.ContainsAny(file, "\x00") {
			return nil, fmt.Errorf("catalog %s:%d: want %q as sha256sum writes it, got %q", name, n, "<64 hex digits>  <file name>", line)
		}
		file = filepath.Clean(file)
		if prev, ok := c[file]; ok && !bytes.Equal(prev, sum) {
			return nil, fmt.Errorf("catalog %s:%d: %s is listed again with a different sha256", name, n, file)
		}
		c[file] = sum
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("catalog %s: %w", name, err)
	}
	return c, nil
}
