// Package host is the agent's plugin host: it finds the driver and isolator
// plugins of a node, refuses those an operator has not registered, starts
// them through go-plugin, restarts them when they crash, and hands the agent
// stable clients that survive those restarts.
//
// A plugin is an executable named dcos-driver-<name> or
// dcos-isolator-<name> in the plugin directory (Config.Dir), or a built-in:
// the dcosd binary itself re-executed with a sub-command (Config.Builtins).
// Built-ins of one Group share one process, which the host supervises as one
// (see Builtin); every other plugin is a process of its own.
// A discovered plugin runs only if its sha256 is in the catalog, a file in
// sha256sum format; go-plugin checks the checksum again at every start
// (SecureConfig), so a binary altered after it was catalogued is refused.
//
// A plugin that exits is restarted with exponential backoff; one that is
// refused at a start (its checksum no longer matches, or it speaks no
// protocol version the host speaks) is not, since it would fail forever.
// Driver and Isolator return proxies that stay valid across restarts.
//
// Logs: go-plugin forwards a plugin's stderr. JSON lines of an hclog logger
// keep their level, lines starting with [TRACE], [DEBUG], [INFO], [WARN] or
// [ERROR] take that level, "panic:" lines and what follows are errors, other
// lines are debug. What a plugin writes to os.Stdout or os.Stderr after
// go-plugin's Serve took them over is logged at info with stream=stdout or
// stream=stderr. Every line carries plugin=<kind>/<name> (a Group's process,
// the <kind>/<name> of each member joined by ",").
//
// go-plugin sees a plugin's exit when its stdout and stderr close: a plugin
// must not let the tasks it starts inherit them, or its crash goes unseen
// while a task runs.
//
// It is not the contract (plugins/contract), nor what a vendor imports
// (sdk/plugin), nor the agent's use of drivers and isolators: it does not
// checkpoint task handles or recover tasks, it only tells the agent, through
// Config.OnRestart, when a plugin came back so that the agent can.
package host
