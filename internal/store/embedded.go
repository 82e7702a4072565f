package store

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
)

// Embedded is a single-member etcd running in this process, with its data
// under a directory of ours.
type Embedded struct {
	etcd   *embed.Etcd
	client *clientv3.Client
	closed bool
}

// EmbeddedConfig configures StartEmbedded.
type EmbeddedConfig struct {
	// Dir holds etcd's data (created if missing).
	Dir string
	// CompactionRetention is how many revisions of history etcd keeps for
	// Watch to resume from (default 100000).
	CompactionRetention int
}

// StartEmbedded starts etcd in Dir and waits until it is ready (at most
// 30 s). It listens on loopback only, on ports the OS picks; the kernel
// talks to it in-process. Close it when done.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.CompactionRetention <= 0 {
		cfg.CompactionRetention = 100_000
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	ec := embed.NewConfig()
	ec.Name = "dcos"
	ec.Dir = filepath.Join(cfg.Dir, "etcd")
	// etcd logs benign errors at start and stop ("failed to update storage
	// version", "mux: server closed"); real failures reach the kernel as
	// client errors, which it logs.
	ec.LogLevel = "fatal"
	ec.TickMs, ec.ElectionMs = 10, 100 // single member: elect itself fast
	ec.MaxTxnOps = 1 << 20
	ec.MaxRequestBytes = 64 << 20
	ec.AutoCompactionMode = embed.CompactorModeRevision
	ec.AutoCompactionRetention = fmt.Sprint(cfg.CompactionRetention)
	loop := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{loop}, []url.URL{loop}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{loop}, []url.URL{loop}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(30 * time.Second):
		e.Close()
		return nil, errors.New("embedded etcd: not ready after 30s")
	}
	return &Embedded{etcd: e, client: v3client.New(e.Server)}, nil
}

// Client is an in-process client of the embedded etcd. It stays valid
// until Close.
func (e *Embedded) Client() *clientv3.Client { return e.client }

// Close stops etcd. It closes the client first (etcd's Close otherwise
// waits for its streams) and is safe to call twice.
func (e *Embedded) Close() {
	if e.closed {
		return
	}
	e.closed = true
	e.client.Close()
	e.etcd.Close()
}
