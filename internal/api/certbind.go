package api

import (
	"crypto/tls"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/pki"
	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// certless are the procedures an agent may call without its client
// certificate: those that give it one.
var certless = map[string]bool{
	syscallsv1connect.KernelCertRenewProcedure: true,
	syscallsv1connect.KernelAgentJoinProcedure: true,
}

// ErrAgentNeedsCert is the message of the Unauthenticated answer to an
// agent token used over TLS without a client certificate.
const ErrAgentNeedsCert = "agents must present their certificate; it is obtained with AgentJoin or CertRenew"

// bindCert checks the client certificate of a call made over TLS against
// the principal its token authenticated: a certificate (verified by the
// handshake against the trust bundle) must carry that principal's
// identity, role and name; an agent must present one except to get one
// (certless). Calls without TLS (plain listeners of tests and embedders)
// are not checked: the kernel's daemon serves only TLS.
func bindCert(procedure string, p kernel.Principal, cs *tls.ConnectionState) (refusal, error) {
	if cs == nil {
		return 0, nil
	}
	if len(cs.PeerCertificates) == 0 {
		if p.Role == kernel.RoleAgent && !certless[procedure] {
			return refusedUnauthenticated, connect.NewError(connect.CodeUnauthenticated, errors.New(ErrAgentNeedsCert))
		}
		return 0, nil
	}
	role, name, ok := pki.IdentityOf(cs.PeerCertificates[0])
	if !ok {
		return refusedPermissionDenied, connect.NewError(connect.CodePermissionDenied,
			fmt.Errorf("the client certificate carries no dcos identity; the token is %s %s's", p.Role, p.Name))
	}
	if role != p.Role.String() || name != p.Name {
		return refusedPermissionDenied, connect.NewError(connect.CodePermissionDenied,
			fmt.Errorf("this certificate is %s %s's; the token is %s %s's", role, name, p.Role, p.Name))
	}
	return 0, nil
}
