package tokenstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unsafe"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// entry is what Lookup needs of a token.
type entry struct {
	p       kernel.Principal
	expires time.Time // zero: never
}

// Registry is one process's view of the stored tokens: it loads them, then
// follows an etcd watch of their prefix, so a token created or revoked
// through any kernel is accepted or refused here as soon as the watch
// delivers it (milliseconds on a healthy cluster). While etcd is
// unreachable it keeps answering from the last tokens it saw, and catches
// up when the watch resumes (reloading everything if the revision it
// watched from was compacted).
//
// Lookup is safe for concurrent use and cheap: one SHA-256, a read lock
// and a map lookup.
type Registry struct {
	s   *Store
	log *slog.Logger
	now func() time.Time

	mu     sync.RWMutex
	tokens map[[32]byte]entry

	cancel context.CancelFunc
	done   chan struct{}
}

// StartRegistry loads the tokens of s and starts following them until
// Close (or ctx's end). It fails only if the first load fails. log may be
// nil.
func StartRegistry(ctx context.Context, s *Store, log *slog.Logger) (*Registry, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Registry{s: s, log: log, now: s.now, done: make(chan struct{})}
	rev, err := r.load(ctx)
	if err != nil {
		return nil, err
	}
	ctx, r.cancel = context.WithCancel(ctx)
	go r.follow(ctx, rev)
	return r, nil
}

// Close stops following the store and waits for the watch to end. Lookup
// keeps answering from the last tokens seen. It is idempotent.
func (r *Registry) Close() {
	r.cancel()
	<-r.done
}

// Lookup returns the principal of token if a stored token has that
// secret and has not expired.
func (r *Registry) Lookup(token string) (kernel.Principal, bool) {
	// Sum256 neither keeps nor changes its argument: hashing the
	// string's bytes in place saves Lookup an allocation per call.
	d := sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
	r.mu.RLock()
	e, ok := r.tokens[d]
	r.mu.RUnlock()
	if !ok || (!e.expires.IsZero() && !r.now().Before(e.expires)) {
		return kernel.Principal{}, false
	}
	return e.p, true
}

// load replaces the registry's tokens with the store's and returns the
// revision it read at.
func (r *Registry) load(ctx context.Context) (int64, error) {
	resp, err := r.s.cli.Get(ctx, r.s.prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, etcdError("token registry load", err)
	}
	m := make(map[[32]byte]entry, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		d, e, ok := r.decode(kv.Key, kv.Value)
		if ok {
			m[d] = e
		}
	}
	r.mu.Lock()
	r.tokens = m
	r.mu.Unlock()
	return resp.Header.Revision, nil
}

// decode returns the digest and entry of a token's key and value; ok is
// false for bookkeeping keys and for what does not decode (logged: a
// token that cannot be read is refused, not fatal).
func (r *Registry) decode(key, value []byte) ([32]byte, entry, bool) {
	var d [32]byte
	rest := strings.TrimPrefix(string(key), r.s.prefix)
	if rest == "" || rest[0] == '.' {
		return d, entry{}, false
	}
	if n, err := hex.Decode(d[:], []byte(rest)); err != nil || n != len(d) {
		r.log.Warn("token registry: key is not a digest; ignored", "key", string(key))
		return d, entry{}, false
	}
	if value == nil {
		return d, entry{}, true
	}
	info, _, err := r.s.decode(key, value)
	if err != nil {
		r.log.Warn("token registry: token does not decode; refused", "key", string(key), "err", err)
		return d, entry{}, false
	}
	return d, toEntry(info), true
}

func toEntry(info *pb.TokenInfo) entry {
	role, ok := kernel.ParseRole(info.GetRole())
	if !ok {
		role = 0 // a role this version does not know may call nothing
	}
	e := entry{p: kernel.Principal{Name: info.GetName(), Role: role}}
	if info.GetExpires() != nil {
		e.expires = info.GetExpires().AsTime()
	}
	return e
}

// follow watches the tokens after rev until ctx ends, reloading when the
// watch is cut (compaction, lost leader) and backing off while etcd does
// not answer.
func (r *Registry) follow(ctx context.Context, rev int64) {
	defer close(r.done)
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		ch := r.s.cli.Watch(wctx, r.s.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		for resp := range ch {
			if resp.Err() != nil {
				r.log.Warn("token registry: watch ended; reloading", "err", resp.Err())
				break
			}
			r.apply(resp.Events)
			rev = resp.Header.Revision
			backoff = 50 * time.Millisecond
		}
		cancel()
		for ctx.Err() == nil {
			n, err := r.load(ctx)
			if err == nil {
				rev = n
				break
			}
			r.log.Warn("token registry: reload failed; serving the last tokens seen", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
		}
	}
}

// apply applies one watch response's events.
func (r *Registry) apply(evs []*clientv3.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range evs {
		var value []byte
		if ev.Type == clientv3.EventTypePut {
			value = ev.Kv.Value
		}
		d, e, ok := r.decode(ev.Kv.Key, value)
		switch {
		case !ok:
		case ev.Type == clientv3.EventTypeDelete:
			delete(r.tokens, d)
		default:
			r.tokens[d] = e
		}
	}
}
