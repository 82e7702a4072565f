package kerneltest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/seal"
	"github.com/dcos-kernel/dcos/internal/store"
	"github.com/dcos-kernel/dcos/kernel"
)

// The tokens of DefaultTokens.
const (
	// OperatorToken is the operator "ops".
	OperatorToken = "operator-token-0123456789"
	// FrameworkToken is the framework "fw-a".
	FrameworkToken = "framework-a-token-0123456"
	// FrameworkBToken is a second framework, "fw-b".
	FrameworkBToken = "framework-b-token-0123456"
	// AgentToken is the agent principal "agents".
	AgentToken = "agent-token-0123456789abc"
)

// DefaultTokens returns the token set Start uses when Options.Tokens is
// nil: an operator, two frameworks and an agent. The slice is new on each
// call; the caller may change it.
func DefaultTokens() []api.TokenEntry {
	return []api.TokenEntry{
		{Token: OperatorToken, Name: "ops", Role: "operator"},
		{Token: FrameworkToken, Name: "fw-a", Role: "framework"},
		{Token: FrameworkBToken, Name: "fw-b", Role: "framework"},
		{Token: AgentToken, Name: "agents", Role: "agent"},
	}
}

// Options adjust the server Start runs. The zero value is a kernel with
// an hour's heartbeat timeout behind the default handler, with
// DefaultTokens, served by an httptest server with HTTP/2.
type Options struct {
	// Tokens are the API's tokens; nil means DefaultTokens().
	Tokens []api.TokenEntry
	// Kernel, if not nil, adjusts the kernel's config (e.g. Clock,
	// HeartbeatTimeout, Tick, WatchBuffer, Logger) before kernel.New.
	// Store is set and HeartbeatTimeout is an hour when it is called.
	Kernel func(*kernel.Config)
	// API, if not nil, adjusts the handler's config (e.g. RateLimits,
	// Conns, WatchWriteTimeout) before api.NewHandler. Tokens is set when
	// it is called.
	API func(*api.Config)
	// Listener, if not nil, is served by api.ServeWith (the production
	// server: HTTP/1.1 and cleartext HTTP/2) instead of an httptest
	// server; Start owns it from then on, and ServeWith closes it.
	Listener net.Listener
	// Timeouts are ServeWith's with Listener; the zero value means
	// api.DefaultTimeouts(). Unused without Listener.
	Timeouts api.Timeouts
}

// Server is a running kernel behind the API. Its fields are read-only.
type Server struct {
	// URL is the API's base URL: https://… for the httptest server,
	// http://host:port with Options.Listener.
	URL string
	// Kernel is the running kernel, for calls that skip the API.
	Kernel *kernel.Kernel
	// Store is the kernel's store, e.g. to compact it.
	Store *store.Etcd
	// Dir is the embedded etcd's data directory (e.g. to grep its files).
	Dir string
}

// Start runs a kernel on a fresh embedded etcd (in t.TempDir()) behind the
// API handler with opts, and registers a cleanup that stops, in order,
// the server (cutting open connections, Watch streams included), the
// kernel, then etcd. It calls t.Fatal on any error.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	dir := t.TempDir()
	e, err := store.StartEmbedded(store.EmbeddedConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close) // runs last: cleanups run in reverse
	// A key-encryption key of the test's own seals secrets, as a kernel's
	// --kek-file does (Options.Kernel may set Sealer to nil).
	kek, err := seal.NewKeyring(seal.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(e.Client(), "").WithSealer(kek)
	kcfg := kernel.Config{Store: st, HeartbeatTimeout: time.Hour, Sealer: kek}
	if opts.Kernel != nil {
		opts.Kernel(&kcfg)
	}
	k, err := kernel.New(context.Background(), kcfg)
	if err != nil {
		t.Fatal(err)
	}
	entries := opts.Tokens
	if entries == nil {
		entries = DefaultTokens()
	}
	tokens, err := api.NewTokens(entries)
	if err != nil {
		t.Fatal(err)
	}
	acfg := api.Config{Tokens: tokens}
	if opts.API != nil {
		opts.API(&acfg)
	}
	h := api.NewHandler(k, acfg)

	ctx, cancel := context.WithCancel(context.Background())
	kdone := make(chan struct{})
	go func() { k.Run(ctx); close(kdone) }()
	s := &Server{Kernel: k, Store: st, Dir: dir}
	if opts.Listener != nil {
		timeouts := opts.Timeouts
		if timeouts == (api.Timeouts{}) {
			timeouts = api.DefaultTimeouts()
		}
		sdone := make(chan struct{})
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		go func() { api.ServeWith(ctx, opts.Listener, h, log, timeouts); close(sdone) }()
		t.Cleanup(func() { cancel(); <-sdone; <-kdone })
		s.URL = "http://" + opts.Listener.Addr().String()
		return s
	}
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.Start()
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close(); cancel(); <-kdone })
	s.URL = srv.URL
	return s
}
