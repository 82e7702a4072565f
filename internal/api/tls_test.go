package api

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/pki"
)

// TestServeTLS_HTTP2AndPlainHint serves over TLS: an HTTPS client gets
// HTTP/2, a plain HTTP client a 400 that says what to do, and a client
// that sends nothing does not stall others.
func TestServeTLS_HTTP2AndPlainHint(t *testing.T) {
	ca, err := pki.NewCA("test CA", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kp, _, _, err := ca.Issue(pki.Leaf{CommonName: "k", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Server: true, Validity: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r := pki.NewReloader(&kp, pki.Bundle{ca.Cert})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { io.WriteString(w, req.Proto) })
	go func() {
		done <- ServeTLSWith(ctx, ln, h, slog.New(slog.DiscardHandler), DefaultTimeouts(), r.ServerConfig(tls.VerifyClientCertIfGiven))
	}()
	defer func() { cancel(); <-done }()
	addr := ln.Addr().String()

	silent, err := net.Dial("tcp", addr) // holds a connection, sends nothing
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	tr := &http.Transport{TLSClientConfig: pki.NewReloader(nil, pki.Bundle{ca.Cert}).ClientConfig(""), ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "HTTP/2.0" {
		t.Errorf("over TLS the handler saw %q, want HTTP/2.0", b)
	}

	plain := &http.Transport{}
	defer plain.CloseIdleConnections()
	res, err = (&http.Client{Transport: plain, Timeout: 10 * time.Second}).Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || string(b) != PlainHTTPHint || !strings.Contains(string(b), "https://") {
		t.Errorf("plain HTTP got %d %q", res.StatusCode, b)
	}
}
