package authority

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dcos-kernel/dcos/internal/pki"
	"github.com/dcos-kernel/dcos/internal/seal"
)

// State is the cluster CA at one revision of its key. It is immutable.
type State struct {
	// Active signs every new certificate.
	Active *pki.CA
	// Bundle is what every holder trusts: Active first and, while a
	// rotation overlaps, the previous CA.
	Bundle pki.Bundle
	// Cross is Active re-issued by the previous CA while the rotation
	// overlaps (nil otherwise); it is appended to every chain served.
	Cross *x509.Certificate
	// RetireAt is when the previous CA leaves the bundle (zero outside a
	// rotation).
	RetireAt time.Time
	// Revision is the etcd revision of the record (its mod revision).
	Revision int64
}

// Fingerprint identifies the bundle (hex of the SHA-256 of its PEM): a
// holder whose bundle has another fingerprint must fetch the new one.
func (s *State) Fingerprint() string {
	sum := sha256.Sum256(s.Bundle.PEM())
	return hex.EncodeToString(sum[:])
}

// Rotating reports whether a rotation overlaps (the previous CA is still
// trusted).
func (s *State) Rotating() bool { return s.Cross != nil }

// chain appends the cross-certificate (during an overlap) to a leaf.
func (s *State) chain(leaf []byte) [][]byte {
	if s.Cross != nil {
		return [][]byte{leaf, s.Cross.Raw}
	}
	return [][]byte{leaf}
}

// Issue makes a key and a certificate as l says, signed by the active CA:
// the key pair for crypto/tls, its chain including the cross-certificate
// during an overlap.
func (s *State) Issue(l pki.Leaf, now time.Time) (tls.Certificate, error) {
	key, err := pki.NewKey()
	if err != nil {
		return tls.Certificate{}, err
	}
	der, err := s.Active.Sign(key.Public(), l, now)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: s.chain(der), PrivateKey: key, Leaf: leaf}, nil
}

// Sign signs a certificate for pub (from a CSR) as l says and returns its
// chain in PEM (leaf first; the cross-certificate during an overlap).
func (s *State) Sign(pub crypto.PublicKey, l pki.Leaf, now time.Time) ([]byte, error) {
	der, err := s.Active.Sign(pub, l, now)
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, c := range s.chain(der) {
		out = append(out, pki.EncodeCert(c)...)
	}
	return out, nil
}

// record is the stored form of a State (JSON, one etcd key).
type record struct {
	Version int `json:"version"`
	// Cert is the active CA's certificate (PEM); Key its key, sealed.
	Cert string `json:"cert"`
	Key  []byte `json:"key"`
	// Bundle is the trust bundle (PEM), active CA first.
	Bundle string `json:"bundle"`
	// Cross and RetireAt are set while a rotation overlaps.
	Cross    string    `json:"cross,omitempty"`
	RetireAt time.Time `json:"retire_at,omitzero"`
}

// keyAAD binds the sealed CA key to this record.
var keyAAD = []byte("dcos-pki-ca")

func encode(s *State, kr *seal.Keyring) ([]byte, error) {
	sk, err := kr.Seal(s.Active.KeyPEM(), keyAAD)
	if err != nil {
		return nil, err
	}
	r := record{Version: 1, Cert: string(s.Active.CertPEM()), Key: sk, Bundle: string(s.Bundle.PEM()), RetireAt: s.RetireAt}
	if s.Cross != nil {
		r.Cross = string(pki.EncodeCert(s.Cross.Raw))
	}
	return json.Marshal(r)
}

// decode parses a stored record; every field from the store is checked.
func decode(b []byte, kr *seal.Keyring) (*State, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("authority: stored CA record: %w", err)
	}
	if r.Version != 1 {
		return nil, fmt.Errorf("authority: stored CA record: version %d is not supported", r.Version)
	}
	keyPEM, err := kr.Open(r.Key, keyAAD)
	if err != nil {
		return nil, fmt.Errorf("authority: the cluster CA's key does not open with this kernel's --kek-file (is it the cluster's?): %w", err)
	}
	ca, err := pki.ParseCA([]byte(r.Cert), keyPEM)
	if err != nil {
		return nil, fmt.Errorf("authority: stored CA record: %w", err)
	}
	bundle, err := pki.ParseBundle([]byte(r.Bundle))
	if err != nil {
		return nil, fmt.Errorf("authority: stored CA record: bundle: %w", err)
	}
	if !bundle[0].Equal(ca.Cert) {
		return nil, errors.New("authority: stored CA record: the bundle does not start with the active CA")
	}
	s := &State{Active: ca, Bundle: bundle, RetireAt: r.RetireAt}
	if r.Cross != "" {
		certs, err := pki.ParseCerts([]byte(r.Cross))
		if err != nil || len(certs) != 1 {
			return nil, fmt.Errorf("authority: stored CA record: cross-certificate: %v", err)
		}
		s.Cross = certs[0]
	}
	return s, nil
}

// Authority follows the cluster CA in etcd. It is safe for concurrent use.
type Authority struct {
	cli      *clientv3.Client
	key      string
	kr       *seal.Keyring
	localDir string
	log      *slog.Logger
	now      func() time.Time

	cur     atomic.Pointer[State]
	mu      sync.Mutex
	changed chan struct{} // closed at the next change
}

// Options configure Open.
type Options struct {
	// LocalDir is the CA directory (DATA_DIR/pki) kept in step with the
	// store, so that a kernel that starts before it can reach etcd (its
	// embedded etcd's certificates come from it) has the latest CA.
	LocalDir string
	// Log receives rotations and retirements (nil: discarded).
	Log *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Open reads the cluster CA under prefix in cli. A store that has none
// gets local (the CA of this kernel's CA directory) as the cluster's,
// exactly once however many kernels start at once; a store that has one
// wins over local (a kernel that joins takes the cluster's CA, and its
// CA directory is rewritten). kr must open the stored CA key.
func Open(ctx context.Context, cli *clientv3.Client, prefix string, kr *seal.Keyring, local *pki.CA, localBundle pki.Bundle, o Options) (*Authority, error) {
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	a := &Authority{cli: cli, key: prefix + "pki/ca", kr: kr, localDir: o.LocalDir, log: o.Log, now: o.Now, changed: make(chan struct{})}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if local != nil {
		if len(localBundle) == 0 {
			localBundle = pki.Bundle{local.Cert}
		}
		b, err := encode(&State{Active: local, Bundle: localBundle}, kr)
		if err != nil {
			return nil, err
		}
		if _, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Version(a.key), "=", 0)).Then(clientv3.OpPut(a.key, string(b))).Commit(); err != nil {
			return nil, fmt.Errorf("authority: store the cluster CA: %w", err)
		}
	}
	res, err := cli.Get(ctx, a.key)
	if err != nil {
		return nil, fmt.Errorf("authority: read the cluster CA: %w", err)
	}
	if len(res.Kvs) == 0 {
		return nil, errors.New("authority: the store holds no cluster CA and this kernel has none to give it")
	}
	s, err := decode(res.Kvs[0].Value, kr)
	if err != nil {
		return nil, err
	}
	s.Revision = res.Kvs[0].ModRevision
	a.set(s)
	return a, nil
}

// State is the CA state last seen.
func (a *Authority) State() *State { return a.cur.Load() }

// Changed returns a channel closed at the next change of State.
func (a *Authority) Changed() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.changed
}

func (a *Authority) set(s *State) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if old := a.cur.Load(); old != nil && old.Revision >= s.Revision {
		return
	}
	a.cur.Store(s)
	if a.localDir != "" {
		if err := pki.SaveLocal(a.localDir, s.Active, s.Bundle, a.kr); err != nil {
			a.log.Warn("could not update the CA directory", "dir", a.localDir, "err", err)
		}
	}
	close(a.changed)
	a.changed = make(chan struct{})
}

// Follow watches the stored CA and applies every change until ctx ends.
// A record that does not decode is logged and skipped (the state stays
// the last good one).
func (a *Authority) Follow(ctx context.Context) {
	for ctx.Err() == nil {
		rev := a.State().Revision
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for wr := range a.cli.Watch(wctx, a.key, clientv3.WithRev(rev+1)) {
			if err := wr.Err(); err != nil {
				a.log.Warn("watching the cluster CA", "err", err)
				break
			}
			for _, ev := range wr.Events {
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				s, err := decode(ev.Kv.Value, a.kr)
				if err != nil {
					a.log.Error("stored cluster CA does not decode; keeping the last good one", "err", err)
					continue
				}
				s.Revision = ev.Kv.ModRevision
				a.set(s)
			}
		}
		cancel()
		if ctx.Err() == nil {
			// The watch broke (compaction, leader loss): read the key again.
			if res, err := a.cli.Get(ctx, a.key); err == nil && len(res.Kvs) > 0 {
				if s, err := decode(res.Kvs[0].Value, a.kr); err == nil {
					s.Revision = res.Kvs[0].ModRevision
					a.set(s)
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// ErrRotating is returned by Rotate while a rotation still overlaps.
var ErrRotating = errors.New("authority: a CA rotation is in progress: the previous CA is retired first")

// Rotate makes a new CA the active one at once: the bundle trusts it and
// the previous one until now+overlap, and the new CA's cross-certificate
// (signed by the previous) is served with every chain meanwhile, so that
// peers that have not yet fetched the new bundle still verify. validity
// is the new CA's lifetime (≤ 0: pki.DefaultCAValidity).
func (a *Authority) Rotate(ctx context.Context, overlap, validity time.Duration) (*State, error) {
	if overlap <= 0 {
		return nil, errors.New("authority: rotate: the overlap must be positive")
	}
	if validity <= 0 {
		validity = pki.DefaultCAValidity
	}
	cur := a.State()
	if cur.Rotating() {
		return nil, fmt.Errorf("%w (at %s)", ErrRotating, cur.RetireAt.UTC().Format(time.RFC3339))
	}
	now := a.now()
	next, err := pki.NewCA("dcos cluster CA", validity, now)
	if err != nil {
		return nil, err
	}
	cross, err := cur.Active.CrossSign(next, now)
	if err != nil {
		return nil, err
	}
	s := &State{Active: next, Bundle: pki.Bundle{next.Cert, cur.Active.Cert}, Cross: cross, RetireAt: now.Add(overlap)}
	if err := a.cas(ctx, cur, s); err != nil {
		return nil, err
	}
	a.log.Info("cluster CA rotated: the previous CA stays trusted until the overlap ends", "ca", next.ID(), "previous", cur.Active.ID(), "retire_at", s.RetireAt)
	return a.State(), nil
}

// RetireDue retires the previous CA when the overlap has passed: the
// bundle keeps only the active CA and chains lose the cross-certificate.
// It reports whether it did. The leader calls it periodically.
func (a *Authority) RetireDue(ctx context.Context) (bool, error) {
	cur := a.State()
	if !cur.Rotating() || a.now().Before(cur.RetireAt) {
		return false, nil
	}
	s := &State{Active: cur.Active, Bundle: pki.Bundle{cur.Active.Cert}}
	if err := a.cas(ctx, cur, s); err != nil {
		return false, err
	}
	a.log.Info("previous cluster CA retired", "ca", cur.Active.ID())
	return true, nil
}

// ErrConflict is returned when the stored CA changed since it was read
// (another kernel rotated or retired first).
var ErrConflict = errors.New("authority: the cluster CA changed meanwhile; read it again")

// cas writes s if the record is still at cur's revision.
func (a *Authority) cas(ctx context.Context, cur, s *State) error {
	b, err := encode(s, a.kr)
	if err != nil {
		return err
	}
	res, err := a.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(a.key), "=", cur.Revision)).Then(clientv3.OpPut(a.key, string(b))).Commit()
	if err != nil {
		return fmt.Errorf("authority: store the cluster CA: %w", err)
	}
	if !res.Succeeded {
		return ErrConflict
	}
	s.Revision = res.Header.Revision
	a.set(s)
	return nil
}
