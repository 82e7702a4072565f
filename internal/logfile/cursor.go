package logfile

import (
	"fmt"
	"strconv"
	"strings"
)

// Cursor is a position in a stream: byte Off of generation Gen. The zero
// Cursor means "the oldest byte still stored". Cursors are plain values,
// safe to copy, compare and send over the wire in their text form.
type Cursor struct {
	Gen uint64
	Off int64
}

// String returns the wire form "GEN:OFF" (decimal), which ParseCursor
// accepts.
func (c Cursor) String() string {
	return strconv.FormatUint(c.Gen, 10) + ":" + strconv.FormatInt(c.Off, 10)
}

// ParseCursor parses the wire form "GEN:OFF" made by Cursor.String: two
// decimal numbers, OFF not negative, no signs, spaces or other text.
func ParseCursor(s string) (Cursor, error) {
	g, o, ok := strings.Cut(s, ":")
	if !ok {
		return Cursor{}, fmt.Errorf("parse cursor %q: want GEN:OFF", s)
	}
	if !allDigits(g) {
		return Cursor{}, fmt.Errorf("parse cursor %q: generation %q is not a decimal number", s, g)
	}
	if !allDigits(o) {
		return Cursor{}, fmt.Errorf("parse cursor %q: offset %q is not a decimal number", s, o)
	}
	gen, err := strconv.ParseUint(g, 10, 64)
	if err != nil {
		return Cursor{}, fmt.Errorf("parse cursor %q: generation: %w", s, err)
	}
	off, err := strconv.ParseInt(o, 10, 64)
	if err != nil {
		return Cursor{}, fmt.Errorf("parse cursor %q: offset: %w", s, err)
	}
	return Cursor{Gen: gen, Off: off}, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
