// Package netnsutil is the one door to network namespaces and the small
// netlink helpers around them: entering a namespace to run a function in
// it (InNetns), removing a bind-mounted namespace (RemoveNetns) and
// retrying interrupted netlink dumps (Dump). The bridge driver, the agent's
// health probes and the multi-host test harness share it.
//
// It is not a netlink or namespace library: creating namespaces, links and
// routes stays with the bridge driver. Outside Linux InNetns with a path
// returns ErrNotSupported.
package netnsutil

import "errors"

// ErrNotSupported is returned where network namespaces do not exist.
var ErrNotSupported = errors.New("netnsutil: network namespaces not supported on this platform")
