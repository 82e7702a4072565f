package hostos

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// parseStat returns the state (field 3) and start time (field 22, in clock
// ticks after boot) of a /proc/PID/stat line. The command name (field 2)
// may contain spaces and parentheses, so fields are counted after the last
// ')'.
func parseStat(b []byte) (state byte, start uint64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("stat: %d fields after the command name, want at least 20", len(f))
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("stat: starttime: %w", err)
	}
	return f[0][0], start, nil
}

// parseMemTotal returns MemTotal of a /proc/meminfo file in bytes.
func parseMemTotal(b []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != "MemTotal" {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			break
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("meminfo: MemTotal: bad value %q", f[0])
		}
		mult := int64(1)
		if len(f) > 1 {
			switch f[1] {
			case "kB":
				mult = 1024
			default:
				return 0, fmt.Errorf("meminfo: MemTotal: unknown unit %q", f[1])
			}
		}
		return n * mult, nil
	}
	return 0, fmt.Errorf("meminfo: no MemTotal line")
}
