// Package daemon is dcosd's command line: it wires the store, kernel, API
// server and agent into the `kernel`, `agent` and `dev` subcommands. It
// holds no logic of its own beyond flags, files and lifecycles.
package daemon
