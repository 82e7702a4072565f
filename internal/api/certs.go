package api

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/pki"
	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// CertIssuer issues the client certificates of CertRenew and of
// AgentJoin with a csr. The kernel's daemon implements it with the
// cluster CA.
type CertIssuer interface {
	// IssueFor signs a client certificate for the public key of csr (a
	// request ParseCSR accepted: only its key is used) bound to p
	// (identity pki.IdentityURI(p.Role, p.Name)), and returns it as a PEM
	// chain (leaf first) with the trust bundle in PEM. It is safe for
	// concurrent use.
	IssueFor(p kernel.Principal, csrPEM []byte) (certPEM, bundlePEM []byte, err error)
}

var errNoCA = connect.NewError(connect.CodeUnimplemented, errors.New("this kernel issues no certificates (it has no CA)"))

// parseCSR checks a request's csr field: InvalidArgument naming it.
func parseCSR(field string, csr []byte) error {
	if _, err := pki.ParseCSR(csr); err != nil {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: %w", field, err))
	}
	return nil
}

// issue is CertIssuer.IssueFor for p with a checked csr.
func (s *Server) issue(p kernel.Principal, field string, csr []byte) (cert, bundle []byte, err error) {
	if s.certs == nil {
		return nil, nil, errNoCA
	}
	if err := parseCSR(field, csr); err != nil {
		return nil, nil, err
	}
	cert, bundle, err = s.certs.IssueFor(p, csr)
	if err != nil {
		return nil, nil, connect.NewError(connect.CodeInternal, fmt.Errorf("issue a certificate: %w", err))
	}
	return cert, bundle, nil
}

// CertRenew implements syscallsv1connect.KernelHandler: a client
// certificate for the caller's own principal.
func (s *Server) CertRenew(ctx context.Context, r *connect.Request[pb.CertRenewRequest]) (*connect.Response[pb.CertRenewResponse], error) {
	cert, bundle, err := s.issue(principal(ctx), "csr", r.Msg.GetCsr())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&pb.CertRenewResponse{Certificate: cert, CaBundle: bundle}), nil
}
