// Package host is the agent's plugin host: it finds the driver and isolator
// plugins of a node, refuses those an operator has not registered, starts
// them through go-plugin, restarts them when they crash, and hands the agent
// stable clients that survive those restarts.
//
// A plugin is an executable named dcos-driver-<name> or
// dcos-isolator-<name> in the plugin directory (Config.Dir), or a built-in:
// the dcosd binary itself re-executed with a sub-command (Config.Builtins).
// A discovered plugin runs only if its sha256 is in the catalog, a file in
// sha256sum format; go-plugin checks the checksum again at every start
// (SecureConfig), so a binary altered after it was catalogued is refused.
//
// It is not the contract (plugins/contract), nor what a vendor imports
// (sdk/plugin), nor the agent's use of drivers and isolators: it does not
// checkpoint task handles or recover tasks, it only tells the agent, through
// Config.OnRestart, when a plugin came back so that the agent can.
package host
