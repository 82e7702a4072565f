package plugin

import (
	"fmt"
	"os"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// The contracts a plugin implements. See plugins/contract for each method's
// contract (idempotence, errors).
type (
	Driver        = contract.Driver
	Isolator      = contract.Isolator
	NetDriver     = contract.NetDriver
	StorageDriver = contract.StorageDriver
)

// Types of the driver contract.
type (
	Capabilities = contract.Capabilities
	FSIsolation  = contract.FSIsolation
	Fingerprint  = contract.Fingerprint
	Health       = contract.Health
	Resources    = contract.Resources
	TaskConfig   = contract.TaskConfig
	// TaskIsolation is what a driver must do to confine a task (see
	// contract.TaskIsolation and docs/plugins.md, "Task isolation").
	TaskIsolation = contract.TaskIsolation
	TaskHandle    = contract.TaskHandle
	TaskState     = contract.TaskState
	ExitResult    = contract.ExitResult
	TaskStatus    = contract.TaskStatus
	TaskUsage     = contract.TaskUsage
)

// Types of the isolator contract.
type (
	LaunchInfo       = contract.LaunchInfo
	Limitation       = contract.Limitation
	LimitationReason = contract.LimitationReason
	ContainerState   = contract.ContainerState
)

// Types of the net driver contract.
type (
	NetworkMode    = contract.NetworkMode
	NetworkRequest = contract.NetworkRequest
	NetworkStatus  = contract.NetworkStatus
	PortMapping    = contract.PortMapping
	NodeConfig     = contract.NodeConfig
	Peer           = contract.Peer
)

// Types of the storage driver contract.
type (
	Sandbox       = contract.Sandbox
	Volume        = contract.Volume
	VolumeRequest = contract.VolumeRequest
	MountRequest  = contract.MountRequest
	Mount         = contract.Mount
)

// Values of the contracts' enumerations.
const (
	FSIsolationNone   = contract.FSIsolationNone
	FSIsolationChroot = contract.FSIsolationChroot
	FSIsolationImage  = contract.FSIsolationImage

	HealthUndetected = contract.HealthUndetected
	HealthUnhealthy  = contract.HealthUnhealthy
	HealthHealthy    = contract.HealthHealthy

	TaskStateUnknown = contract.TaskStateUnknown
	TaskStateRunning = contract.TaskStateRunning
	TaskStateExited  = contract.TaskStateExited

	LimitationUnknown = contract.LimitationUnknown
	LimitationOOM     = contract.LimitationOOM
	LimitationPIDs    = contract.LimitationPIDs
	LimitationDisk    = contract.LimitationDisk

	NetworkModeBridge = contract.NetworkModeBridge
	NetworkModeHost   = contract.NetworkModeHost
)

// TaskIPEnv is the environment variable a net driver sets to a task's
// address; PortEnv names the one it sets to a named port.
const TaskIPEnv = contract.TaskIPEnv

// PortEnv returns the environment variable that holds the port named name
// (DCOS_PORT_<NAME>).
func PortEnv(name string) string { return contract.PortEnv(name) }

// HandleVersion is the TaskHandle version a driver built against this SDK
// writes; ProtocolVersion the plugin protocol version it speaks.
const (
	HandleVersion   = contract.HandleVersion
	ProtocolVersion = contract.ProtocolVersion
)

// The contracts' errors. Return them wrapped (fmt.Errorf("...: %w", err));
// they cross the wire and match errors.Is on the agent.
var (
	ErrTaskNotFound  = contract.ErrTaskNotFound
	ErrNotSupported  = contract.ErrNotSupported
	ErrHandleVersion = contract.ErrHandleVersion
	ErrConflict      = contract.ErrConflict
	ErrExhausted     = contract.ErrExhausted
)

// ServeDriver serves impl as a task driver plugin and returns when the host
// stops the plugin. Call it from main; run by hand (not by a host), the
// binary prints a short explanation and exits with status 1. Started as an
// Executor's supervisor (see RunSupervisorIfAsked), it runs that instead
// and exits; a main that builds its driver before calling ServeDriver
// (impl is evaluated first) must call RunSupervisorIfAsked before that.
func ServeDriver(impl Driver) {
	RunSupervisorIfAsked()
	serve(contract.KindDriver, impl)
}

// ServeIsolator serves impl as an isolator plugin, as ServeDriver does.
func ServeIsolator(impl Isolator) { serve(contract.KindIsolator, impl) }

// ServeNet serves impl as a net driver plugin, as ServeDriver does.
func ServeNet(impl NetDriver) { serve(contract.KindNet, impl) }

// ServeStorage serves impl as a storage driver plugin, as ServeDriver does.
func ServeStorage(impl StorageDriver) { serve(contract.KindStorage, impl) }

func serve(kind string, impl any) {
	cfg, err := contract.ServeConfig(kind, impl)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	goplugin.Serve(cfg)
}
