package api

import (
	"context"
	"errors"
	"fmt"
	"time"

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

// CAAdmin is implemented by a CertIssuer whose CA can be rotated and
// listed (the daemon's): CARotate and CertList answer Unimplemented
// without it. Its methods are safe for concurrent use and return
// *kernel.Error values (or wrap ErrRotating) for the API to map.
type CAAdmin interface {
	// RotateCA makes a new CA active at once and retires the old one
	// after overlap (see the syscall's comment).
	RotateCA(ctx context.Context, overlap, validity time.Duration) (*pb.CARotateResponse, error)
	// ListCerts lists the CAs and the certificates issued.
	ListCerts(ctx context.Context) (*pb.CertListResponse, error)
}

// DefaultCAOverlap is CARotate's overlap when the request gives none.
const DefaultCAOverlap = time.Hour

// MinCAOverlap is the shortest overlap CARotate accepts: holders need a
// few seconds to fetch the new bundle.
const MinCAOverlap = 10 * time.Second

func (s *Server) caAdmin() (CAAdmin, error) {
	if a, ok := s.certs.(CAAdmin); ok {
		return a, nil
	}
	return nil, connect.NewError(connect.CodeUnimplemented, errors.New("this kernel's CA cannot be rotated or listed"))
}

// CARotate implements syscallsv1connect.KernelHandler.
func (s *Server) CARotate(ctx context.Context, r *connect.Request[pb.CARotateRequest]) (*connect.Response[pb.CARotateResponse], error) {
	a, err := s.caAdmin()
	if err != nil {
		return nil, err
	}
	overlap, validity := DefaultCAOverlap, time.Duration(0)
	if d := r.Msg.GetOverlap(); d != nil {
		if overlap = d.AsDuration(); overlap < MinCAOverlap {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("overlap: at least %s, got %s", MinCAOverlap, overlap))
		}
	}
	if d := r.Msg.GetValidity(); d != nil {
		if validity = d.AsDuration(); validity < 2*overlap {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("validity: at least twice the overlap (%s), got %s", 2*overlap, validity))
		}
	}
	res, err := a.RotateCA(ctx, overlap, validity)
	return reply(res, err)
}

// CertList implements syscallsv1connect.KernelHandler.
func (s *Server) CertList(ctx context.Context, _ *connect.Request[pb.CertListRequest]) (*connect.Response[pb.CertListResponse], error) {
	a, err := s.caAdmin()
	if err != nil {
		return nil, err
	}
	res, err := a.ListCerts(ctx)
	return reply(res, err)
}
