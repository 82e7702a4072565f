package hostos

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

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
