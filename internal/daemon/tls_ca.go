package daemon

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/authority"
	"github.com/dcos-kernel/dcos/internal/pki"
	"github.com/dcos-kernel/dcos/internal/seal"
	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// The kernel's side of the cluster CA as the store keeps it
// (internal/authority): every kernel serves and issues certificates of
// the store's CA, re-issues its own when a rotation changes it, retires
// the previous CA when the overlap has passed, and records the
// certificates it issues for CertList. The CA directory (--pki-dir)
// stays the store's own CA (etcd's certificates), rotated offline.

var _ api.CAAdmin = (*kernelTLS)(nil)

// retireCheck is how often a kernel looks whether the previous CA's
// overlap has passed (a local check; one kernel's write wins).
const retireCheck = 2 * time.Second

// issuedStore records issued certificates under <prefix>pki/issued/.
type issuedStore struct {
	cli    *clientv3.Client
	prefix string
}

// state is the cluster CA of the moment: the store's once attached, else
// the CA directory's.
func (t *kernelTLS) state() *authority.State {
	if a := t.auth.Load(); a != nil {
		return a.State()
	}
	return &authority.State{Active: t.ca, Bundle: t.bundle}
}

// attach follows the cluster CA in the store at prefix (the CA
// directory's becomes the cluster's when the store has none) and serves
// it from now on; run follows its changes.
func (t *kernelTLS) attach(ctx context.Context, cli *clientv3.Client, prefix string, kr *seal.Keyring) error {
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	a, err := authority.Open(ctx, cli, prefix, kr, t.ca, t.bundle, authority.Options{Log: t.log})
	if err != nil {
		return err
	}
	t.issued = &issuedStore{cli: cli, prefix: prefix + "pki/issued/"}
	t.auth.Store(a)
	if st := a.State(); st.Active.ID() != t.ca.ID() {
		t.log.Info("the cluster CA in the store is not the CA directory's (rotated): the API serves the store's; the store's own certificates still come from the directory", "ca", "sha256:"+st.Active.ID(), "pki_dir_ca", "sha256:"+t.ca.ID())
	}
	return t.renew(time.Now())
}

// follow runs the store follower and the retirement check until ctx
// ends (with run).
func (t *kernelTLS) follow(ctx context.Context) {
	a := t.auth.Load()
	if a == nil {
		return
	}
	go a.Follow(ctx)
	tick := time.NewTicker(retireCheck)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := a.RetireDue(ctx); err != nil && !errors.Is(err, authority.ErrConflict) && ctx.Err() == nil {
			t.log.Warn("retiring the previous cluster CA", "err", err)
		}
	}
}

// sleepOrRotate waits d, or less when the cluster CA changed since the
// serving certificate was issued; false: ctx ended.
func (t *kernelTLS) sleepOrRotate(ctx context.Context, d time.Duration) bool {
	a := t.auth.Load()
	if a == nil {
		return sleepUntil(ctx, d)
	}
	changed := a.Changed()
	if a.State().Revision != t.served.Load() {
		return ctx.Err() == nil
	}
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-changed:
		return ctx.Err() == nil
	case <-ctx.Done():
		return false
	}
}

// issuedRecord is a certificate the kernels issued (CertList).
type issuedRecord struct {
	Fingerprint string    `json:"fingerprint"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	Issuer      string    `json:"issuer"`
}

// record notes, in the background, the latest certificate issued to name
// of kind (best effort: CertList shows what was recorded).
func (t *kernelTLS) record(kind, name string, cert *x509.Certificate) {
	is := t.issued
	if is == nil || cert == nil {
		return
	}
	b, _ := json.Marshal(issuedRecord{Fingerprint: pki.Fingerprint(cert), NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, Issuer: issuerOf(t.state(), cert)})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := is.cli.Put(ctx, is.prefix+kind+"/"+name, string(b)); err != nil {
			t.log.Debug("recording an issued certificate", "kind", kind, "name", name, "err", err)
		}
	}()
}

// issuerOf is the fingerprint of the CA of st's bundle that signed cert.
func issuerOf(st *authority.State, cert *x509.Certificate) string {
	for _, ca := range st.Bundle {
		if cert.CheckSignatureFrom(ca) == nil {
			return pki.Fingerprint(ca)
		}
	}
	return ""
}

// RotateCA implements api.CAAdmin.
func (t *kernelTLS) RotateCA(ctx context.Context, overlap, validity time.Duration) (*pb.CARotateResponse, error) {
	a := t.auth.Load()
	if a == nil {
		return nil, &kernel.Error{Code: kernel.Unavailable, Msg: "this kernel does not follow the cluster CA yet"}
	}
	prev := a.State()
	st, err := a.Rotate(ctx, overlap, validity)
	switch {
	case errors.Is(err, authority.ErrRotating):
		return nil, &kernel.Error{Code: kernel.FailedPrecondition, Msg: err.Error()}
	case errors.Is(err, authority.ErrConflict):
		return nil, &kernel.Error{Code: kernel.Aborted, Msg: err.Error()}
	case err != nil:
		return nil, &kernel.Error{Code: kernel.Unavailable, Msg: fmt.Sprintf("rotate the cluster CA: %v", err)}
	}
	if err := t.renew(time.Now()); err != nil {
		t.log.Warn("re-issuing the kernel's certificate after a CA rotation", "err", err)
	}
	return &pb.CARotateResponse{Ca: caInfo(st, st.Active.Cert), Previous: caInfo(st, prev.Active.Cert), RetireAt: timestamppb.New(st.RetireAt)}, nil
}

func caInfo(st *authority.State, c *x509.Certificate) *pb.CertInfo {
	info := &pb.CertInfo{Kind: "ca", Name: c.Subject.CommonName, Fingerprint: pki.Fingerprint(c),
		NotBefore: timestamppb.New(c.NotBefore), NotAfter: timestamppb.New(c.NotAfter), Issuer: pki.Fingerprint(c)}
	switch {
	case c.Equal(st.Active.Cert):
		info.Status = "active"
	case st.Rotating():
		info.Status, info.RetireAt = "retiring", timestamppb.New(st.RetireAt)
	default:
		info.Status = "trusted"
	}
	return info
}

// ListCerts implements api.CAAdmin: the bundle's CAs, then the recorded
// certificates by kind and name.
func (t *kernelTLS) ListCerts(ctx context.Context) (*pb.CertListResponse, error) {
	st := t.state()
	res := &pb.CertListResponse{}
	for _, c := range st.Bundle {
		res.Certs = append(res.Certs, caInfo(st, c))
	}
	if t.issued == nil {
		return res, nil
	}
	got, err := t.issued.cli.Get(ctx, t.issued.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, &kernel.Error{Code: kernel.Unavailable, Msg: fmt.Sprintf("list certificates: %v", err)}
	}
	now := time.Now()
	var certs []*pb.CertInfo
	for _, kv := range got.Kvs {
		kind, name, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), t.issued.prefix), "/")
		var r issuedRecord
		if !ok || json.Unmarshal(kv.Value, &r) != nil {
			continue
		}
		status := "valid"
		if now.After(r.NotAfter) {
			status = "expired"
		}
		certs = append(certs, &pb.CertInfo{Kind: kind, Name: name, Fingerprint: r.Fingerprint, NotBefore: timestamppb.New(r.NotBefore), NotAfter: timestamppb.New(r.NotAfter), Status: status, Issuer: r.Issuer})
	}
	sort.Slice(certs, func(i, j int) bool {
		if certs[i].Kind != certs[j].Kind {
			return certs[i].Kind < certs[j].Kind
		}
		return certs[i].Name < certs[j].Name
	})
	res.Certs = append(res.Certs, certs...)
	return res, nil
}

// clusterInfo adds the trust bundle to ClusterInfo's answer, so that
// holders notice a rotation (agents renew at once).
func (t *kernelTLS) clusterInfo(next api.ClusterFunc) api.ClusterFunc {
	return func(ctx context.Context) (*pb.ClusterInfoResponse, error) {
		res, err := next(ctx)
		if res != nil {
			st := t.state()
			res.CaBundle, res.CaBundleFingerprint = st.Bundle.PEM(), st.Fingerprint()
		}
		return res, err
	}
}

var _ api.CABundleFingerprinter = (*kernelTLS)(nil)

// stateFingerprint is the bundle fingerprint of one authority state (nil:
// the CA directory's, before attach).
type stateFingerprint struct {
	st *authority.State
	fp string
}

// CABundleFingerprint implements api.CABundleFingerprinter: the
// fingerprint of the bundle state serves (what ClusterInfo answers),
// computed once per state of the cluster CA, without a store read.
func (t *kernelTLS) CABundleFingerprint() string {
	var st *authority.State // immutable, one per revision of the record
	if a := t.auth.Load(); a != nil {
		st = a.State()
	}
	if c := t.fp.Load(); c != nil && c.st == st {
		return c.fp
	}
	full := st
	if full == nil {
		full = &authority.State{Active: t.ca, Bundle: t.bundle}
	}
	c := &stateFingerprint{st: st, fp: full.Fingerprint()}
	t.fp.Store(c)
	return c.fp
}
