// Package authority is a kernel's handle on the cluster's certificate
// authority as the cluster's store keeps it: one etcd key under
// <prefix>pki/ca holding the active CA (its key sealed under the KEK),
// the trust bundle, and — while a CA rotation overlaps — the
// cross-certificate that lets peers that trust only the previous CA
// verify what the new one issues.
//
// Every kernel follows the key with a watch, so a rotation made on one
// reaches all within a round trip; the leader's loop retires the previous
// CA when the overlap has passed. What each holder does with a change
// (re-issue its certificate, reload its bundle) is the caller's: State is
// a value, Changed says when to look again.
//
// It is not the issuer of policy: who gets which certificate is decided
// by the kernel's API (internal/api) and daemon.
package authority
