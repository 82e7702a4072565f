// Package plugin is what a vendor imports to write a dcos plugin: a task
// driver or an isolator that runs as its own process and talks to the agent
// over gRPC (hashicorp/go-plugin, with a versioned handshake and mutual TLS).
//
// A plugin's main implements Driver (or Isolator) and makes one call:
//
//	func main() { plugin.ServeDriver(&myDriver{}) }
//
// A driver that runs a task as a process (with nice, a timeout, a JVM
// launcher, or in a container's root filesystem) embeds an Executor, which
// does the work of the built-in exec driver: a supervisor that outlives the
// plugin, process groups, cgroups, exit records, stats, signals and
// recovery. See NewExecutor and examples/nicedriver.
//
// The interfaces, types and errors here are aliases of plugins/contract, so a
// vendor's types satisfy the agent's contracts exactly; a vendor imports
// nothing else of dcos. Package plugintest
// starts a plugin binary through the real handshake and returns a typed
// client, for a vendor's tests. See docs/plugins.md.
//
// It is not the plugin host: discovery, checksum catalogs and restarts belong
// to the agent.
package plugin
