package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/agent"
	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/metrics"
)

// metricsListenFlag is `dcosd agent --metrics-listen`. Off by default: a
// fixed default port would make a second agent on the host fail to start
// (the e2e tests run several), and a loopback one could not be scraped
// from the Prometheus host anyway, so an operator names the address.
// (dcosd dev needs none: its agent's metrics join the kernel's /metrics.)
var metricsListenFlag = &cli.StringFlag{
	Name:  "metrics-listen",
	Usage: "serve the agent's Prometheus metrics at http://ADDR/metrics (port 0: any free port; default off)",
}

// serveAgentMetrics serves a's metrics on addr until ctx ends; wait
// returns once the server stopped.
func serveAgentMetrics(ctx context.Context, addr string, a *agent.Agent, log *slog.Logger) (wait func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler(metrics.NewRegistry(metrics.NewAgentCollector(a.Metrics))))
	log.Info("agent metrics serving", "url", "http://"+ln.Addr().String()+"/metrics")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := api.Serve(ctx, ln, mux, log); err != nil {
			log.Error("agent metrics server stopped", "err", err)
		}
	}()
	return func() { <-done }, nil
}
