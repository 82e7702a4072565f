// Package clientconfig reads and writes the client config that `dcosctl
// login` and `dcosd dev` leave for `dcosctl`: which kernels to call,
// with which token, trusting which CA bundle, and when that bundle was
// last compared with the cluster's (dcosctl follows a CA rotation into
// the file; docs/security.md, "Rotating the CA"). PinCA fetches a
// cluster's CA by its fingerprint for login.
//
// It does not resolve flags or environment variables; callers apply those
// over what Load returns.
package clientconfig
