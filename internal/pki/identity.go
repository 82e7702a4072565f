package pki

import (
	"crypto/x509"
	"net/url"
	"strings"
)

// Identities are URI SANs "dcos://ROLE/NAME": the role a holder acts in
// (agent, kernel, etcd, client) and its principal name.
const identityScheme = "dcos"

// Identity roles.
const (
	RoleAgent  = "agent"
	RoleKernel = "kernel"
	RoleEtcd   = "etcd"
	RoleClient = "client"
)

// IdentityURI returns the identity URI of name acting as role.
func IdentityURI(role, name string) *url.URL {
	return &url.URL{Scheme: identityScheme, Host: role, Path: "/" + name}
}

// AgentIdentity is the identity of the agent whose principal (token name)
// is name: its certificate is bound to it, and the kernel refuses it with
// any other agent's token.
func AgentIdentity(name string) *url.URL { return IdentityURI(RoleAgent, name) }

// KernelIdentity is the identity of the kernel named name (its advertised
// host).
func KernelIdentity(name string) *url.URL { return IdentityURI(RoleKernel, name) }

// IdentityOf returns the dcos identity a certificate carries (its first
// dcos:// URI SAN); ok is false when it has none.
func IdentityOf(cert *x509.Certificate) (role, name string, ok bool) {
	if cert == nil {
		return "", "", false
	}
	for _, u := range cert.URIs {
		if u.Scheme == identityScheme && u.Host != "" && strings.HasPrefix(u.Path, "/") && len(u.Path) > 1 {
			return u.Host, u.Path[1:], true
		}
	}
	return "", "", false
}
