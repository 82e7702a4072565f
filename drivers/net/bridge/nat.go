//go:build linux

package bridge

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// nat keeps the node's NAT in one nftables table, "ip <bridge>", written
// over netlink (github.com/google/nftables; no nft binary). In nft's
// syntax:
//
//	map hostports { type inet_proto . inet_service : ipv4_addr . inet_service }
//	chain prerouting { type nat hook prerouting priority dstnat
//		fib daddr type local dnat ip to meta l4proto . th dport map @hostports }
//	chain output { type nat hook output priority -100
//		fib daddr type local dnat ip to meta l4proto . th dport map @hostports }
//	chain postrouting { type nat hook postrouting priority srcnat
//		ct status dnat ip saddr <subnet> ip daddr <subnet> masquerade
//		ip saddr <subnet> ip daddr != <cluster> oifname != "<bridge>" masquerade }
//
// that is: a packet to any local address whose protocol and destination
// port are in the map goes to the container address and port they lead
// to; hairpin traffic (a container reaching a host port of the node's,
// DNATed back onto the bridge) and traffic from the subnet leaving the
// cluster CIDR by another device than the bridge are masqueraded.
//
// A container's host port mappings are elements of the map: Setup adds
// them, Teardown deletes them, GC deletes those of no live container. Each
// change is one netlink transaction. nat is not safe for concurrent use;
// the driver serializes its calls (opMu).
type nat struct {
	table     *nftables.Table
	hostports *nftables.Set
	nsFd      int // the node's namespace; 0: ours
	// missing is set (wrapping ErrNotSupported) when ensure found no
	// nf_tables in the kernel: the node then has no NAT, and bridge-mode
	// port mappings are refused with this error.
	missing error
}

// hostportsMap is the map's name in the table.
const hostportsMap = "hostports"

// newNAT returns the NAT of table in the namespace at netns ("" = ours).
// It keeps the namespace open until close.
func newNAT(table, netns string) (*nat, error) {
	n := &nat{table: &nftables.Table{Name: table, Family: nftables.TableFamilyIPv4}}
	n.hostports = &nftables.Set{
		Table:         n.table,
		Name:          hostportsMap,
		IsMap:         true,
		Concatenation: true,
		KeyType:       nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService),
		DataType:      nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService),
		// An ID of our own (it only names the map within one
		// transaction): with 0, AddSet would take one from a counter
		// global to the library, unguarded between drivers.
		ID: 1,
	}
	if netns != "" {
		fd, err := unix.Open(netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", netns, err)
		}
		n.nsFd = fd
	}
	return n, nil
}

func (n *nat) close() {
	if n.nsFd != 0 {
		unix.Close(n.nsFd)
		n.nsFd = 0
	}
}

// conn returns a connection whose socket is opened per request (by the
// library) in the node's namespace: no socket is held between calls, so a
// failed transaction leaves nothing unread behind.
func (n *nat) conn() (*nftables.Conn, error) {
	if n.nsFd != 0 {
		return nftables.New(nftables.WithNetNSFd(n.nsFd))
	}
	return nftables.New()
}

// ensure makes the table, map and chains exist and replaces the chains'
// rules, in one transaction; the map's elements are kept. It is
// idempotent.
func (n *nat) ensure(bridge string, subnet, cluster netip.Prefix) error {
	if !cluster.IsValid() {
		cluster = subnet
	}
	c, err := n.conn()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	c.AddTable(n.table)
	if err := c.AddSet(n.hostports, nil); err != nil {
		return fmt.Errorf("nftables: map %s: %w", hostportsMap, err)
	}
	accept := nftables.ChainPolicyAccept
	chain := func(name string, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		ch := c.AddChain(&nftables.Chain{Name: name, Table: n.table, Type: nftables.ChainTypeNAT,
			Hooknum: hook, Priority: prio, Policy: &accept})
		c.FlushChain(ch)
		return ch
	}
	pre := chain("prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
	out := chain("output", nftables.ChainHookOutput, nftables.ChainPriorityNATDest)
	post := chain("postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	for _, ch := range []*nftables.Chain{pre, out} {
		c.AddRule(&nftables.Rule{Table: n.table, Chain: ch, Exprs: n.dnatExprs()})
	}
	c.AddRule(&nftables.Rule{Table: n.table, Chain: post, Exprs: hairpinExprs(subnet)})
	c.AddRule(&nftables.Rule{Table: n.table, Chain: post, Exprs: egressExprs(subnet, cluster, bridge)})
	if err := c.Flush(); err != nil {
		// The netlink family or the nat chain type is not in the kernel.
		if errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT) {
			n.missing = fmt.Errorf("host port mappings in bridge mode need nf_tables in the kernel (%v): %w", err, contract.ErrNotSupported)
			return nil
		}
		return fmt.Errorf("nftables: table ip %s: %w", n.table.Name, err)
	}
	n.missing = nil
	return nil
}

// Registers as nft numbers them: 1 is the first 16-byte register, 9 the
// second 4-byte one (its bytes 4-7), so that a concatenation of two
// 4-byte-aligned fields loaded into 1 and 9 is one 8-byte key in 1.
const (
	reg1   = 1
	reg32b = 9
)

// dnatExprs: fib daddr type local dnat ip to meta l4proto . th dport map @hostports.
func (n *nat) dnatExprs() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Payload{DestRegister: reg32b, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: reg1, SetName: n.hostports.Name, SetID: n.hostports.ID, DestRegister: reg1, IsDestRegSet: true},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg1, RegProtoMin: reg32b},
	}
}

// ipsDstNAT is the conntrack status bit of a DNATed connection
// (IPS_DST_NAT, linux/netfilter/nf_conntrack_common.h).
const ipsDstNAT = 1 << 5

// hairpinExprs: ct status dnat ip saddr <subnet> ip daddr <subnet> masquerade.
func hairpinExprs(subnet netip.Prefix) []expr.Any {
	zero := []byte{0, 0, 0, 0}
	e := []expr.Any{
		&expr.Ct{Register: reg1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: zero},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: zero},
	}
	e = append(e, matchIPv4(12, subnet, expr.CmpOpEq)...)
	e = append(e, matchIPv4(16, subnet, expr.CmpOpEq)...)
	return append(e, &expr.Masq{})
}

// egressExprs: ip saddr <subnet> ip daddr != <cluster> oifname != "<bridge>" masquerade.
func egressExprs(subnet, cluster netip.Prefix, bridge string) []expr.Any {
	e := matchIPv4(12, subnet, expr.CmpOpEq)
	e = append(e, matchIPv4(16, cluster, expr.CmpOpNeq)...)
	ifname := make([]byte, unix.IFNAMSIZ)
	copy(ifname, bridge)
	return append(e,
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: ifname},
		&expr.Masq{})
}

// matchIPv4 compares the IPv4 address at offset of the network header
// (12: source, 16: destination) with prefix p.
func matchIPv4(offset uint32, p netip.Prefix, op expr.CmpOp) []expr.Any {
	p = p.Masked()
	mask := prefixMask(p.Bits())
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: mask[:], Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: op, Register: reg1, Data: p.Addr().AsSlice()},
	}
}

func prefixMask(bits int) [4]byte {
	m := ^uint32(0) << (32 - bits)
	if bits == 0 {
		m = 0
	}
	return [4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}
}

// remove deletes the table; a missing table is not an error.
func (n *nat) remove() error {
	if n.missing != nil {
		return nil
	}
	c, err := n.conn()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	c.DelTable(n.table)
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("nftables: delete table ip %s: %w", n.table.Name, err)
	}
	return nil
}

// exists reports whether the table exists.
func (n *nat) exists() (bool, error) {
	c, err := n.conn()
	if err != nil {
		return false, fmt.Errorf("nftables: %w", err)
	}
	if _, err := c.ListTableOfFamily(n.table.Name, n.table.Family); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("nftables: table ip %s: %w", n.table.Name, err)
	}
	return true, nil
}

// natTarget is where a host port leads.
type natTarget struct {
	ip   netip.Addr
	port uint16
}

// Map keys and values are concatenations, each field padded to 4 bytes:
// key = proto(1) 0 0 0 | port(2, big endian) 0 0; value = address(4) |
// port(2, big endian) 0 0.
func mapKey(k portKey) ([]byte, error) {
	var proto byte
	switch k.proto {
	case "tcp":
		proto = unix.IPPROTO_TCP
	case "udp":
		proto = unix.IPPROTO_UDP
	default:
		return nil, fmt.Errorf("protocol %q: %w", k.proto, contract.ErrNotSupported)
	}
	return []byte{proto, 0, 0, 0, byte(k.port >> 8), byte(k.port), 0, 0}, nil
}

func mapValue(t natTarget) []byte {
	a := t.ip.As4()
	return []byte{a[0], a[1], a[2], a[3], byte(t.port >> 8), byte(t.port), 0, 0}
}

// decodeElement reverses mapKey and mapValue.
func decodeElement(e nftables.SetElement) (portKey, natTarget, error) {
	if len(e.Key) != 8 || len(e.Val) != 8 {
		return portKey{}, natTarget{}, fmt.Errorf("element of %d+%d bytes, want 8+8", len(e.Key), len(e.Val))
	}
	var k portKey
	switch e.Key[0] {
	case unix.IPPROTO_TCP:
		k.proto = "tcp"
	case unix.IPPROTO_UDP:
		k.proto = "udp"
	default:
		return portKey{}, natTarget{}, fmt.Errorf("element of protocol %d", e.Key[0])
	}
	k.port = uint16(e.Key[4])<<8 | uint16(e.Key[5])
	t := natTarget{
		ip:   netip.AddrFrom4([4]byte(e.Val[:4])),
		port: uint16(e.Val[4])<<8 | uint16(e.Val[5]),
	}
	return k, t, nil
}

// add maps ports to ip, in one transaction. The caller holds the ports, so
// an entry of the same port leading elsewhere is stale (a crash before GC)
// and replaced. The first try adds without listing the map (the kernel
// accepts an identical entry again, and refuses one leading elsewhere);
// only if that fails does it list the map and replace the stale entries.
func (n *nat) add(ports []contract.PortMapping, ip netip.Addr) error {
	if len(ports) == 0 {
		return nil
	}
	keys := make([]portKey, 0, len(ports))
	elems := make([]nftables.SetElement, 0, len(ports))
	for _, p := range ports {
		k := portKey{p.Protocol, p.HostPort}
		key, err := mapKey(k)
		if err != nil {
			return err
		}
		keys = append(keys, k)
		elems = append(elems, nftables.SetElement{Key: key, Val: mapValue(natTarget{ip, containerPort(p)})})
	}
	if err := n.change(nil, elems); err == nil {
		return nil
	}
	have, err := n.list()
	if err != nil {
		return err
	}
	var stale []nftables.SetElement
	for i, k := range keys {
		if old, ok := have[k]; ok && old != (natTarget{ip, containerPort(ports[i])}) {
			stale = append(stale, nftables.SetElement{Key: elems[i].Key})
		}
	}
	return n.change(stale, elems)
}

// change deletes del and adds add, in one transaction.
func (n *nat) change(del, add []nftables.SetElement) error {
	c, err := n.conn()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if len(del) > 0 {
		if err := c.SetDeleteElements(n.hostports, del); err != nil {
			return fmt.Errorf("nftables: %w", err)
		}
	}
	if len(add) > 0 {
		if err := c.SetAddElements(n.hostports, add); err != nil {
			return fmt.Errorf("nftables: %w", err)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: map %s: %w", hostportsMap, err)
	}
	return nil
}

// del deletes the entries of keys, in one transaction; each must exist.
func (n *nat) del(keys []portKey) error {
	if len(keys) == 0 {
		return nil
	}
	elems := make([]nftables.SetElement, 0, len(keys))
	for _, k := range keys {
		key, err := mapKey(k)
		if err != nil {
			return err
		}
		elems = append(elems, nftables.SetElement{Key: key})
	}
	return n.change(elems, nil)
}

// list returns the map's elements; a missing table or map is an error.
func (n *nat) list() (map[portKey]natTarget, error) {
	c, err := n.conn()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	elems, err := c.GetSetElements(n.hostports)
	if err != nil {
		return nil, fmt.Errorf("nftables: list map %s: %w", hostportsMap, err)
	}
	m := make(map[portKey]natTarget, len(elems))
	for _, e := range elems {
		k, t, err := decodeElement(e)
		if err != nil {
			return nil, fmt.Errorf("nftables: map %s: %w", hostportsMap, err)
		}
		m[k] = t
	}
	return m, nil
}

func containerPort(p contract.PortMapping) uint16 {
	if p.ContainerPort != 0 {
		return p.ContainerPort
	}
	return p.HostPort
}
