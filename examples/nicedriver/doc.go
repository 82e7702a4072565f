// Command nicedriver is an example of a third-party task driver, "nice",
// built only on github.com/dcos-kernel/dcos/sdk/plugin and the standard
// library: copy it to start your own. It runs a task's command at a fixed
// nice level, with extra environment variables, both from the task's driver
// config:
//
//	{"nice": 10, "env": {"K": "V"}}
//
// nice is 0..19 (default 10). The driver embeds the SDK's Executor, which
// does everything the built-in exec driver does (a supervisor that outlives
// the plugin, process groups, cgroups, exit records, stats, signals,
// recovery after a restart); the driver only rewrites the task's command to
// `nice -n N -- COMMAND ARGS...` in StartTask and states its Capabilities
// and Fingerprint (main.go), and parses its config (config.go).
//
// Install it into an agent's plugin directory as dcos-driver-nice with its
// checksum in SHA256SUMS; see README.md. Linux only.
package main
