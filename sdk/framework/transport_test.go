package framework

import (
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// watchControl is an HTTP transport that lets a test break Watch streams
// the way a network does: cut the first stream after a number of
// messages, cut every open stream, or refuse new ones for a while.
type watchControl struct {
	next     http.RoundTripper
	cutFirst int         // messages the first Watch stream delivers before it breaks (0: no cut)
	blocked  atomic.Bool // refuse new Watch streams
	blockAll atomic.Bool // refuse every request
	streams  atomic.Int64

	mu     sync.Mutex
	bodies map[*cutBody]bool
}

var errCut = errors.New("test: stream cut")

func newWatchControl() *watchControl {
	return &watchControl{next: HTTPClient().Transport, bodies: map[*cutBody]bool{}}
}

func (w *watchControl) client() *http.Client { return &http.Client{Transport: w} }

func (w *watchControl) RoundTrip(r *http.Request) (*http.Response, error) {
	if w.blockAll.Load() {
		return nil, errors.New("test: network down")
	}
	if !strings.HasSuffix(r.URL.Path, "/Watch") {
		return w.next.RoundTrip(r)
	}
	if w.blocked.Load() {
		return nil, errors.New("test: watch blocked")
	}
	resp, err := w.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	b := &cutBody{r: resp.Body, left: -1, owner: w}
	if w.streams.Add(1) == 1 && w.cutFirst > 0 {
		b.left = w.cutFirst
	}
	w.mu.Lock()
	w.bodies[b] = true
	w.mu.Unlock()
	resp.Body = b
	return resp, nil
}

// cutAll breaks every open Watch stream.
func (w *watchControl) cutAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for b := range w.bodies {
		b.cut.Store(true)
		b.r.Close()
	}
}

// cutBody passes a Connect stream's envelopes through and breaks after
// left of them (left < 0: never, unless cut).
type cutBody struct {
	r     io.ReadCloser
	owner *watchControl
	cut   atomic.Bool

	mu   sync.Mutex
	left int
	hdr  []byte
	need int
}

func (b *cutBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cut.Load() || b.left == 0 {
		return 0, errCut
	}
	n, err := b.r.Read(p)
	if b.left < 0 {
		return n, err
	}
	for i := 0; i < n; {
		if b.need > 0 {
			take := min(b.need, n-i)
			b.need -= take
			i += take
		} else {
			b.hdr = append(b.hdr, p[i])
			i++
			if len(b.hdr) == 5 {
				b.need = int(binary.BigEndian.Uint32(b.hdr[1:]))
				b.hdr = nil
			}
		}
		if b.need == 0 && b.hdr == nil {
			if b.left--; b.left == 0 {
				return i, nil
			}
		}
	}
	return n, err
}

func (b *cutBody) Close() error {
	b.owner.mu.Lock()
	delete(b.owner.bodies, b)
	b.owner.mu.Unlock()
	return b.r.Close()
}
