package dinit

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/dcos-kernel/dcos/sdk/framework"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Config configures one replica of the init.
type Config struct {
	// Client is the init principal's SDK client (required).
	Client *framework.Client
	// Election among the replicas ("" is "default"), the replica's
	// Candidate name (default hostname-pid-random) and its lease TTL
	// (default 10s).
	Election  string
	Candidate string
	TTL       time.Duration
	// Workers reconciling services in parallel (default 4).
	Workers int
	Logger  *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// PassInterval is the least time between the starts of two passes over
// one service: a pass costs O(its instances), and a service of 1,000
// instances starting sends thousands of events, each of which would
// otherwise cost a pass. An event waits at most this long.
const PassInterval = 20 * time.Millisecond

// Run runs one replica until ctx ends: it keeps a cache of the init's
// allocations and tasks, campaigns, and while it leads reconciles every
// service with writes fenced by its epoch. Replicas that do not lead only
// keep their cache warm, so a failover starts from a synced view. It
// returns nil when ctx ends, or the error that stopped the cache or the
// election.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	workers := cfg.Workers
	if workers <= 0 {
		workers = 4
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cache := framework.NewCache(cfg.Client)
	cacheErr := make(chan error, 1)
	go func() {
		err := cache.Run(cctx)
		cancel() // no leading on a dead cache
		cacheErr <- err
	}()
	if err := cache.WaitSynced(cctx); err != nil {
		cancel()
		if cerr := <-cacheErr; cerr != nil && ctx.Err() == nil {
			return fmt.Errorf("init: cache: %w", cerr)
		}
		return nil
	}
	el := cfg.Client.NewElector(framework.ElectionConfig{Name: cfg.Election, Candidate: cfg.Candidate, TTL: cfg.TTL})
	err := el.Run(cctx, func(lctx context.Context, fence *pb.Fence) {
		log.Info("init: leading", "epoch", fence.GetEpoch())
		ctl := &Controller{Kernel: cfg.Client.Fenced(fence), Cache: cache, Logger: log, Now: cfg.Now}
		q := framework.NewQueue(framework.QueueConfig{MinInterval: PassInterval})
		for lctx.Err() == nil {
			stop, err := ctl.Feed(lctx, cache, q)
			if err != nil {
				log.Warn("init: list services", "err", err)
				select {
				case <-lctx.Done():
				case <-time.After(time.Second):
				}
				continue
			}
			_ = q.Run(lctx, workers, ctl)
			stop()
		}
		log.Info("init: no longer leading", "epoch", fence.GetEpoch())
	})
	cancel()
	if cerr := <-cacheErr; err == nil && cerr != nil && ctx.Err() == nil {
		err = fmt.Errorf("init: cache: %w", cerr)
	}
	return err
}
