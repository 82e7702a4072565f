// Package pki is the cluster's public-key infrastructure: its certificate
// authority (ECDSA P-256, crypto/x509), the short-lived certificates it
// issues to kernels, agents and etcd, the identities those certificates
// carry, the trust bundle (the CAs a peer accepts, more than one while a
// CA rotation overlaps), and Reloader, which serves the current
// certificate and bundle to crypto/tls so that both can change without a
// restart or a dropped call.
//
// It neither stores nor distributes anything: the kernel keeps the CA in
// etcd (its key sealed under the cluster's key-encryption key, package
// seal) and decides who gets which certificate.
package pki
