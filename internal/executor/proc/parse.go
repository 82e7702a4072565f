package proc

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// stat is what we read of /proc/PID/stat.
type stat struct {
	state        byte
	pgrp         int
	utime, stime uint64 // clock ticks
	cutime       uint64 // clock ticks of its reaped children (fields 16, 17)
	cstime       uint64
	start        uint64 // field 22: clock ticks after boot
	rss          uint64 // pages
}

// parseStat parses a /proc/PID/stat line. The command name (field 2) may
// contain spaces and parentheses, so fields are counted after the last ')'.
func parseStat(b []byte) (stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, fmt.Errorf("stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 22 || len(f[0]) != 1 {
		return stat{}, fmt.Errorf("stat: %d fields after the command name, want at least 22", len(f))
	}
	var s stat
	var err error
	num := func(field int) uint64 {
		if err != nil {
			return 0
		}
		var v uint64
		v, err = strconv.ParseUint(f[field-3], 10, 64)
		if err != nil {
			err = fmt.Errorf("stat: field %d: %w", field, err)
		}
		return v
	}
	s.state = f[0][0]
	pgrp := num(5)
	s.utime, s.stime, s.start, s.rss = num(14), num(15), num(22), num(24)
	s.cutime, s.cstime = num(16), num(17)
	if err != nil {
		return stat{}, err
	}
	if pgrp > 1<<31 {
		return stat{}, fmt.Errorf("stat: pgrp %d", pgrp)
	}
	s.pgrp = int(pgrp)
	return s, nil
}

// parseBootTime returns the btime line of /proc/stat: seconds since the
// epoch at boot.
func parseBootTime(b []byte) (int64, bool) {
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil && n > 0
		}
	}
	return 0, false
}

// parseStatusField returns field's value in b, the text of a
// /proc/PID/status file, spaces trimmed; ok is false when no line holds
// the field.
func parseStatusField(b []byte, field string) (v string, ok bool) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		name, rest, found := bytes.Cut(line, []byte{':'})
		if found && string(name) == field {
			return string(bytes.TrimSpace(rest)), true
		}
	}
	return "", false
}
