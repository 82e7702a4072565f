package pki

import "crypto/x509"

func x509VerifyClient(b Bundle) x509.VerifyOptions {
	return x509.VerifyOptions{Roots: b.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
}
