// Package jobs is the batch framework of dcos (frameworks/jobs): a
// framework, built only on the public sdk/framework, that runs work to
// completion — one-off or on a cron schedule — with retries, backoff, an
// active deadline, gangs, and a history of runs (like Chronos/Metronome,
// Nomad batch jobs, Kubernetes Job/CronJob).
//
// It is split like the init: a pure core and I/O at the edges.
//
//   - spec.go parses and validates job specs (YAML or JSON, unknown
//     fields refused, errors naming the field).
//   - cron.go computes a schedule's fire times in a time zone (DST
//     included) and which fire is due; the clock is a parameter.
//   - state.go is the layout of the framework state (specs, runs) shared
//     with dcosctl job.
//   - decide.go is one pure decision about one job: which runs to start,
//     which tasks to allocate, launch, revoke, and how runs end.
//   - controller.go applies decisions through a small Kernel interface
//     that a fenced *framework.Client satisfies.
//   - replica.go is one replica (Serve): cache, election, and while
//     leading the queue.
//   - mpi.go is the MPI job kind: the mpi block of a spec, and the
//     decision that runs a gang of rank hosts, then a launcher (mpirun)
//     given their task ids, a kernel URL and the framework's token.
//   - operator.go is what an operator's tool does to the state (apply a
//     spec, record a manual run, remove a job): dcosctl job uses it.
//   - tz.go embeds the IANA time zone database.
//
// It is not a scheduler: placement is the kernel's. It never imports
// kernel/, agent/ or internal/ (a test checks the import graph). See
// docs/jobs.md.
package jobs
