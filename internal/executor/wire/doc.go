// Package wire is the protocol between the exec driver and its supervisor
// process: newline-delimited JSON messages over the unix socket
// <StateDir>/supervisor.sock, and the layout of the state dir (socket, lock,
// exit records) both sides agree on.
//
// A driver sends Requests, each with a request id unique on its
// connection; the supervisor answers each with a Reply carrying the same
// id, and pushes exit events (Reply with Event "exit" and id 0) to every
// connection. Every decoder validates what it decodes: the supervisor
// trusts nothing a client sends.
//
// It is not a transport: it does no I/O beyond the state dir path names.
package wire
