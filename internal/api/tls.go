package api

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// PlainHTTPHint is the body of the answer to a client that speaks plain
// HTTP (or h2c) to a kernel serving TLS.
const PlainHTTPHint = "this port speaks TLS: call it with https:// and the cluster's CA (dcosctl login records it; curl --cacert ca.crt https://...; grpcurl -cacert ca.crt ...)\n"

// ServeTLSWith serves h like ServeWith, but over TLS with cfg (HTTP/2 by
// ALPN, and HTTP/1.1; cfg normally comes from pki.Reloader.ServerConfig,
// so that certificates are replaced without a restart). A client that
// speaks plain HTTP instead is answered 400 with PlainHTTPHint and
// disconnected; nothing it sent is handed to the handler.
func ServeTLSWith(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger, t Timeouts, cfg *tls.Config) error {
	if cfg == nil {
		return errors.New("api: ServeTLSWith needs a TLS config")
	}
	hl := newHandshakeListener(&sniffListener{Listener: ln}, cfg, t.ReadHeader)
	defer hl.Close()
	// net/http edits its server's TLS config in place (HTTP/2 setup):
	// it gets a copy, the handshakes the original.
	return serve(ctx, hl, h, log, t, cfg.Clone())
}

// handshakeListener completes each connection's TLS handshake in a
// goroutine of its own, which ends with it, and hands out only
// established *tls.Conn (net/http serves HTTP/2 on those that negotiated
// it). Done on the connection's serving goroutine instead, the
// handshake's deep crypto stack stayed with every idle connection's
// goroutine: thousands of idle TLS connections cost several times the
// memory. A handshake that does not complete within timeout is closed.
type handshakeListener struct {
	net.Listener
	cfg     *tls.Config
	timeout time.Duration
	conns   chan net.Conn
	errc    chan error
	done    chan struct{}
	once    sync.Once
}

func newHandshakeListener(ln net.Listener, cfg *tls.Config, timeout time.Duration) *handshakeListener {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	l := &handshakeListener{Listener: ln, cfg: cfg, timeout: timeout, conns: make(chan net.Conn), errc: make(chan error, 1), done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

func (l *handshakeListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case l.errc <- err:
			case <-l.done:
			}
			return
		}
		go l.handshake(c)
	}
}

func (l *handshakeListener) handshake(c net.Conn) {
	tc := tls.Server(c, l.cfg)
	c.SetDeadline(time.Now().Add(l.timeout))
	if err := tc.Handshake(); err != nil {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	select {
	case l.conns <- tc:
	case <-l.done:
		tc.Close()
	}
}

// Accept returns the next established TLS connection.
func (l *handshakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errc:
		l.errc <- err // for later calls too
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and closes the listener.
func (l *handshakeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// sniffListener hands out connections that check their first byte for a
// TLS handshake record on the first Read (in the server's goroutine for
// the connection, never in Accept: a silent client must not stall the
// accept loop).
type sniffListener struct{ net.Listener }

func (l *sniffListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sniffConn{Conn: c}, nil
}

// sniffConn answers plain HTTP with PlainHTTPHint and fails the read,
// which ends the TLS handshake and the connection.
type sniffConn struct {
	net.Conn
	once sync.Once
	err  error
}

// errPlainHTTP fails the TLS handshake of a plain HTTP client (the server
// logs handshake errors at debug level).
var errPlainHTTP = errors.New("api: a client spoke plain HTTP to the TLS port")

func (c *sniffConn) Read(p []byte) (int, error) {
	var n int
	first := false
	c.once.Do(func() {
		first = true
		n, c.err = c.Conn.Read(p)
		if c.err != nil || n == 0 {
			return
		}
		if p[0] != 0x16 { // not a TLS handshake record
			c.SetWriteDeadline(time.Now().Add(2 * time.Second))
			c.Conn.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n" + PlainHTTPHint))
			n, c.err = 0, errPlainHTTP
		}
	})
	if first {
		return n, c.err
	}
	if c.err == errPlainHTTP {
		return 0, c.err
	}
	return c.Conn.Read(p)
}
