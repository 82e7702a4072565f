package agent

import "context"

// networkStage gives a task that asks for network "bridge" its own
// network namespace from the agent's net driver, and a host-network task
// the environment of its host ports (network.go). Teardown removes the
// namespace, if the task asked for one.
type networkStage struct{}

func (networkStage) name() string { return "network" }

func (networkStage) setup(_ context.Context, r *taskRun) error {
	if r.tk.network != netBridge {
		hostPortEnv(r.tk, r.cfg)
		return nil
	}
	caps, err := r.capabilities()
	if err != nil {
		return err
	}
	return r.a.setupNetwork(r.tk, caps, r.cfg)
}

func (networkStage) teardown(ctx context.Context, r *taskRun) error {
	r.a.teardownNetwork(ctx, r.tk)
	return nil
}
