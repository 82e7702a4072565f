// Command nicedriver is an example third-party task driver, "nice", built
// only on github.com/dcos-kernel/dcos/sdk/plugin and the standard library:
// copy it to start your own. It embeds the SDK's Executor (the built-in exec
// driver's engine: supervisor, cgroups, exit records, recovery) and runs each
// task's command as `nice -n N -- COMMAND ARGS...`, N and extra environment
// variables from the task's driver config: {"nice": 10, "env": {"K": "V"}}.
// See README.md. Linux only.
package main
