package simagent

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"path"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/pki"
	"github.com/dcos-kernel/dcos/sdk/transport"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

const (
	// DefaultReportWorkers is how many reports one simulated agent has in
	// flight at most, as the real agent (agent/reports.go).
	DefaultReportWorkers = 8
	// callTimeout bounds every unary call, as the real agent's.
	callTimeout = 10 * time.Second
	// defaultHeartbeat is used when the kernel answers no interval.
	defaultHeartbeat = 5 * time.Second
	// joinWorkers bounds the AgentJoin and RegisterAgent calls of Start in
	// flight.
	joinWorkers = 16
)

// Config configures a Cluster of simulated agents. KernelURL, Agents and
// one of JoinToken or AgentTokens are required.
type Config struct {
	// KernelURL is the kernel's base URL ("http://127.0.0.1:7070") or a
	// comma-separated list of a cluster's kernels (transport.Cluster).
	KernelURL string
	// Agents is how many agents to run (> 0).
	Agents int
	// JoinToken is an agent-join token: each agent exchanges it with
	// AgentJoin for a token of its own, as `dcosd agent --token JOIN`
	// does. Ignored when AgentTokens is set.
	JoinToken string
	// AgentTokens are the agents' own tokens, one per agent (len ==
	// Agents): an agent token registers one agent only.
	AgentTokens []string
	// Resources each agent declares; nil means cpus=16, mem=64Gi,
	// disk=100Gi.
	Resources *pb.Resources
	// Labels every agent registers with; each also gets "simagent" = its
	// index (0 to Agents-1).
	Labels map[string]string
	// Hostname is the prefix of the agents' host names (PREFIX-INDEX);
	// empty means "sim".
	Hostname string
	// Short says whether a launched task ends on its own (FINISHED, exit
	// code 0) once RUNNING; nil means ShortTrue.
	Short func(*pb.Task) bool
	// ReportWorkers bounds each agent's report calls in flight; 0 means
	// DefaultReportWorkers.
	ReportWorkers int
	// SingleReports sends every report in a ReportTaskStatus call of its
	// own, the path before ReportTaskStatusBatch (for comparison);
	// false: the reports ready together go in one batch call, as the real
	// agent's queue sends them.
	SingleReports bool
	// HTTPClient carries every call; nil means one transport.H2CClient
	// shared by the cluster's agents: their calls and Watch streams are
	// multiplexed on a few HTTP/2 connections instead of one HTTP/1.1
	// connection per call in flight, which would take hundreds of the
	// kernel's per-client connections (--max-connections-per-client).
	HTTPClient *http.Client
	// CACert is the cluster CA bundle (PEM) that verifies an https://
	// kernel. Each agent then gets a client certificate of its own, as a
	// real agent does (AgentJoin with a CSR, or CertRenew with its own
	// token), and its own HTTP/2 connection presenting it: the kernel
	// refuses an agent's calls without its certificate. HTTPClient is then
	// used only for the joins.
	CACert []byte
	// Logger receives the agents' warnings; nil discards them.
	Logger *slog.Logger
}

// ShortTrue is the default Config.Short: a task whose command is `true`
// (a bare name or a path ending in /true), whatever its args.
func ShortTrue(t *pb.Task) bool { return path.Base(t.GetCommand()) == "true" }

// Stats counts what a Cluster's agents did. Reports counts the reports
// the kernel answered (accepted or refused for good); ReportCalls the
// ReportTaskStatus and ReportTaskStatusBatch calls made for them;
// ReportRetries the reports it failed and were sent again.
type Stats struct {
	Launched, Finished, Killed, Reports, ReportCalls, ReportRetries, Registrations int64
}

// Cluster is a set of simulated agents. Its methods are safe for
// concurrent use.
type Cluster struct {
	cfg    Config
	log    *slog.Logger
	http   *http.Client
	owned  bool        // http was made here: its idle connections are closed by Close
	tls    *tls.Config // the CA's (CACert), without a certificate; nil: none
	agents []*agent

	cancel context.CancelFunc
	wg     sync.WaitGroup

	launched, finished, killed, reports, reportCalls, retries, registrations atomic.Int64
}

// Start joins (when Config.JoinToken is set) and registers cfg.Agents
// agents, then runs them until Close; ctx bounds the start only. It
// returns once every agent is registered (its resources are offered), or
// an error (invalid config, a join refused, or ctx ending before every
// agent registered; registrations are retried until then, as the real
// agent's); then nothing is left running.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	switch {
	case cfg.KernelURL == "":
		return nil, errors.New("simagent: config: KernelURL is required")
	case cfg.Agents <= 0:
		return nil, fmt.Errorf("simagent: config: Agents must be > 0, got %d", cfg.Agents)
	case cfg.AgentTokens != nil && len(cfg.AgentTokens) != cfg.Agents:
		return nil, fmt.Errorf("simagent: config: AgentTokens: want %d tokens (one per agent), got %d", cfg.Agents, len(cfg.AgentTokens))
	case cfg.AgentTokens == nil && cfg.JoinToken == "":
		return nil, errors.New("simagent: config: JoinToken or AgentTokens is required")
	case cfg.ReportWorkers < 0:
		return nil, fmt.Errorf("simagent: config: ReportWorkers must not be negative, got %d", cfg.ReportWorkers)
	}
	cl, err := transport.ParseCluster(cfg.KernelURL)
	if err != nil {
		return nil, fmt.Errorf("simagent: config: KernelURL: %w", err)
	}
	if cfg.Resources == nil {
		cfg.Resources = &pb.Resources{Cpus: 16, MemBytes: 64 << 30, DiskBytes: 100 << 30}
	}
	if cfg.Short == nil {
		cfg.Short = ShortTrue
	}
	cfg.Hostname = cmp.Or(cfg.Hostname, "sim")
	cfg.ReportWorkers = cmp.Or(cfg.ReportWorkers, DefaultReportWorkers)
	c := &Cluster{cfg: cfg, log: cfg.Logger, http: cfg.HTTPClient}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if len(cfg.CACert) > 0 {
		if c.tls, err = transport.TLSConfig(cfg.CACert); err != nil {
			return nil, fmt.Errorf("simagent: CACert: %w", err)
		}
	}
	if c.http == nil {
		c.http, c.owned = transport.H2CClientTLS(c.tls), true
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	for i := range cfg.Agents {
		labels := maps.Clone(cfg.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		labels["simagent"] = strconv.Itoa(i)
		c.agents = append(c.agents, &agent{
			c: c, hostname: cfg.Hostname + "-" + strconv.Itoa(i), labels: labels,
			tasks: map[string]*task{}, ended: newRecentSet(8192),
			ctx: runCtx,
		})
		c.agents[i].reports = newReportQueue(c.agents[i])
	}
	// Join and register concurrently, joinWorkers at a time.
	sem := make(chan struct{}, joinWorkers)
	errs := make([]error, len(c.agents))
	revs := make([]int64, len(c.agents))
	var wg sync.WaitGroup
	for i, a := range c.agents {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var key *ecdsa.PrivateKey
			var csr, cert []byte
			if c.tls != nil {
				if key, errs[i] = pki.NewKey(); errs[i] != nil {
					return
				}
				if csr, errs[i] = pki.CreateCSR(key, a.hostname); errs[i] != nil {
					return
				}
			}
			tok := cfg.JoinToken
			if cfg.AgentTokens != nil {
				tok = cfg.AgentTokens[i]
				if c.tls != nil {
					cert, errs[i] = c.certRenew(ctx, tok, csr)
				}
			} else {
				tok, cert, errs[i] = c.join(ctx, a.hostname, csr)
			}
			if errs[i] != nil {
				return
			}
			hc := c.http
			if c.tls != nil {
				// The agent's own connection, presenting its certificate.
				kp, err := tls.X509KeyPair(cert, pki.EncodeKey(key))
				if err != nil {
					errs[i] = fmt.Errorf("agent %s: certificate: %w", a.hostname, err)
					return
				}
				cfg := c.tls.Clone()
				cfg.Certificates = []tls.Certificate{kp}
				// Its own session cache: a session resumed from the join's
				// connection would carry no certificate.
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
				a.http = transport.H2CClientTLS(cfg)
				hc = a.http
			}
			a.client = syscallsv1connect.NewKernelClient(hc, cl.URL(), connect.WithInterceptors(kclient.Bearer(tok)))
			revs[i], errs[i] = a.register(ctx)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		cancel()
		c.closeIdle()
		return nil, fmt.Errorf("simagent: start: %w", err)
	}
	for i, a := range c.agents {
		c.wg.Go(func() { a.heartbeatLoop(runCtx, i) })
		c.wg.Go(func() { a.watchLoop(runCtx, revs[i]) })
	}
	return c, nil
}

// join exchanges the join token for an agent token of hostname's own
// and, with csr, a certificate (PEM) bound to it.
func (c *Cluster) join(ctx context.Context, hostname string, csr []byte) (token string, cert []byte, err error) {
	cl, err := transport.ParseCluster(c.cfg.KernelURL)
	if err != nil {
		return "", nil, err
	}
	k := syscallsv1connect.NewKernelClient(c.http, cl.URL(), connect.WithInterceptors(kclient.Bearer(c.cfg.JoinToken)))
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	res, err := k.AgentJoin(cctx, connect.NewRequest(&pb.AgentJoinRequest{Hostname: hostname, Csr: csr}))
	if err != nil {
		return "", nil, fmt.Errorf("agent join %s: %w", hostname, err)
	}
	return res.Msg.GetToken(), res.Msg.GetCertificate(), nil
}

// certRenew asks the kernel for a certificate of token's agent for csr.
func (c *Cluster) certRenew(ctx context.Context, token string, csr []byte) ([]byte, error) {
	cl, err := transport.ParseCluster(c.cfg.KernelURL)
	if err != nil {
		return nil, err
	}
	k := syscallsv1connect.NewKernelClient(c.http, cl.URL(), connect.WithInterceptors(kclient.Bearer(token)))
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	res, err := k.CertRenew(cctx, connect.NewRequest(&pb.CertRenewRequest{Csr: csr}))
	if err != nil {
		return nil, fmt.Errorf("cert renew: %w", err)
	}
	return res.Msg.GetCertificate(), nil
}

// AgentIDs returns the ids the kernel gave the agents, in index order.
func (c *Cluster) AgentIDs() []string {
	ids := make([]string, len(c.agents))
	for i, a := range c.agents {
		ids[i] = a.ID()
	}
	return ids
}

// Stats returns the counters so far.
func (c *Cluster) Stats() Stats {
	return Stats{
		Launched: c.launched.Load(), Finished: c.finished.Load(), Killed: c.killed.Load(),
		Reports: c.reports.Load(), ReportCalls: c.reportCalls.Load(), ReportRetries: c.retries.Load(), Registrations: c.registrations.Load(),
	}
}

// Close stops every agent and waits for their goroutines to end. The
// kernel is not told: it marks the agents lost after its heartbeat
// timeout, as it would crashed nodes. Close is idempotent.
func (c *Cluster) Close() {
	c.cancel()
	c.wg.Wait()
	c.closeIdle()
}

func (c *Cluster) closeIdle() {
	if c.owned {
		c.http.CloseIdleConnections()
	}
	for _, a := range c.agents {
		if a.http != nil {
			a.http.CloseIdleConnections()
		}
	}
}

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// backoff is an exponential delay from 100ms to 5s, as the real agent's.
type backoff struct{ d time.Duration }

func (b *backoff) next() time.Duration {
	b.d = min(max(2*b.d, 100*time.Millisecond), 5*time.Second)
	return b.d
}
