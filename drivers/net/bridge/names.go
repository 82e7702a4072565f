//go:build linux

package bridge

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
)

// prefix starts the name of everything the driver creates on a node.
const prefix = "dcos"

// nsPrefix starts the file name of a container's namespace under
// StateDir/netns.
const nsPrefix = "dcos-"

// vethName returns the host-side veth name of container id on bridge br:
// "dcos" and 11 hex digits of a hash (15 bytes, the kernel's limit), so
// that two drivers on one host (two bridges) never collide.
func vethName(br, id string) string {
	h := sha256.Sum256([]byte(br + "\x00" + id))
	return prefix + hex.EncodeToString(h[:])[:11]
}

// nsFile returns the file name of id's namespace; nsID reverses it.
func nsFile(id string) string { return nsPrefix + url.PathEscape(id) }

func nsID(file string) (string, bool) {
	if !strings.HasPrefix(file, nsPrefix) {
		return "", false
	}
	id, err := url.PathUnescape(strings.TrimPrefix(file, nsPrefix))
	return id, err == nil && id != ""
}

func nsDir(stateDir string) string { return filepath.Join(stateDir, "netns") }

// mac returns a locally administered unicast MAC: 02:<kind>:<a's 4 bytes>.
func mac(kind byte, a netip.Addr) net.HardwareAddr {
	b := a.As4()
	return net.HardwareAddr{0x02, kind, b[0], b[1], b[2], b[3]}
}

// MAC kinds: a container's eth0 (Docker's 02:42), its host-side veth, the
// bridge (from the gateway) and a node's VXLAN device (from its subnet).
const (
	macContainer = 0x42
	macHostVeth  = 0x43
	macBridge    = 0xdb
	macVTEP      = 0xdc
)
