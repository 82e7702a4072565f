package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/dcos-kernel/dcos/sdk/framework"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Config configures one replica of the jobs framework.
type Config struct {
	// Client is the jobs principal's SDK client (required).
	Client *framework.Client
	// Election among the replicas ("" is "jobs"), the replica's Candidate
	// name (default hostname-pid-random) and its lease TTL (default 10s).
	Election  string
	Candidate string
	TTL       time.Duration
	// Workers reconciling jobs in parallel (default 4).
	Workers int
	Logger  *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// KernelURL and Token are what MPI launchers get as DCOS_KERNEL and
	// DCOS_TOKEN (Controller.KernelURL and Token): a kernel URL tasks can
	// reach (they use host networking) and this replica's own token.
	KernelURL string
	Token     string
	// Resync is how often every job is looked at even without an event
	// (default 30s): a cron fire is also requeued at its time, this only
	// bounds the effect of a lost wake-up.
	Resync time.Duration
}

// PassInterval is the least time between the starts of two passes over
// one job.
const PassInterval = 20 * time.Millisecond

// Serve runs one replica until ctx ends: it keeps a cache of the jobs
// principal's allocations and tasks, campaigns, and while it leads
// reconciles every job with writes fenced by its epoch. It returns nil
// when ctx ends, or the error that stopped the cache or the election.
func Serve(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	workers := cfg.Workers
	if workers <= 0 {
		workers = 4
	}
	election := cfg.Election
	if election == "" {
		election = "jobs"
	}
	resync := cfg.Resync
	if resync <= 0 {
		resync = 30 * time.Second
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cache := framework.NewCache(cfg.Client)
	cacheErr := make(chan error, 1)
	go func() {
		err := cache.Run(cctx)
		cancel()
		cacheErr <- err
	}()
	if err := cache.WaitSynced(cctx); err != nil {
		cancel()
		if cerr := <-cacheErr; cerr != nil && ctx.Err() == nil {
			return fmt.Errorf("jobs: cache: %w", cerr)
		}
		return nil
	}
	el := cfg.Client.NewElector(framework.ElectionConfig{Name: election, Candidate: cfg.Candidate, TTL: cfg.TTL})
	err := el.Run(cctx, func(lctx context.Context, fence *pb.Fence) {
		log.Info("jobs: leading", "epoch", fence.GetEpoch())
		ctl := &Controller{Kernel: cfg.Client.Fenced(fence), Cache: cache, Logger: log, Now: cfg.Now,
			KernelURL: cfg.KernelURL, Token: cfg.Token}
		q := framework.NewQueue(framework.QueueConfig{MinInterval: PassInterval})
		all := func() {
			names, err := ctl.Jobs(lctx)
			if err != nil {
				log.Warn("jobs: list jobs", "err", err)
			}
			for _, n := range names {
				q.Add(n)
			}
		}
		stop := cache.Subscribe(func(ev *pb.Event) {
			if ev.GetKind() == pb.EventKind_EVENT_KIND_UNSPECIFIED && ev.GetReason() == "resync" {
				all()
				return
			}
			for _, k := range KeysOf(ev) {
				q.Add(k)
			}
		})
		defer stop()
		all()
		go func() {
			t := time.NewTicker(resync)
			defer t.Stop()
			for {
				select {
				case <-lctx.Done():
					return
				case <-t.C:
					all()
				}
			}
		}()
		_ = q.Run(lctx, workers, ctl)
		log.Info("jobs: no longer leading", "epoch", fence.GetEpoch())
	})
	cancel()
	if cerr := <-cacheErr; err == nil && cerr != nil && ctx.Err() == nil {
		err = fmt.Errorf("jobs: cache: %w", cerr)
	}
	return err
}
