package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// FrameKind is the kind of a frame on an exec connection.
type FrameKind byte

// Frame kinds. Client → supervisor: Stdin, StdinEOF, Resize. Supervisor →
// client: Stdout, Stderr, Exit (the last frame), Error (instead of Exit:
// the exec failed).
const (
	FrameStdin    FrameKind = 1 // payload: bytes for the command's stdin
	FrameStdinEOF FrameKind = 2 // no payload: close stdin (a TTY: send EOF)
	FrameResize   FrameKind = 3 // payload: rows, cols (2 bytes each, big endian)
	FrameStdout   FrameKind = 4 // payload: output bytes (a TTY's: both streams)
	FrameStderr   FrameKind = 5 // payload: output bytes
	FrameExit     FrameKind = 6 // payload: code (4 bytes, signed), signal (4 bytes)
	FrameError    FrameKind = 7 // payload: a message
)

// MaxFrame is the largest payload of a frame.
const MaxFrame = 32 << 10

// frameHeader is 1 byte of kind and 4 bytes of payload length, big endian.
const frameHeader = 5

// Frame is one frame of an exec connection. Data is only valid until the
// next ReadFrame on the same FrameReader.
type Frame struct {
	Kind FrameKind
	Data []byte
}

// WriteFrame writes one frame of kind k with payload p (at most MaxFrame
// bytes) to w in a single Write.
func WriteFrame(w io.Writer, k FrameKind, p []byte) error {
	if len(p) > MaxFrame {
		return fmt.Errorf("write frame: %d bytes exceeds %d", len(p), MaxFrame)
	}
	b := make([]byte, frameHeader+len(p))
	b[0] = byte(k)
	binary.BigEndian.PutUint32(b[1:], uint32(len(p)))
	copy(b[frameHeader:], p)
	_, err := w.Write(b)
	return err
}

// FrameReader reads frames from a stream with one fixed buffer of
// MaxFrame bytes. Not safe for concurrent use.
type FrameReader struct {
	r   io.Reader
	buf []byte
}

// NewFrameReader returns a FrameReader of r.
func NewFrameReader(r io.Reader) *FrameReader {
	return &FrameReader{r: r, buf: make([]byte, frameHeader+MaxFrame)}
}

// ReadFrame reads the next frame. An unknown kind, a payload over
// MaxFrame or a payload of the wrong size for its kind is an error; EOF
// before a frame starts is io.EOF, within one io.ErrUnexpectedEOF.
func (fr *FrameReader) ReadFrame() (Frame, error) {
	if _, err := io.ReadFull(fr.r, fr.buf[:frameHeader]); err != nil {
		return Frame{}, err
	}
	k := FrameKind(fr.buf[0])
	n := binary.BigEndian.Uint32(fr.buf[1:frameHeader])
	if k < FrameStdin || k > FrameError {
		return Frame{}, fmt.Errorf("read frame: unknown kind %d", k)
	}
	if n > MaxFrame {
		return Frame{}, fmt.Errorf("read frame: %d bytes exceeds %d", n, MaxFrame)
	}
	switch {
	case k == FrameStdinEOF && n != 0,
		k == FrameResize && n != 4,
		k == FrameExit && n != 8:
		return Frame{}, fmt.Errorf("read frame: kind %d with %d bytes", k, n)
	}
	p := fr.buf[frameHeader : frameHeader+int(n)]
	if _, err := io.ReadFull(fr.r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	return Frame{Kind: k, Data: p}, nil
}

// ResizePayload encodes a terminal size for FrameResize.
func ResizePayload(rows, cols uint16) []byte {
	var b [4]byte
	binary.BigEndian.PutUint16(b[:], rows)
	binary.BigEndian.PutUint16(b[2:], cols)
	return b[:]
}

// ParseResize decodes a FrameResize payload.
func ParseResize(p []byte) (rows, cols uint16) {
	return binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:])
}

// ExitPayload encodes an exit for FrameExit: code (-1 when killed by a
// signal) and signal.
func ExitPayload(code, sig int) []byte {
	var b [8]byte
	binary.BigEndian.PutUint32(b[:], uint32(int32(code)))
	binary.BigEndian.PutUint32(b[4:], uint32(int32(sig)))
	return b[:]
}

// ParseExit decodes a FrameExit payload; a code outside -1..255 or a
// signal outside 0..64 is an error.
func ParseExit(p []byte) (code, sig int, err error) {
	code = int(int32(binary.BigEndian.Uint32(p)))
	sig = int(int32(binary.BigEndian.Uint32(p[4:])))
	if code < -1 || code > 255 || sig < 0 || sig > 64 {
		return 0, 0, fmt.Errorf("exit frame: code %d signal %d", code, sig)
	}
	return code, sig, nil
}
