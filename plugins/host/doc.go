// Package host is the agent's plugin host: it finds the plugins of a node
// (task drivers, isolators, net drivers and storage drivers), refuses those
// an operator has not registered, starts them through go-plugin, restarts
// them when they crash, and hands the agent stable clients that survive
// those restarts.
//
// A plugin is an executable named dcos-<kind>-<name> in the plugin
// directory (Config.Dir), kind being driver, isolator, net or storage
// (dcos-driver-exec, dcos-isolator-cgroups, dcos-net-bridge,
// dcos-storage-local), or a built-in: the dcosd binary itself re-executed
// with a sub-command (Config.Builtins).
// Built-ins of one Group share one process, at most one member of each kind,
// which the host supervises as one (see Builtin); every other plugin is a
// process of its own.
// A discovered plugin runs only if its sha256 is in the catalog, a file in
// sha256sum format; go-plugin checks the checksum again at every start
// (SecureConfig), so a binary altered after it was catalogued is refused.
//
// A plugin that exits is restarted with exponential backoff; one that is
// refused at a start (its checksum no longer matches, or it speaks no
// protocol version the host speaks) is not, since it would fail forever.
// Driver, Isolator, Net and Storage return proxies that stay valid across
// restarts.
//
// Logs: go-plugin forwards a plugin's stderr. JSON lines of an hclog logger
// keep their level, lines starting with [TRACE], [DEBUG], [INFO], [WARN] or
// [ERROR] take that level, "panic:" lines and what follows are errors, other
// lines are debug; a start that fails quotes the last plain lines (a plugin
// that dies before its handshake says why there). What a plugin writes to
// os.Stdout or os.Stderr after go-plugin's Serve took them over is logged
// at info with stream=stdout or stream=stderr. Every line carries plugin=<kind>/<name> (a Group's process,
// the <kind>/<name> of each member joined by ",").
//
// go-plugin sees a plugin's exit when its stdout and stderr close: a plugin
// must not let the tasks it starts inherit them, or its crash goes unseen
// while a task runs.
//
// It is not the contract (plugins/contract), nor what a vendor imports
// (sdk/plugin), nor the agent's use of its plugins: it does not checkpoint
// task handles, network statuses or sandboxes, nor recover them, it only
// tells the agent, through Config.OnRestart, when a plugin came back so
// that the agent can.
package host
