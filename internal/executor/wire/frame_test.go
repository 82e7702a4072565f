package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrameReader_RoundTrip(t *testing.T) {
	var b bytes.Buffer
	big := bytes.Repeat([]byte{0xff}, MaxFrame)
	frames := []Frame{{FrameStdin, []byte("hi")}, {FrameStdinEOF, []byte{}}, {FrameResize, ResizePayload(24, 80)},
		{FrameStdout, big}, {FrameStderr, []byte{0}}, {FrameExit, ExitPayload(-1, 9)}, {FrameError, []byte("no")}}
	for _, f := range frames {
		if err := WriteFrame(&b, f.Kind, f.Data); err != nil {
			t.Fatal(err)
		}
	}
	fr := NewFrameReader(&b)
	for i, want := range frames {
		got, err := fr.ReadFrame()
		if err != nil || got.Kind != want.Kind || !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("frame %d: %v %d bytes, %v", i, got.Kind, len(got.Data), err)
		}
	}
	if _, err := fr.ReadFrame(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
	if r, c := ParseResize(ResizePayload(24, 80)); r != 24 || c != 80 {
		t.Errorf("resize %dx%d", r, c)
	}
	if c, s, err := ParseExit(ExitPayload(-1, 9)); c != -1 || s != 9 || err != nil {
		t.Errorf("exit %d %d %v", c, s, err)
	}
	if err := WriteFrame(&b, FrameStdout, make([]byte, MaxFrame+1)); err == nil {
		t.Error("an oversized frame was written")
	}
}

func TestFrameReader_Bad(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   []byte
	}{
		{"unknown kind", []byte{0, 0, 0, 0, 0}},
		{"kind past error", []byte{8, 0, 0, 0, 0}},
		{"too long", []byte{4, 0, 1, 0, 1}},
		{"eof with data", []byte{2, 0, 0, 0, 1, 'x'}},
		{"short resize", []byte{3, 0, 0, 0, 2, 0, 1}},
		{"truncated", []byte{4, 0, 0, 0, 9, 'x'}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewFrameReader(bytes.NewReader(tt.in)).ReadFrame(); err == nil || errors.Is(err, io.EOF) {
				t.Errorf("%v, want an error", err)
			}
		})
	}
	if _, _, err := ParseExit(ExitPayload(256, 0)); err == nil {
		t.Error("exit code 256 accepted")
	}
}

func FuzzFrameReader(f *testing.F) {
	var b bytes.Buffer
	WriteFrame(&b, FrameStdin, []byte("abc"))
	WriteFrame(&b, FrameResize, ResizePayload(1, 2))
	WriteFrame(&b, FrameExit, ExitPayload(3, 0))
	f.Add(b.Bytes())
	f.Add([]byte{2, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		fr := NewFrameReader(bytes.NewReader(in))
		for {
			fm, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if len(fm.Data) > MaxFrame || fm.Kind < FrameStdin || fm.Kind > FrameError {
				t.Fatalf("bad frame accepted: kind %d, %d bytes", fm.Kind, len(fm.Data))
			}
			switch fm.Kind {
			case FrameResize:
				ParseResize(fm.Data)
			case FrameExit:
				ParseExit(fm.Data)
			}
		}
	})
}
