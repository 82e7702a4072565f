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
	return serve(ctx, &sniffListener{Listener: ln}, h, log, t, cfg)
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
