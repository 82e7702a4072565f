// Package dinit is the distributed init of dcos (frameworks/init): a
// framework, built only on the public sdk/framework, that keeps services
// running — what runs equals what the specs ask.
//
// It is split like a compiler: a pure core and I/O at the edges.
//
//   - spec.go parses and validates service specs (YAML or JSON, unknown
//     fields refused, errors naming the field).
//   - constraints.go turns UNIQUE / MAX_PER / GROUP_BY into per-instance
//     kernel constraints from where the other instances run.
//   - backoff.go is the restart backoff schedule (Marathon's).
//   - plan.go is the deployment planner: which instances to start and kill
//     next under the upgrade strategy.
//   - decide.go is one reconcile decision on a hand-built or live view.
//   - state.go is the layout of the init's framework state (specs, history,
//     deployments, status) shared with dcosctl svc.
//   - controller.go applies decisions through a small Kernel interface that
//     a fenced *framework.Client satisfies; feed.go maps the cache's events
//     to services for the SDK's work queue.
//   - run.go is one replica: cache, election, and while leading the queue.
//
// It is not a scheduler: placement is the kernel's. It never imports
// kernel/, agent/ or internal/ (a test checks the import graph); the
// directory is frameworks/init but the package is dinit because Go cannot
// import a package named init. See docs/init.md.
package dinit
