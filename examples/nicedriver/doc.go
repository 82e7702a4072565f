// Command nicedriver is an example of a third-party task driver, "nice",
// built only on github.com/dcos-kernel/dcos/sdk/plugin and the standard
// library: copy it to start your own. It runs a task's command at a fixed
// nice level, with extra environment variables, both from the task's driver
// config:
//
//	{"nice": 10, "env": {"K": "V"}}
//
// nice is 0..19 (default 10). The driver starts each task through itself,
// re-executed as a launcher that sets its nice level and execs the command
// (launch.go). Each task runs in its own process group; StopTask escalates
// to SIGKILL after its timeout. It cannot reattach to tasks after a restart
// (Capabilities.RecoverTasks is false) and does not join cgroups itself (the
// agent's isolator places the task).
//
// Install it into an agent's plugin directory as dcos-driver-nice with its
// checksum in SHA256SUMS; see README.md. Linux only.
package main
