package clientconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/dcos-kernel/dcos/internal/pki"
	"github.com/dcos-kernel/dcos/sdk/transport"
)

// FingerprintHint says where an operator finds a cluster's CA
// fingerprint, for errors that ask for one.
const FingerprintHint = `the cluster's CA fingerprint is printed by the kernel that bootstrapped it (the "--ca-fingerprint sha256:..." of its login command) and is that of DATA_DIR/pki/ca.crt on a kernel: openssl x509 -in ca.crt -noout -fingerprint -sha256`

// ParseFingerprint reads a CA fingerprint, "sha256:HEX" or HEX (colons
// allowed, any case), into lowercase hex.
func ParseFingerprint(s string) (string, error) {
	h := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(strings.TrimSpace(s), "sha256:"), ":", ""))
	if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		return "", fmt.Errorf("ca fingerprint %q: want sha256: and 64 hex digits", s)
	}
	return h, nil
}

// PinCA fetches the certificate chain the kernel at kernelURL serves
// and returns, in PEM, the CA certificate in it whose SHA-256
// fingerprint is fingerprint (ParseFingerprint's forms), once the
// kernel's certificate verifies against it (kubeadm join's
// --discovery-token-ca-cert-hash model: nothing is trusted that the
// fingerprint does not name). Nothing but the handshake is sent.
func PinCA(ctx context.Context, kernelURL, fingerprint string) ([]byte, error) {
	want, err := ParseFingerprint(fingerprint)
	if err != nil {
		return nil, err
	}
	cl, err := transport.ParseCluster(kernelURL)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(cl.URL())
	if err != nil {
		return nil, err
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("pin CA: %s is not an https:// URL", cl.URL())
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: &tls.Config{
		MinVersion: tls.VersionTLS12, InsecureSkipVerify: true, // verified below, against the pinned CA
	}}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("pin CA: %w", err)
	}
	defer conn.Close()
	chain := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(chain) == 0 {
		return nil, errors.New("pin CA: the kernel sent no certificate")
	}
	var seen []string
	for _, c := range chain[1:] {
		if !c.IsCA {
			continue
		}
		fp := pki.Fingerprint(c)
		seen = append(seen, "sha256:"+fp)
		if fp != want {
			continue
		}
		pool := x509.NewCertPool()
		pool.AddCert(c)
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: u.Hostname(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return nil, fmt.Errorf("pin CA: the kernel's certificate does not verify against the pinned CA: %w", err)
		}
		return pki.EncodeCert(c.Raw), nil
	}
	return nil, fmt.Errorf("pin CA: the kernel at %s serves no CA of fingerprint sha256:%s (it serves %v): wrong fingerprint, or not this cluster's kernel", cl.URL(), want, seen)
}
