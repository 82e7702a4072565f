package api

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dcos-kernel/dcos/internal/metrics"
	"github.com/dcos-kernel/dcos/sdk/transport"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// ClusterFunc answers ClusterInfo: the kernels of the cluster and which
// one leads (the daemon reads them from the store).
type ClusterFunc func(ctx context.Context) (*pb.ClusterInfoResponse, error)

// ClusterInfo implements syscallsv1connect.KernelHandler: Config.Cluster's
// answer with this kernel's revision; without Cluster (a kernel that is
// not part of an election), no kernels are listed.
func (s *Server) ClusterInfo(ctx context.Context, _ *connect.Request[pb.ClusterInfoRequest]) (*connect.Response[pb.ClusterInfoResponse], error) {
	resp := &pb.ClusterInfoResponse{}
	if s.cluster != nil {
		r, err := s.cluster(ctx)
		if err != nil {
			return nil, connect.NewError(connect.CodeUnavailable, err)
		}
		resp = r
	}
	resp.Revision = s.k.Revision()
	return connect.NewResponse(resp), nil
}

// Switch is the API handler of a kernel process that may lead or stand
// by (docs/operations.md): while it leads it serves the leading kernel's
// handler (NewHandler), otherwise the standby handler (NewStandbyHandler).
// GET /leader/alive is the standbys' probe of the leader: while this
// process leads it answers 200 and keeps the response open until the
// lead ends (so a standby learns of a crash the moment the connection
// breaks); otherwise 503. It is safe for concurrent use.
type Switch struct {
	standby http.Handler

	mu     sync.Mutex
	leader atomic.Pointer[http.Handler]
	term   chan struct{} // closed when the current lead ends
}

// NewSwitch returns a Switch serving standby until SetLeader.
func NewSwitch(standby http.Handler) *Switch {
	return &Switch{standby: standby}
}

// SetLeader serves h (the leading kernel's handler) from now on.
func (s *Switch) SetLeader(h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.term != nil {
		close(s.term)
	}
	s.term = make(chan struct{})
	s.leader.Store(&h)
}

// SetStandby serves the standby handler from now on; calls already in
// the leader's handler go on until it ends them.
func (s *Switch) SetStandby() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.term != nil {
		close(s.term)
		s.term = nil
	}
	s.leader.Store(nil)
}

// Leading reports whether the leader's handler is being served.
func (s *Switch) Leading() bool { return s.leader.Load() != nil }

func (s *Switch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/leader/alive" && r.Method == http.MethodGet {
		s.alive(w, r)
		return
	}
	if h := s.leader.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	s.standby.ServeHTTP(w, r)
}

func (s *Switch) alive(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	term := s.term
	s.mu.Unlock()
	if term == nil {
		http.Error(w, "standby", http.StatusServiceUnavailable)
		return
	}
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Time{})
	rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte("leading\n"))
	rc.Flush()
	t := time.NewTicker(10 * time.Second) // keeps idle middleboxes from dropping it
	defer t.Stop()
	for {
		select {
		case <-term:
			return
		case <-r.Context().Done():
			return
		case <-t.C:
			if _, err := w.Write([]byte(".\n")); err != nil {
				return
			}
			rc.Flush()
		}
	}
}

// NewStandbyHandler returns the handler of a kernel that does not lead:
// behind the same front door as NewHandler (authentication, roles, rate
// limits), every syscall but ClusterInfo answers Unavailable "this kernel
// is a standby; the leader is at URL" with the transport.StandbyHeader
// and transport.LeaderHeader headers, which the SDK's clients follow
// (leader returns the leader's URL, or "" during an election with, if
// known, why nobody leads: e.g. the store is unreachable). ClusterInfo is
// answered from cfg.Cluster; /healthz answers "standby"; /metrics serves
// the front door's and the Go runtime's metrics and cfg.Extra.
func NewStandbyHandler(cfg Config, leader func() (string, error)) http.Handler {
	mux := http.NewServeMux()
	errw := connect.NewErrorWriter()
	path, h := syscallsv1connect.NewKernelHandler(&standbyServer{cluster: cfg.Cluster}, connect.WithReadMaxBytes(MaxRequestBytes))
	mux.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == syscallsv1connect.KernelClusterInfoProcedure {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set(transport.StandbyHeader, "1")
		l, why := leader()
		var err error
		switch {
		case l != "":
			w.Header().Set(transport.LeaderHeader, l)
			err = fmt.Errorf("this kernel is a standby; the leader is at %s", l)
		case why != nil:
			err = fmt.Errorf("no kernel leads: %v; retry", why)
		default:
			err = fmt.Errorf("no kernel leads yet (an election is under way); retry")
		}
		errw.Write(w, r, connect.NewError(connect.CodeUnavailable, err))
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("standby\n"))
	})
	d := &door{tokens: cfg.Tokens, limiter: newRateLimiter(cfg.RateLimits, cfg.PrincipalRateLimits), errw: errw, next: mux}
	reg := metrics.NewRegistry(append([]prometheus.Collector{}, d.collectors(cfg.Conns)...)...)
	mux.Handle("GET /metrics", metrics.Handler(append(prometheus.Gatherers{reg}, cfg.Extra...)))
	return d
}

// standbyServer answers the only syscall a standby serves.
type standbyServer struct {
	syscallsv1connect.UnimplementedKernelHandler
	cluster ClusterFunc
}

func (s *standbyServer) ClusterInfo(ctx context.Context, _ *connect.Request[pb.ClusterInfoRequest]) (*connect.Response[pb.ClusterInfoResponse], error) {
	if s.cluster == nil {
		return connect.NewResponse(&pb.ClusterInfoResponse{}), nil
	}
	r, err := s.cluster(ctx)
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	return connect.NewResponse(r), nil
}
