package fake

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// firstPort is the first host port the net driver picks for a port of 0.
const firstPort = 20000

// netDriver is an in-memory net driver of host mode only: Setup records the
// container and picks host ports of 0 from firstPort up; bridge mode is not
// supported. Statuses carry the plugin's state directory and pid in Env
// (AttrStateDir, AttrPID). Its state dies with the process: Recover brings
// it back.
type netDriver struct {
	stateDir string

	mu         sync.Mutex
	containers map[string]contract.NetworkStatus
	nextPort   uint16
}

var _ contract.NetDriver = (*netDriver)(nil)

func newNetDriver(stateDir string) *netDriver {
	return &netDriver{stateDir: stateDir, containers: map[string]contract.NetworkStatus{}, nextPort: firstPort}
}

func (n *netDriver) Setup(_ context.Context, req contract.NetworkRequest) (*contract.NetworkStatus, error) {
	if req.Mode != contract.NetworkModeHost {
		return nil, fmt.Errorf("setup %s: mode %q: %w", req.ContainerID, req.Mode, contract.ErrNotSupported)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.containers[req.ContainerID]; ok {
		return nil, fmt.Errorf("setup %s: already set up: %w", req.ContainerID, contract.ErrConflict)
	}
	st := contract.NetworkStatus{
		ContainerID: req.ContainerID, Mode: req.Mode, Ports: slices.Clone(req.Ports),
		Env: map[string]string{AttrStateDir: n.stateDir, AttrPID: strconv.Itoa(os.Getpid())},
	}
	for i := range st.Ports {
		if st.Ports[i].HostPort == 0 {
			st.Ports[i].HostPort = n.nextPort
			n.nextPort++
		}
		st.Env[contract.PortEnv(st.Ports[i].Name)] = strconv.Itoa(int(st.Ports[i].HostPort))
	}
	n.containers[req.ContainerID] = st
	return &st, nil
}

func (n *netDriver) Teardown(_ context.Context, id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.containers, id)
	return nil
}

func (n *netDriver) Status(_ context.Context, id string) (*contract.NetworkStatus, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	st, ok := n.containers[id]
	if !ok {
		return nil, fmt.Errorf("container %q: %w", id, contract.ErrTaskNotFound)
	}
	return &st, nil
}

func (n *netDriver) Recover(_ context.Context, containers []contract.NetworkStatus) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, st := range containers {
		if _, ok := n.containers[st.ContainerID]; !ok {
			n.containers[st.ContainerID] = st
		}
	}
	return nil
}

func (n *netDriver) ConfigureNode(context.Context, contract.NodeConfig) error { return nil }

func (n *netDriver) GC(_ context.Context, live []string) ([]string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var removed []string
	for id := range n.containers {
		if !slices.Contains(live, id) {
			delete(n.containers, id)
			removed = append(removed, id)
		}
	}
	slices.Sort(removed)
	return removed, nil
}

// RemoveNode has nothing of the node to remove; it refuses while it holds
// any container, so that a test sees its answer cross the wire.
func (n *netDriver) RemoveNode(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.containers) > 0 {
		return fmt.Errorf("remove node: %d containers: %w", len(n.containers), contract.ErrConflict)
	}
	return nil
}
