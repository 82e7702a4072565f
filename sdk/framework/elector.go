package framework

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// ElectionConfig configures an Elector.
type ElectionConfig struct {
	// Name of the election among the caller's replicas ("" is "default").
	Name string
	// Candidate identifies this replica (default hostname-pid-random).
	Candidate string
	// TTL of the leadership lease (default 10s): a leader that cannot
	// renew within it loses leadership.
	TTL time.Duration
	// Address this replica advertises to the others (optional).
	Address string
}

// Elector takes part in a leader election among a framework's replicas
// through the kernel's Campaign, Resign and Leader syscalls.
type Elector struct {
	c   *Client
	cfg ElectionConfig
}

// NewElector returns an elector for cfg, filled with its defaults.
func (c *Client) NewElector(cfg ElectionConfig) *Elector {
	if cfg.Candidate == "" {
		h, _ := os.Hostname()
		h = strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
				return r
			}
			return '-'
		}, h)
		if len(h) > 64 {
			h = h[:64]
		}
		if h == "" {
			h = "host"
		}
		cfg.Candidate = fmt.Sprintf("%s-%d-%08x", h, os.Getpid(), rand.Uint32())
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 10 * time.Second
	}
	return &Elector{c: c, cfg: cfg}
}

// Candidate returns the name this elector campaigns under.
func (e *Elector) Candidate() string { return e.cfg.Candidate }

// Run campaigns until ctx ends. Each time it wins an epoch it calls
// lead(leadCtx, fence) once, in a goroutine of its own, and renews the
// lease every TTL/3; leadCtx is cancelled when leadership is lost (a
// renewal refused, or none succeeded before the lease would end) or ctx
// ends. Run waits for lead to return before it campaigns again, so two
// calls of lead never overlap in one process; the kernel's fencing keeps
// replicas in other processes from acting on a superseded epoch (use
// c.Fenced(fence) for writes). If lead returns while still leading, Run
// resigns and campaigns again after TTL/3. Losers campaign again every
// TTL/3. On return Run resigns what it holds. It returns nil when ctx
// ends, or the kernel's error for a campaign it refuses outright
// (InvalidArgument, PermissionDenied, Unimplemented, ...).
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context, fence *pb.Fence)) error {
	every := e.cfg.TTL / 3
	for {
		resp, err := e.campaign(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if ok, _, _ := retryable(err); !ok {
				return fmt.Errorf("elector: campaign: %w", err)
			}
		} else if resp.GetElected() {
			if err := e.hold(ctx, resp, lead); err != nil {
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
		}
		if !sleep(ctx, every) {
			return nil
		}
	}
}

func (e *Elector) campaign(ctx context.Context) (*pb.CampaignResponse, error) {
	return e.c.Campaign(ctx, &pb.CampaignRequest{Election: e.cfg.Name, Candidate: e.cfg.Candidate,
		Ttl: durationpb.New(e.cfg.TTL), Address: e.cfg.Address})
}

// hold runs lead for the epoch resp won and renews it until it is lost,
// lead returns or ctx ends; then it resigns.
func (e *Elector) hold(ctx context.Context, resp *pb.CampaignResponse, lead func(context.Context, *pb.Fence)) error {
	epoch := resp.GetLeader().GetEpoch()
	fence := &pb.Fence{Election: e.cfg.Name, Epoch: epoch}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		lead(lctx, fence)
	}()
	log := e.c.shared.log.With("election", e.name(), "candidate", e.cfg.Candidate, "epoch", epoch)
	log.Info("framework: elected")
	// The lease runs from before the call that won or renewed it.
	deadline := time.Now().Add(e.cfg.TTL)
	tick := time.NewTicker(e.cfg.TTL / 3)
	defer tick.Stop()
	lost := func(why string, err error) {
		log.Warn("framework: leadership lost", "why", why, "err", err)
		cancel()
		<-done
	}
	for {
		select {
		case <-ctx.Done():
			cancel()
			<-done
			e.resign(epoch)
			return nil
		case <-done:
			e.resign(epoch)
			return nil
		case <-tick.C:
		}
		start := time.Now()
		rctx, rcancel := context.WithDeadline(ctx, deadline)
		r, err := e.campaign(rctx)
		rcancel()
		switch {
		case ctx.Err() != nil:
			continue // handled above
		case err == nil && (!r.GetElected() || r.GetLeader().GetEpoch() != epoch):
			lost("renewal refused", nil)
			return nil
		case err == nil:
			deadline = start.Add(e.cfg.TTL)
		case time.Now().After(deadline):
			lost("could not renew before the lease ended", err)
			return nil
		default:
			if ok, _, _ := retryable(err); !ok && Code(err) != connect.CodeDeadlineExceeded {
				lost("renewal failed", err)
				return nil
			}
		}
	}
}

func (e *Elector) resign(epoch int64) {
	ctx, cancel := context.WithTimeout(context.Background(), e.c.shared.timeout)
	defer cancel()
	if _, err := e.c.Resign(ctx, &pb.ResignRequest{Election: e.cfg.Name, Candidate: e.cfg.Candidate, Epoch: epoch}); err != nil {
		e.c.shared.log.Warn("framework: resign", "election", e.name(), "epoch", epoch, "err", err)
	}
}

func (e *Elector) name() string {
	if e.cfg.Name == "" {
		return "default"
	}
	return e.cfg.Name
}

// Leader returns the election's current state: its holder (empty when
// nobody leads), epoch and the holder's advertised address.
func (e *Elector) Leader(ctx context.Context) (*pb.Leadership, error) {
	r, err := e.c.Leader(ctx, &pb.LeaderRequest{Election: e.cfg.Name})
	if err != nil {
		return nil, err
	}
	return r.GetLeader(), nil
}
