//go:build linux

package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// nat keeps the node's NAT in one nftables table, "ip <bridge>", through
// the nft binary (there is no iptables binary on our nodes and no
// nftables library in go.mod):
//
//	map hostports { inet_proto . inet_service : ipv4_addr . inet_service }
//	prerouting, output (nat): fib daddr type local dnat ip to meta l4proto . th dport map @hostports
//	postrouting (nat): hairpin (a container reaching a host port of the
//	node's, DNATed back onto the bridge) and traffic from the subnet
//	leaving the cluster CIDR by another device than the bridge are
//	masqueraded.
//
// A container's host port mappings are elements of the map: Setup adds
// them, Teardown deletes them, GC deletes those of no live container.
// Without nft on the node, bridge-mode port mappings return
// ErrNotSupported.
type nat struct {
	nft   string // path of nft; "" if missing
	table string
	netns string // the node's namespace ("" = ours)
}

func newNAT(table, netns string) *nat {
	path, _ := exec.LookPath("nft")
	return &nat{nft: path, table: table, netns: netns}
}

var errNoNft = fmt.Errorf("host port mappings in bridge mode need the nft binary: %w", contract.ErrNotSupported)

// run feeds script to nft -f - in the node's namespace.
func (n *nat) run(script string, args ...string) ([]byte, error) {
	if n.nft == "" {
		return nil, errNoNft
	}
	var out []byte
	err := inNetns(n.netns, func() error {
		cmd := exec.Command(n.nft, args...)
		if script != "" {
			cmd.Stdin = strings.NewReader(script)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		var err error
		out, err = cmd.Output()
		if err != nil {
			return fmt.Errorf("nft %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
		}
		return nil
	})
	return out, err
}

// ensure makes the table, map and chains exist and replaces the chains'
// rules, in one nft transaction; the map's elements are kept.
func (n *nat) ensure(bridge string, subnet, cluster netip.Prefix) error {
	if n.nft == "" {
		return nil // no NAT on this node: Setup refuses port mappings
	}
	if !cluster.IsValid() {
		cluster = subnet
	}
	t := "ip " + n.table
	script := fmt.Sprintf(`add table %[1]s
add map %[1]s hostports { type inet_proto . inet_service : ipv4_addr . inet_service; }
add chain %[1]s prerouting { type nat hook prerouting priority dstnat; policy accept; }
add chain %[1]s output { type nat hook output priority -100; policy accept; }
add chain %[1]s postrouting { type nat hook postrouting priority srcnat; policy accept; }
flush chain %[1]s prerouting
flush chain %[1]s output
flush chain %[1]s postrouting
add rule %[1]s prerouting fib daddr type local dnat ip to meta l4proto . th dport map @hostports
add rule %[1]s output fib daddr type local dnat ip to meta l4proto . th dport map @hostports
add rule %[1]s postrouting ct status dnat ip saddr %[2]s ip daddr %[2]s masquerade
add rule %[1]s postrouting ip saddr %[2]s ip daddr != %[3]s oifname != %[4]q masquerade
`, t, subnet, cluster, bridge)
	_, err := n.run(script, "-f", "-")
	return err
}

// remove deletes the table; a missing table is not an error.
func (n *nat) remove() error {
	if n.nft == "" {
		return nil
	}
	if _, err := n.run("", "list", "table", "ip", n.table); err != nil {
		return nil
	}
	_, err := n.run("", "delete", "table", "ip", n.table)
	return err
}

// natTarget is where a host port leads.
type natTarget struct {
	ip   netip.Addr
	port uint16
}

// add maps ports to ip, in one transaction. The caller holds the ports, so
// an entry of the same port leading elsewhere is stale (a crash before GC)
// and replaced.
func (n *nat) add(ports []contract.PortMapping, ip netip.Addr) error {
	if len(ports) == 0 {
		return nil
	}
	have, err := n.list()
	if err != nil {
		return err
	}
	var script strings.Builder
	var elems []string
	for _, p := range ports {
		k, t := portKey{p.Protocol, p.HostPort}, natTarget{ip, containerPort(p)}
		if old, ok := have[k]; ok && old != t {
			fmt.Fprintf(&script, "delete element ip %s hostports { %s . %d }\n", n.table, k.proto, k.port)
		}
		elems = append(elems, fmt.Sprintf("%s . %d : %s . %d", k.proto, k.port, t.ip, t.port))
	}
	fmt.Fprintf(&script, "add element ip %s hostports { %s }\n", n.table, strings.Join(elems, ", "))
	_, err = n.run(script.String(), "-f", "-")
	return err
}

func (n *nat) del(keys []portKey) error {
	if len(keys) == 0 || n.nft == "" {
		return nil
	}
	var elems []string
	for _, k := range keys {
		elems = append(elems, fmt.Sprintf("%s . %d", k.proto, k.port))
	}
	_, err := n.run(fmt.Sprintf("delete element ip %s hostports { %s }\n", n.table, strings.Join(elems, ", ")), "-f", "-")
	return err
}

// list returns the map's elements.
func (n *nat) list() (map[portKey]natTarget, error) {
	out, err := n.run("", "-j", "list", "map", "ip", n.table, "hostports")
	if err != nil {
		return nil, err
	}
	var doc struct {
		Nftables []struct {
			Map *struct {
				Elem [][2]struct {
					Concat []json.RawMessage `json:"concat"`
				} `json:"elem"`
			} `json:"map"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("nft list map: %w", err)
	}
	m := map[portKey]natTarget{}
	for _, o := range doc.Nftables {
		if o.Map == nil {
			continue
		}
		for _, e := range o.Map.Elem {
			var proto, ip string
			var hp, cp uint16
			if len(e[0].Concat) != 2 || len(e[1].Concat) != 2 ||
				json.Unmarshal(e[0].Concat[0], &proto) != nil || json.Unmarshal(e[0].Concat[1], &hp) != nil ||
				json.Unmarshal(e[1].Concat[0], &ip) != nil || json.Unmarshal(e[1].Concat[1], &cp) != nil {
				return nil, errors.New("nft list map: unexpected element")
			}
			a, _ := netip.ParseAddr(ip)
			m[portKey{proto, hp}] = natTarget{a, cp}
		}
	}
	return m, nil
}

func containerPort(p contract.PortMapping) uint16 {
	if p.ContainerPort != 0 {
		return p.ContainerPort
	}
	return p.HostPort
}
