package ctl

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/clientconfig"
	"github.com/dcos-kernel/dcos/internal/pki"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// A client config's CA follows a CA rotation (docs/security.md,
// "Rotating the CA"): when a command's target trusts the config's CA
// and calls the config's kernels, dcosctl asks ClusterInfo, at most
// every clientconfig.CACheckInterval and always after "dcosctl ca
// rotate", over a connection that CA verified; when the cluster's
// bundle fingerprint differs, the bundle of the answer replaces the
// config's CA. The new bundle arrives over a channel the pinned CA
// authenticated, as an agent's does: during a rotation's overlap the
// kernels' chains carry the new CA cross-signed by the old. A config not
// used during the overlap cannot follow: log in again.

// caFollow is the client config a target's CA came from.
type caFollow struct {
	path string
	cfg  clientconfig.Config
}

// caCheckTimeout bounds the ClusterInfo call of a check.
const caCheckTimeout = 3 * time.Second

// followCA compares the config's CA with the cluster's bundle when a
// check is due (or force) and rewrites the config as the comment at the
// top of this file says, switching t to the new bundle. A failed check
// records its time and says nothing (the command's own call reports an
// unreachable kernel); a bundle that does not match its fingerprint or
// does not parse is refused with a warning.
func (t *target) followCA(ctx context.Context, e *env, force bool) {
	f := t.follow
	if f == nil {
		return
	}
	now := e.now()
	if !force && !f.cfg.CACheckDue(now) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, caCheckTimeout)
	defer cancel()
	plain := *t
	plain.trace = nil // the check is not the command's call
	res, err := plain.kernel().ClusterInfo(ctx, connect.NewRequest(&syscallsv1.ClusterInfoRequest{}))
	if err != nil {
		// The time is recorded all the same: while the kernels cannot be
		// reached, every command would otherwise wait for this check
		// before its own call fails (the next one is due in
		// CACheckInterval, far within a rotation's overlap).
		if !force {
			cfg := f.cfg
			cfg.CACheckedAt = now
			f.save(cfg)
		}
		return
	}
	fp := res.Msg.GetCaBundleFingerprint()
	cfg := f.cfg
	cfg.CACheckedAt = now
	changed := fp != "" && fp != cfg.CAFingerprint()
	if changed {
		bundle := res.Msg.GetCaBundle()
		if sum := sha256.Sum256(bundle); hex.EncodeToString(sum[:]) != fp {
			fmt.Fprintf(e.stderr, "dcosctl: warning: the kernel's CA bundle does not match its fingerprint sha256:%s; client config %s left as it was\n", fp, f.path)
			return
		}
		conf, err := caTLS(string(bundle))
		if err != nil {
			fmt.Fprintf(e.stderr, "dcosctl: warning: the kernel's CA bundle: %v; client config %s left as it was\n", err, f.path)
			return
		}
		// The same certificates in another encoding (a --ca-cert file
		// pinned at login) are taken silently.
		changed = !sameCerts(cfg.CA, bundle)
		cfg.CA = string(bundle)
		t.tls = conf
	}
	saved, err := f.save(cfg)
	if err != nil && changed {
		fmt.Fprintf(e.stderr, "dcosctl: warning: the cluster's CA bundle changed (sha256:%s) but the client config could not be rewritten: %v\n", fp, err)
	}
	if saved && changed {
		fmt.Fprintf(e.stderr, "dcosctl: the cluster's CA bundle changed (CA rotation): %s now trusts sha256:%s, fetched from the kernels over a connection the previous bundle verified\n", f.path, fp)
	}
}

// save writes cfg to f's file and makes it f's config, unless the file
// was rewritten meanwhile (a login elsewhere): then it is left to its
// writer, and save reports false.
func (f *caFollow) save(cfg clientconfig.Config) (bool, error) {
	if cur, err := clientconfig.Load(f.path); err != nil || cur.Kernel != f.cfg.Kernel || cur.Token != f.cfg.Token || cur.CA != f.cfg.CA {
		return false, nil
	}
	if err := clientconfig.Save(f.path, cfg); err != nil {
		return false, err
	}
	f.cfg = cfg
	return true, nil
}

// sameCerts reports whether the PEM bundles a and b hold the same
// certificates in the same order.
func sameCerts(a string, b []byte) bool {
	ca, err1 := pki.ParseBundle([]byte(a))
	cb, err2 := pki.ParseBundle(b)
	if err1 != nil || err2 != nil || len(ca) != len(cb) {
		return false
	}
	return slices.EqualFunc(ca, cb, func(x, y *x509.Certificate) bool { return x.Equal(y) })
}
