package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	etcdserverpb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.etcd.io/etcd/server/v3/storage/wal"
)

// Embedded is a single-member etcd running in this process, with its data
// under a directory of ours.
type Embedded struct {
	etcd   *embed.Etcd
	client *clientv3.Client
	closed bool
	floor  *floor
	quota  int64
	dir    string
	certs  *etcdCerts // nil: plain listeners

	mu        sync.Mutex // guards recovered
	recovered time.Time  // last attempt to disarm NOSPACE
	compacted int64      // etcd's compaction revision when last defragmented to measure
}

// EmbeddedConfig configures StartEmbedded.
type EmbeddedConfig struct {
	// Dir holds etcd's data (created if missing).
	Dir string
	// CompactionRetention is how many revisions of history etcd keeps for
	// Watch to resume from (default 100000).
	CompactionRetention int
	// MinFree is the floor of free space on Dir's filesystem below which
	// Writable refuses writes (0: DefaultMinFree; negative: no floor).
	MinFree int64
	// Quota is etcd's backend quota (QuotaBackendBytes; 0: DefaultQuota).
	Quota int64
	// Statfs measures the bytes available on dir's filesystem (default:
	// statfs(2)); tests inject their own.
	Statfs func(dir string) (int64, error)
	// Clock is the floor's cache clock (default time.Now).
	Clock func() time.Time
	// TLS, when set, makes the client and peer listeners serve TLS with
	// client-certificate authentication (see EmbeddedTLS); nil leaves
	// them plain HTTP on loopback, which any local process can use (for
	// tests: the daemon always sets it).
	TLS *EmbeddedTLS
}

// walSegmentBytes is the size of etcd's WAL segments here. etcd
// preallocates the next segment before it needs it (64 MB by default),
// so a segment must fit well within the free-space floor: a commit
// allowed just above the floor may trigger that allocation.
const walSegmentBytes = 16 << 20

// setWALSegment sets etcd's WAL segment size (a package variable) once,
// before the first etcd of the process starts: instances that run at the
// same time read it.
var setWALSegment sync.Once

// StartEmbedded starts etcd in Dir and waits until it is ready (at most
// 30 s). It listens on loopback only, on ports the OS picks, over TLS
// with client certificates when cfg.TLS is set; the kernel talks to it
// in-process. Close it when done.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.CompactionRetention <= 0 {
		cfg.CompactionRetention = 100_000
	}
	if cfg.MinFree == 0 {
		cfg.MinFree = DefaultMinFree
	}
	if cfg.Quota <= 0 {
		cfg.Quota = DefaultQuota
	}
	if cfg.Statfs == nil {
		cfg.Statfs = statfsAvail
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
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
	ec.QuotaBackendBytes = cfg.Quota
	setWALSegment.Do(func() { wal.SegmentSizeBytes = walSegmentBytes })
	ec.AutoCompactionMode = embed.CompactorModeRevision
	ec.AutoCompactionRetention = fmt.Sprint(cfg.CompactionRetention)
	loop := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	var certs *etcdCerts
	if cfg.TLS != nil {
		var err error
		if certs, err = startEtcdCerts(*cfg.TLS); err != nil {
			return nil, err
		}
		loop.Scheme = "https"
		ec.ClientTLSInfo, ec.PeerTLSInfo = certs.tlsInfo(), certs.tlsInfo()
	}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{loop}, []url.URL{loop}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{loop}, []url.URL{loop}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	e, err := embed.StartEtcd(ec)
	if err != nil {
		certs.close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		certs.close()
		return nil, fmt.Errorf("embedded etcd: %w", err)
	case <-time.After(30 * time.Second):
		e.Close()
		certs.close()
		return nil, errors.New("embedded etcd: not ready after 30s")
	}
	emb := &Embedded{etcd: e, client: v3client.New(e.Server), quota: cfg.Quota, dir: cfg.Dir,
		compacted: e.Server.KV().FirstRev(), certs: certs}
	if cfg.MinFree > 0 {
		emb.floor = &floor{dir: cfg.Dir, min: cfg.MinFree, ttl: spaceTTL, statfs: cfg.Statfs, clock: cfg.Clock}
	}
	return emb, nil
}

// Client is an in-process client of the embedded etcd. It stays valid
// until Close.
func (e *Embedded) Client() *clientv3.Client { return e.client }

// ClientURLs are the URLs etcd's client listener serves (https:// when
// it was started with TLS), for tools such as etcdctl.
func (e *Embedded) ClientURLs() []string {
	var out []string
	for _, l := range e.etcd.Clients {
		out = append(out, e.scheme()+"://"+l.Addr().String())
	}
	return out
}

// PeerURLs are the URLs etcd's peer listener serves.
func (e *Embedded) PeerURLs() []string {
	var out []string
	for _, p := range e.etcd.Peers {
		out = append(out, e.scheme()+"://"+p.Listener.Addr().String())
	}
	return out
}

func (e *Embedded) scheme() string {
	if e.certs != nil {
		return "https"
	}
	return "http"
}

// Close stops etcd and the renewal of its certificate. It closes the
// client first (etcd's Close otherwise waits for its streams) and is safe
// to call twice.
func (e *Embedded) Close() {
	if e.closed {
		return
	}
	e.closed = true
	e.client.Close()
	e.etcd.Close()
	e.certs.close()
}

// Writable reports whether a write may be tried now: nil, or a
// *SpaceError when Dir's filesystem is below the floor (measured at most
// every 5 ms: spaceTTL) or etcd has raised its NOSPACE alarm. It disarms the
// alarm by itself once the database is back under 90% of the quota
// (defragmenting first when the file is still larger than that and the
// disk has room for the copy, or when etcd compacted since the last
// attempt), at most every 2 s. Safe for concurrent use.
func (e *Embedded) Writable() error {
	if err := e.floor.check(); err != nil {
		return err
	}
	if !e.noSpace() {
		return nil
	}
	be := e.etcd.Server.Backend()
	serr := &SpaceError{Dir: e.dir, NoSpace: true, Quota: e.quota, DBSize: be.Size(), DBInUse: be.SizeInUse()}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	if now.Sub(e.recovered) < 2*time.Second {
		return serr
	}
	e.recovered = now
	limit := e.quota / 10 * 9
	// etcd's in-use figure is refreshed only when a write transaction
	// begins, and pages freed by a compaction are counted as in use until
	// no older read transaction holds them: under the alarm nothing
	// writes, so after a compaction it can stay stale for good. A
	// compaction since the last look is worth one defragmentation, which
	// measures the in-use part afresh.
	compacted := e.etcd.Server.KV().FirstRev()
	if serr.DBInUse >= limit && compacted == e.compacted {
		return serr
	}
	if serr.DBSize >= limit {
		// Defrag copies the in-use part to a new file: it needs that much
		// room on top of the floor.
		if e.floor != nil {
			if avail, err := e.floor.statfs(e.dir); err == nil && avail < e.floor.min+serr.DBInUse {
				return serr
			}
		}
		if err := be.Defrag(); err != nil {
			return serr
		}
		e.compacted = compacted
		e.floor.forget()
		if serr.DBSize, serr.DBInUse = be.Size(), be.SizeInUse(); serr.DBInUse >= limit {
			return serr
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.etcd.Server.Alarm(ctx, &etcdserverpb.AlarmRequest{
		Action: etcdserverpb.AlarmRequest_DEACTIVATE, MemberID: uint64(e.etcd.Server.MemberID()), Alarm: etcdserverpb.AlarmType_NOSPACE,
	}); err != nil {
		return serr
	}
	return nil
}

func (e *Embedded) noSpace() bool {
	for _, a := range e.etcd.Server.Alarms() {
		if a.Alarm == etcdserverpb.AlarmType_NOSPACE {
			return true
		}
	}
	return false
}
