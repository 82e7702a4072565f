package api

import (
	"context"
	"errors"
	"strconv"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TokenStore is what the token syscalls need of the cluster's token store
// (*tokenstore.Store implements it). Its errors are *kernel.Error values
// where the caller is at fault (InvalidArgument naming the field,
// NotFound), answered with their code.
type TokenStore interface {
	// Create stores a new token and returns its secret, shown once.
	Create(ctx context.Context, role kernel.Role, name string, ttl time.Duration, createdBy string) (string, *pb.TokenInfo, error)
	// List describes every stored token.
	List(ctx context.Context) ([]*pb.TokenInfo, error)
	// Revoke deletes the token of id, or every token named name.
	Revoke(ctx context.Context, id, name string) ([]*pb.TokenInfo, error)
	// Join mints the agent token of an agent on hostname.
	Join(ctx context.Context, hostname, createdBy string) (string, *pb.TokenInfo, error)
}

// tokenAdmin serves the token syscalls from a store and a tokens file.
type tokenAdmin struct {
	store TokenStore
	file  *Tokens
}

var errNoTokenStore = connect.NewError(connect.CodeUnimplemented, errors.New("this kernel has no token store (its tokens come from a tokens file only)"))

// TokenCreate implements syscallsv1connect.KernelHandler.
func (s *Server) TokenCreate(ctx context.Context, r *connect.Request[pb.TokenCreateRequest]) (*connect.Response[pb.TokenCreateResponse], error) {
	if s.tokens.store == nil {
		return nil, errNoTokenStore
	}
	role, ok := kernel.ParseRole(r.Msg.GetRole())
	if !ok {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("role: "+strconv.Quote(r.Msg.GetRole())+" is not operator, framework, agent or agent-join"))
	}
	var ttl time.Duration
	if d := r.Msg.GetTtl(); d != nil {
		if err := d.CheckValid(); err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("ttl: "+err.Error()))
		}
		ttl = d.AsDuration()
	}
	secret, info, err := s.tokens.store.Create(ctx, role, r.Msg.GetName(), ttl, principal(ctx).Name)
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&pb.TokenCreateResponse{Token: secret, Info: info}), nil
}

// TokenList implements syscallsv1connect.KernelHandler: the stored tokens,
// then the tokens file's (created_by FileCreator).
func (s *Server) TokenList(ctx context.Context, _ *connect.Request[pb.TokenListRequest]) (*connect.Response[pb.TokenListResponse], error) {
	var infos []*pb.TokenInfo
	if s.tokens.store != nil {
		var err error
		if infos, err = s.tokens.store.List(ctx); err != nil {
			return nil, toConnect(err)
		}
	}
	infos = append(infos, s.tokens.file.Infos()...)
	return connect.NewResponse(&pb.TokenListResponse{Tokens: infos}), nil
}

// TokenRevoke implements syscallsv1connect.KernelHandler. A token that
// only the tokens file holds is FailedPrecondition: it is revoked by
// editing the file.
func (s *Server) TokenRevoke(ctx context.Context, r *connect.Request[pb.TokenRevokeRequest]) (*connect.Response[pb.TokenRevokeResponse], error) {
	id, name := r.Msg.GetId(), r.Msg.GetName()
	fileOnly := func() error {
		what := "name " + strconv.Quote(name)
		if id != "" {
			what = "id " + id
		}
		return connect.NewError(connect.CodeFailedPrecondition, errors.New("token revoke: the token of "+what+
			" is in the kernel's tokens file (--tokens), not in the cluster's store: remove it from the file on every kernel and restart them"))
	}
	if s.tokens.store == nil {
		if (id != "" || name != "") && s.tokens.file.holds(id, name) {
			return nil, fileOnly()
		}
		return nil, errNoTokenStore
	}
	revoked, err := s.tokens.store.Revoke(ctx, id, name)
	if kernel.CodeOf(err) == kernel.NotFound && s.tokens.file.holds(id, name) {
		return nil, fileOnly()
	}
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(&pb.TokenRevokeResponse{Revoked: revoked}), nil
}

// AgentJoin implements syscallsv1connect.KernelHandler (agent join tokens
// only: the door).
func (s *Server) AgentJoin(ctx context.Context, r *connect.Request[pb.AgentJoinRequest]) (*connect.Response[pb.AgentJoinResponse], error) {
	if s.tokens.store == nil {
		return nil, errNoTokenStore
	}
	csr := r.Msg.GetCsr()
	if len(csr) > 0 {
		if s.certs == nil {
			return nil, errNoCA
		}
		if err := parseCSR("csr", csr); err != nil {
			return nil, err
		}
	}
	secret, info, err := s.tokens.store.Join(ctx, r.Msg.GetHostname(), principal(ctx).Name)
	if err != nil {
		return nil, toConnect(err)
	}
	resp := &pb.AgentJoinResponse{Token: secret, Info: info}
	if len(csr) > 0 {
		if resp.Certificate, resp.CaBundle, err = s.issue(kernel.Principal{Name: info.GetName(), Role: kernel.RoleAgent}, "csr", csr); err != nil {
			return nil, err
		}
	}
	return connect.NewResponse(resp), nil
}
