// Package ctl is dcosctl: the command line that talks to a dcos kernel.
// Every command is a syscall client; `syscall` makes raw calls to any
// method of the ABI, found through the protobuf descriptor at run time, and
// the other commands (agents, alloc, launch, run, ps, allocs, watch, logs,
// exec, revoke, policy ls/load/test/use/rollback, image ls/rm) are friendly
// wrappers with tables for people and -o json for scripts.
//
// It is not a library: its one exported name is Run, which cmd/dcosctl
// calls. It holds no cluster state and makes no decisions the kernel makes
// (validation, placement, authorisation); it only shapes requests and
// prints answers.
package ctl
