package api

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Default connection caps of the API port (see LimitListener).
const (
	DefaultMaxConnections          = 10_000
	DefaultMaxConnectionsPerClient = 1_000
)

// ConnLimiter is a net.Listener that caps the connections open at once,
// in total and per client IP address. A connection beyond a cap is closed
// as soon as it is accepted, before anything is read from it, and Accept
// goes on to the next one: a flood costs the process one file descriptor
// per connection for a moment, never more than the caps for long.
// It is safe for concurrent use.
type ConnLimiter struct {
	net.Listener
	total, perClient int // ≤ 0: no cap
	log              *slog.Logger

	mu     sync.Mutex
	open   int
	byAddr map[netip.Addr]int

	refusedTotal, refusedPerClient atomic.Int64
	lastLogged                     atomic.Int64 // unix nanoseconds of the last refusal logged
}

// LimitListener wraps ln with caps of total connections and perClient
// connections per remote IP address (≤ 0: no cap). Refusals are logged to
// log at most every 10 seconds (nil: not logged).
func LimitListener(ln net.Listener, total, perClient int, log *slog.Logger) *ConnLimiter {
	return &ConnLimiter{Listener: ln, total: total, perClient: perClient, log: log, byAddr: map[netip.Addr]int{}}
}

// Accept returns the next connection within the caps.
func (l *ConnLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := remoteAddr(c)
		l.mu.Lock()
		full := l.total > 0 && l.open >= l.total
		mine := l.perClient > 0 && l.byAddr[addr] >= l.perClient
		if !full && !mine {
			l.open++
			l.byAddr[addr]++
			l.mu.Unlock()
			return &limitedConn{Conn: c, l: l, addr: addr}, nil
		}
		open, fromAddr := l.open, l.byAddr[addr]
		l.mu.Unlock()
		// Counted before the close: a client that saw its connection
		// closed finds it counted (Refused, the metrics).
		if full {
			l.refusedTotal.Add(1)
		} else {
			l.refusedPerClient.Add(1)
		}
		c.Close()
		l.logRefusal(l.Refused(), addr, full, open, fromAddr)
	}
}

func (l *ConnLimiter) logRefusal(n int64, addr netip.Addr, full bool, open, fromAddr int) {
	now, last := time.Now().UnixNano(), l.lastLogged.Load()
	if l.log == nil || now-last < int64(10*time.Second) || !l.lastLogged.CompareAndSwap(last, now) {
		return
	}
	which := "per-client"
	if full {
		which = "total"
	}
	l.log.Warn("connection refused: cap reached", "cap", which, "client", addr, "open", open, "open_from_client", fromAddr,
		"max_connections", l.total, "max_connections_per_client", l.perClient, "refused_so_far", n)
}

// Open returns the number of connections open now.
func (l *ConnLimiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Refused returns the number of connections closed at accept so far.
func (l *ConnLimiter) Refused() int64 { return l.refusedTotal.Load() + l.refusedPerClient.Load() }

func (l *ConnLimiter) release(addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.byAddr[addr]--; l.byAddr[addr] <= 0 {
		delete(l.byAddr, addr)
	}
}

func remoteAddr(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{} // not TCP (a unix socket): all such clients share one count
}

// limitedConn gives its place back when closed (once).
type limitedConn struct {
	net.Conn
	l    *ConnLimiter
	addr netip.Addr
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.addr) })
	return err
}

// CloseWrite half-closes a TCP connection: net/http calls it before it
// closes a connection it answered without reading the whole request, so
// that the client sees the answer (e.g. 401) rather than a reset.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
