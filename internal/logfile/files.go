package logfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// genDigits is the minimum width of a generation number in a file name.
const genDigits = 6

func checkName(dir, name string) error {
	if dir == "" {
		return errors.New("dir is empty")
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("name %q: want a plain file name", name)
	}
	return nil
}

func genPath(dir, name string, gen uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%s.%0*d", name, genDigits, gen))
}

// parseGen returns the generation of file base name fn of stream name.
func parseGen(name, fn string) (uint64, bool) {
	rest, ok := strings.CutPrefix(fn, name+".")
	if !ok || len(rest) < genDigits || !allDigits(rest) {
		return 0, false
	}
	g, err := strconv.ParseUint(rest, 10, 64)
	if err != nil || g == 0 {
		return 0, false
	}
	return g, true
}

// listGens returns the stored generations of a stream, ascending.
func listGens(dir, name string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var gens []uint64
	for _, e := range ents {
		if g, ok := parseGen(name, e.Name()); ok {
			gens = append(gens, g)
		}
	}
	sort.Slice(gens, func(i, j int) bool { return gens[i] < gens[j] })
	return gens, nil
}
