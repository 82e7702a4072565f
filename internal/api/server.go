package api

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dcos-kernel/dcos/internal/metrics"
	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// WatchWriteTimeout bounds each write of a Watch stream: a client that
// stops reading for this long has its stream reset, so that it cannot pin
// a handler (the kernel meanwhile ends its Watch once its queue is full).
const WatchWriteTimeout = 10 * time.Second

// CompressMinBytes is the size below which answers (and each Watch
// event) are sent uncompressed even to a client that accepts gzip: on the
// loopback and LAN links the kernel serves, compressing small messages
// cost more CPU than it saved (a 600-instance service start spent 6 % of
// dcosd's CPU in gzip of single events).
const CompressMinBytes = 4 << 10

// Server implements the Kernel service on a kernel.Kernel.
type Server struct {
	k            *kernel.Kernel
	writeTimeout time.Duration // per Watch send; WatchWriteTimeout
	cluster      ClusterFunc   // ClusterInfo's answer; nil: none
	tokens       tokenAdmin    // the token syscalls' (tokens_api.go)
	certs        CertIssuer    // CertRenew's and AgentJoin's (certs.go); nil: none
}

var _ syscallsv1connect.KernelHandler = (*Server)(nil)

// allowed lists, per procedure, the roles that may call it.
var allowed = map[string][]kernel.Role{
	syscallsv1connect.KernelAllocateProcedure:         {kernel.RoleOperator, kernel.RoleFramework},
	syscallsv1connect.KernelLaunchProcedure:           {kernel.RoleOperator, kernel.RoleFramework},
	syscallsv1connect.KernelRevokeProcedure:           {kernel.RoleOperator, kernel.RoleFramework},
	syscallsv1connect.KernelKeepAliveProcedure:        {kernel.RoleOperator, kernel.RoleFramework},
	syscallsv1connect.KernelWatchProcedure:            {kernel.RoleOperator, kernel.RoleFramework, kernel.RoleAgent},
	syscallsv1connect.KernelRegisterAgentProcedure:    {kernel.RoleOperator, kernel.RoleAgent},
	syscallsv1connect.KernelHeartbeatProcedure:        {kernel.RoleOperator, kernel.RoleAgent},
	syscallsv1connect.KernelReportTaskStatusProcedure: {kernel.RoleOperator, kernel.RoleAgent},
	syscallsv1connect.KernelListAgentsProcedure:       {kernel.RoleOperator, kernel.RoleFramework, kernel.RoleAgent},
	syscallsv1connect.KernelListAllocationsProcedure:  {kernel.RoleOperator, kernel.RoleFramework, kernel.RoleAgent},
	syscallsv1connect.KernelListTasksProcedure:        {kernel.RoleOperator, kernel.RoleFramework, kernel.RoleAgent},
	syscallsv1connect.KernelPolicyLoadProcedure:       {kernel.RoleOperator},
	syscallsv1connect.KernelPolicyTestProcedure:       {kernel.RoleOperator},
	syscallsv1connect.KernelPolicyListProcedure:       {kernel.RoleOperator, kernel.RoleFramework, kernel.RoleAgent},
	syscallsv1connect.KernelPolicyUseProcedure:        {kernel.RoleOperator},
	syscallsv1connect.KernelPolicyRollbackProcedure:   {kernel.RoleOperator},
	syscallsv1connect.KernelRoleSetProcedure:          {kernel.RoleOperator},
	syscallsv1connect.KernelRoleListProcedure:         {kernel.RoleOperator, kernel.RoleFramework},
	syscallsv1connect.KernelListVolumesProcedure:      {kernel.RoleOperator, kernel.RoleFramework, kernel.RoleAgent},
	syscallsv1connect.KernelDestroyVolumeProcedure:    {kernel.RoleOperator, kernel.RoleFramework},
	syscallsv1connect.KernelRemoveImageProcedure:      {kernel.RoleOperator},
	syscallsv1connect.KernelCampaignProcedure:         {kernel.RoleOperator, kernel.RoleFramework},
	syscallsv1connect.KernelResignProcedure:           {kernel.RoleOperator, kernel.RoleFramework},
	syscallsv1connect.KernelLeaderProcedure:           {kernel.RoleOperator, kernel.RoleFramework},
	syscallsv1connect.KernelStateGetProcedure:         {kernel.RoleOperator, kernel.RoleFramework},
	syscallsv1connect.KernelStatePutProcedure:         {kernel.RoleOperator, kernel.RoleFramework},
	syscallsv1connect.KernelStateDeleteProcedure:      {kernel.RoleOperator, kernel.RoleFramework},
	syscallsv1connect.KernelStateListProcedure:        {kernel.RoleOperator, kernel.RoleFramework},
	syscallsv1connect.KernelLogsProcedure:             {kernel.RoleOperator, kernel.RoleFramework},
	syscallsv1connect.KernelExecProcedure:             {kernel.RoleOperator, kernel.RoleFramework},
	syscallsv1connect.KernelAgentStreamsProcedure:     {kernel.RoleAgent},
	syscallsv1connect.KernelAgentRelayProcedure:       {kernel.RoleAgent},
	syscallsv1connect.KernelClusterInfoProcedure:      {kernel.RoleOperator, kernel.RoleFramework, kernel.RoleAgent},
	syscallsv1connect.KernelTaskSecretsProcedure:      {kernel.RoleAgent},
	syscallsv1connect.KernelAgentDrainProcedure:       {kernel.RoleOperator},
	syscallsv1connect.KernelTokenCreateProcedure:      {kernel.RoleOperator},
	syscallsv1connect.KernelTokenListProcedure:        {kernel.RoleOperator},
	syscallsv1connect.KernelTokenRevokeProcedure:      {kernel.RoleOperator},
	syscallsv1connect.KernelAgentJoinProcedure:        {kernel.RoleAgentJoin},
	syscallsv1connect.KernelAuditListProcedure:        {kernel.RoleOperator},
	syscallsv1connect.KernelCertRenewProcedure:        {kernel.RoleAgent, kernel.RoleFramework, kernel.RoleOperator},
	syscallsv1connect.KernelCARotateProcedure:         {kernel.RoleOperator},
	syscallsv1connect.KernelCertListProcedure:         {kernel.RoleOperator},
	// The batches are allowed to whom their single calls are.
	syscallsv1connect.KernelLaunchBatchProcedure:           {kernel.RoleOperator, kernel.RoleFramework},
	syscallsv1connect.KernelReportTaskStatusBatchProcedure: {kernel.RoleOperator, kernel.RoleAgent},
}

// bidi are the bidirectional streams: their request body lasts as long as
// the call, so the server's timeouts and the request size cap (which
// counts the whole body) do not apply; Connect bounds each message
// (MaxRequestBytes) and the handlers bound each send.
var bidi = map[string]bool{
	syscallsv1connect.KernelExecProcedure:       true,
	syscallsv1connect.KernelAgentRelayProcedure: true,
}

// serverStreams are the server streams: freed from the server's
// timeouts once their request is read (liftStreamDeadlines).
var serverStreams = map[string]bool{
	syscallsv1connect.KernelWatchProcedure:        true,
	syscallsv1connect.KernelLogsProcedure:         true,
	syscallsv1connect.KernelAgentStreamsProcedure: true,
}

// Config configures the handler of NewHandler.
type Config struct {
	// Tokens authenticates callers: a tokens file (*Tokens), the
	// cluster's stored tokens (tokenstore.Registry), or both (TokenChain).
	Tokens TokenLookup
	// TokenStore serves TokenCreate, TokenList, TokenRevoke and
	// AgentJoin (a *tokenstore.Store); nil: they answer Unimplemented.
	TokenStore TokenStore
	// FileTokens are the tokens file's tokens, also in Tokens: TokenList
	// shows them, and TokenRevoke says that they are revoked by editing
	// the file. May be nil.
	FileTokens *Tokens
	// RateLimits is the syscall rate allowed to each principal, per
	// role; nil means DefaultRateLimits, a role it lacks is unlimited.
	RateLimits map[kernel.Role]RateLimit
	// PrincipalRateLimits override RateLimits for single principals.
	PrincipalRateLimits map[kernel.Principal]RateLimit
	// Extra metrics served on /metrics (e.g. the local agent's in dcosd
	// dev).
	Extra []prometheus.Gatherer
	// Conns, if not nil, is the API port's listener, whose connection
	// counts /metrics shows.
	Conns *ConnLimiter
	// WatchWriteTimeout bounds each write of a Watch stream (default
	// WatchWriteTimeout).
	WatchWriteTimeout time.Duration
	// Cluster answers ClusterInfo (nil: no kernels listed).
	Cluster ClusterFunc
	// Certs issues client certificates (CertRenew, AgentJoin with a
	// csr); nil: CertRenew answers Unimplemented.
	Certs CertIssuer
}

// Handler returns NewHandler's handler with the default rate limits.
func Handler(k *kernel.Kernel, tokens *Tokens, extra ...prometheus.Gatherer) http.Handler {
	return NewHandler(k, Config{Tokens: tokens, Extra: extra})
}

// NewHandler returns the HTTP handler for k: the Kernel service (Connect,
// gRPC, gRPC-Web, HTTP/JSON) behind its front door (door: authentication,
// roles, rate limits and request limits before a body is read), gRPC
// reflection, GET /healthz and GET /metrics (Prometheus: the kernel's
// metrics, the Go runtime's, and those of cfg.Extra). Reflection,
// /healthz and /metrics need no token: the schema is the public ABI, and
// reflection requests are bounded to 64 KiB each.
func NewHandler(k *kernel.Kernel, cfg Config) http.Handler {
	if cfg.WatchWriteTimeout == 0 {
		cfg.WatchWriteTimeout = WatchWriteTimeout
	}
	mux := http.NewServeMux()
	audit := connect.WithInterceptors(auditor{k})
	path, h := syscallsv1connect.NewKernelHandler(&Server{k: k, writeTimeout: cfg.WatchWriteTimeout, cluster: cfg.Cluster, tokens: tokenAdmin{cfg.TokenStore, cfg.FileTokens}, certs: cfg.Certs}, connect.WithReadMaxBytes(MaxRequestBytes), connect.WithCompressMinBytes(CompressMinBytes), audit)
	mux.Handle(path, h)
	// The same service with a larger limit, for the calls that upload a
	// module: the mux routes these two paths here (more specific
	// pattern); the door lets only operators send that much.
	_, big := syscallsv1connect.NewKernelHandler(&Server{k: k}, connect.WithReadMaxBytes(MaxModuleRequestBytes), connect.WithCompressMinBytes(CompressMinBytes), audit)
	mux.Handle(syscallsv1connect.KernelPolicyLoadProcedure, big)
	mux.Handle(syscallsv1connect.KernelPolicyTestProcedure, big)
	reflector := grpcreflect.NewStaticReflector(syscallsv1connect.KernelName)
	mux.Handle(grpcreflect.NewHandlerV1(reflector, connect.WithReadMaxBytes(64<<10)))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector, connect.WithReadMaxBytes(64<<10)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	d := &door{tokens: cfg.Tokens, limiter: newRateLimiter(cfg.RateLimits, cfg.PrincipalRateLimits), errw: connect.NewErrorWriter(), next: mux, audit: k.Audit}
	// Unauthenticated like /healthz, so that Prometheus scrapes it without
	// a token; it shows ids, owner and role names and usage, never specs.
	reg := metrics.NewRegistry(append([]prometheus.Collector{metrics.NewKernelCollector(k.Metrics)}, d.collectors(cfg.Conns)...)...)
	mux.Handle("GET /metrics", metrics.Handler(append(prometheus.Gatherers{reg}, cfg.Extra...)))
	return d
}

// Timeouts are the API server's timeouts. Read and Write are sized for
// unary calls; Watch streams are freed from them (liftStreamDeadlines).
type Timeouts struct {
	// ReadHeader bounds reading a request's headers.
	ReadHeader time.Duration
	// Read bounds reading a whole request (headers and body).
	Read time.Duration
	// Write bounds a unary call from the end of its headers to the end
	// of its response.
	Write time.Duration
	// Idle closes a keep-alive connection without requests (HTTP/1) or
	// streams (HTTP/2) for this long.
	Idle time.Duration
}

// DefaultTimeouts returns the timeouts of Serve.
func DefaultTimeouts() Timeouts {
	return Timeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: 60 * time.Second, Idle: 120 * time.Second}
}

// Serve is ServeWith with DefaultTimeouts.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	return ServeWith(ctx, ln, h, log, DefaultTimeouts())
}

// ServeWith serves h on ln with HTTP/1.1 and cleartext HTTP/2 (for gRPC)
// and the timeouts t until ctx ends, then shuts down gracefully (open
// Watch streams are cut after a short grace period). Wrap ln with
// LimitListener to cap connections.
func ServeWith(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger, t Timeouts) error {
	return serve(ctx, ln, h, log, t, nil)
}

// serve is ServeWith over cleartext (tlsConf nil) or ServeTLSWith.
func serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger, t Timeouts, tlsConf *tls.Config) error {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	if tlsConf == nil {
		protocols.SetUnencryptedHTTP2(true)
	} else {
		protocols.SetHTTP2(true)
	}
	srv := &http.Server{
		TLSConfig:         tlsConf,
		Handler:           h,
		Protocols:         &protocols,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() {
		// With TLS, ln hands out established *tls.Conn (ServeTLSWith's
		// handshakeListener): Serve speaks HTTP/2 on those that
		// negotiated h2.
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	return nil
}

// toConnect maps a kernel error to a Connect error with the same code.
func toConnect(err error) error {
	if err == nil {
		return nil
	}
	var ke *kernel.Error
	if !errors.As(err, &ke) {
		return connect.NewError(connect.CodeInternal, err)
	}
	codes := map[kernel.Code]connect.Code{
		kernel.InvalidArgument:    connect.CodeInvalidArgument,
		kernel.NotFound:           connect.CodeNotFound,
		kernel.PermissionDenied:   connect.CodePermissionDenied,
		kernel.FailedPrecondition: connect.CodeFailedPrecondition,
		kernel.Unavailable:        connect.CodeUnavailable,
		kernel.ResourceExhausted:  connect.CodeResourceExhausted,
		kernel.Aborted:            connect.CodeAborted,
		kernel.Unimplemented:      connect.CodeUnimplemented,
		kernel.Internal:           connect.CodeInternal,
	}
	ce := connect.NewError(codes[ke.Code], errors.New(ke.Msg))
	if ke.Resync != nil {
		if d, derr := connect.NewErrorDetail(&pb.ResyncInfo{CurrentRevision: ke.Resync.Current, CompactRevision: ke.Resync.Compacted}); derr == nil {
			ce.AddDetail(d)
		}
	}
	return ce
}

func reply[T any](m *T, err error) (*connect.Response[T], error) {
	if err != nil {
		return nil, toConnect(err)
	}
	return connect.NewResponse(m), nil
}

// Allocate implements syscallsv1connect.KernelHandler.
func (s *Server) Allocate(ctx context.Context, r *connect.Request[pb.AllocateRequest]) (*connect.Response[pb.AllocateResponse], error) {
	return reply(s.k.Allocate(ctx, principal(ctx), r.Msg))
}

// Launch implements syscallsv1connect.KernelHandler.
func (s *Server) Launch(ctx context.Context, r *connect.Request[pb.LaunchRequest]) (*connect.Response[pb.LaunchResponse], error) {
	return reply(s.k.Launch(ctx, principal(ctx), r.Msg))
}

// Watch implements syscallsv1connect.KernelHandler. Each send has a
// write deadline (s.writeTimeout): a client that stops reading has its
// stream reset instead of holding this handler.
func (s *Server) Watch(ctx context.Context, r *connect.Request[pb.WatchRequest], st *connect.ServerStream[pb.Event]) error {
	sendWith := s.sender(ctx)
	send := func(ev *pb.Event) error { return sendWith(func() error { return st.Send(ev) }) }
	// Send headers now, so a client sees the stream is open before the
	// first event.
	if err := send(nil); err != nil {
		return err
	}
	err := toConnect(s.k.Watch(ctx, principal(ctx), r.Msg, send))
	s.trailerDeadline(ctx)
	return err
}

// Revoke implements syscallsv1connect.KernelHandler.
func (s *Server) Revoke(ctx context.Context, r *connect.Request[pb.RevokeRequest]) (*connect.Response[pb.RevokeResponse], error) {
	return reply(s.k.Revoke(ctx, principal(ctx), r.Msg))
}

// KeepAlive implements syscallsv1connect.KernelHandler.
func (s *Server) KeepAlive(ctx context.Context, r *connect.Request[pb.KeepAliveRequest]) (*connect.Response[pb.KeepAliveResponse], error) {
	return reply(s.k.KeepAlive(ctx, principal(ctx), r.Msg))
}

// RegisterAgent implements syscallsv1connect.KernelHandler.
func (s *Server) RegisterAgent(ctx context.Context, r *connect.Request[pb.RegisterAgentRequest]) (*connect.Response[pb.RegisterAgentResponse], error) {
	return reply(s.k.RegisterAgent(ctx, principal(ctx), r.Msg))
}

// Heartbeat implements syscallsv1connect.KernelHandler. The answer
// carries the cluster's bundle fingerprint when Config.Certs is a
// CABundleFingerprinter.
func (s *Server) Heartbeat(ctx context.Context, r *connect.Request[pb.HeartbeatRequest]) (*connect.Response[pb.HeartbeatResponse], error) {
	res, err := s.k.Heartbeat(ctx, principal(ctx), r.Msg)
	if f, ok := s.certs.(CABundleFingerprinter); ok && res != nil {
		res.CaBundleFingerprint = f.CABundleFingerprint()
	}
	return reply(res, err)
}

// CABundleFingerprinter is implemented by a CertIssuer that holds the
// cluster's trust bundle in memory (the daemon's): Heartbeat answers
// CABundleFingerprint, so that agents learn of a CA rotation from their
// heartbeat. It is called on every heartbeat: it must be safe for
// concurrent use, cheap, and must not read the store.
type CABundleFingerprinter interface {
	// CABundleFingerprint is the hex SHA-256 of the cluster's bundle
	// (PEM), as ClusterInfoResponse.ca_bundle_fingerprint.
	CABundleFingerprint() string
}

// ReportTaskStatus implements syscallsv1connect.KernelHandler.
func (s *Server) ReportTaskStatus(ctx context.Context, r *connect.Request[pb.ReportTaskStatusRequest]) (*connect.Response[pb.ReportTaskStatusResponse], error) {
	return reply(s.k.ReportTaskStatus(ctx, principal(ctx), r.Msg))
}

// ListAgents implements syscallsv1connect.KernelHandler.
func (s *Server) ListAgents(ctx context.Context, _ *connect.Request[pb.ListAgentsRequest]) (*connect.Response[pb.ListAgentsResponse], error) {
	return reply(s.k.ListAgents(ctx, principal(ctx)), nil)
}

// ListAllocations implements syscallsv1connect.KernelHandler.
func (s *Server) ListAllocations(ctx context.Context, r *connect.Request[pb.ListAllocationsRequest]) (*connect.Response[pb.ListAllocationsResponse], error) {
	return reply(s.k.ListAllocations(ctx, principal(ctx), r.Msg), nil)
}

// ListTasks implements syscallsv1connect.KernelHandler.
func (s *Server) ListTasks(ctx context.Context, r *connect.Request[pb.ListTasksRequest]) (*connect.Response[pb.ListTasksResponse], error) {
	return reply(s.k.ListTasks(ctx, principal(ctx), r.Msg), nil)
}

// TaskSecrets implements syscallsv1connect.KernelHandler.
func (s *Server) TaskSecrets(ctx context.Context, r *connect.Request[pb.TaskSecretsRequest]) (*connect.Response[pb.TaskSecretsResponse], error) {
	return reply(s.k.TaskSecrets(ctx, principal(ctx), r.Msg))
}

// ListVolumes implements syscallsv1connect.KernelHandler.
func (s *Server) ListVolumes(ctx context.Context, r *connect.Request[pb.ListVolumesRequest]) (*connect.Response[pb.ListVolumesResponse], error) {
	return reply(s.k.ListVolumes(ctx, principal(ctx), r.Msg), nil)
}

// DestroyVolume implements syscallsv1connect.KernelHandler.
func (s *Server) DestroyVolume(ctx context.Context, r *connect.Request[pb.DestroyVolumeRequest]) (*connect.Response[pb.DestroyVolumeResponse], error) {
	return reply(s.k.DestroyVolume(ctx, principal(ctx), r.Msg))
}

// RemoveImage implements syscallsv1connect.KernelHandler.
func (s *Server) RemoveImage(ctx context.Context, r *connect.Request[pb.RemoveImageRequest]) (*connect.Response[pb.RemoveImageResponse], error) {
	return reply(s.k.RemoveImage(ctx, principal(ctx), r.Msg))
}

// PolicyLoad implements syscallsv1connect.KernelHandler.
func (s *Server) PolicyLoad(ctx context.Context, r *connect.Request[pb.PolicyLoadRequest]) (*connect.Response[pb.PolicyLoadResponse], error) {
	return reply(s.k.PolicyLoad(ctx, principal(ctx), r.Msg))
}

// PolicyTest implements syscallsv1connect.KernelHandler.
func (s *Server) PolicyTest(ctx context.Context, r *connect.Request[pb.PolicyTestRequest]) (*connect.Response[pb.PolicyTestResponse], error) {
	return reply(s.k.PolicyTest(ctx, principal(ctx), r.Msg))
}

// PolicyList implements syscallsv1connect.KernelHandler.
func (s *Server) PolicyList(ctx context.Context, _ *connect.Request[pb.PolicyListRequest]) (*connect.Response[pb.PolicyListResponse], error) {
	return reply(s.k.PolicyList(ctx, principal(ctx)), nil)
}

// PolicyUse implements syscallsv1connect.KernelHandler.
func (s *Server) PolicyUse(ctx context.Context, r *connect.Request[pb.PolicyUseRequest]) (*connect.Response[pb.PolicyUseResponse], error) {
	return reply(s.k.PolicyUse(ctx, principal(ctx), r.Msg))
}

// PolicyRollback implements syscallsv1connect.KernelHandler.
func (s *Server) PolicyRollback(ctx context.Context, r *connect.Request[pb.PolicyRollbackRequest]) (*connect.Response[pb.PolicyRollbackResponse], error) {
	return reply(s.k.PolicyRollback(ctx, principal(ctx), r.Msg))
}

// LaunchBatch implements syscallsv1connect.KernelHandler.
func (s *Server) LaunchBatch(ctx context.Context, r *connect.Request[pb.LaunchBatchRequest]) (*connect.Response[pb.LaunchBatchResponse], error) {
	return reply(s.k.LaunchBatch(ctx, principal(ctx), r.Msg))
}

// ReportTaskStatusBatch implements syscallsv1connect.KernelHandler.
func (s *Server) ReportTaskStatusBatch(ctx context.Context, r *connect.Request[pb.ReportTaskStatusBatchRequest]) (*connect.Response[pb.ReportTaskStatusBatchResponse], error) {
	return reply(s.k.ReportTaskStatusBatch(ctx, principal(ctx), r.Msg))
}
