//go:build linux

package bridge

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/google/nftables"

	"github.com/dcos-kernel/dcos/internal/netnsutil"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

// newTestNAT returns the NAT of table dcos0 in a fresh namespace (and the
// namespace's path), removed with the namespace at the end of the test.
func newTestNAT(t testing.TB) (*nat, string) {
	t.Helper()
	requireNetns(t)
	p := filepath.Join(t.TempDir(), "ns")
	if err := createNetns(p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netnsutil.RemoveNetns(p); err != nil {
			t.Error(err)
		}
	})
	n, err := newNAT(DefaultBridge, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.close)
	return n, p
}

// nodeRules is how many rules each chain of the node's table has.
var nodeRules = map[string]int{"prerouting": 1, "output": 1, "postrouting": 2}

// natRules counts the rules of each chain of n's table.
func natRules(n *nat) (map[string]int, error) {
	c, err := n.conn()
	if err != nil {
		return nil, err
	}
	m := map[string]int{}
	for chain := range nodeRules {
		rules, err := c.GetRules(n.table, &nftables.Chain{Name: chain, Table: n.table})
		if err != nil {
			return nil, fmt.Errorf("chain %s: %w", chain, err)
		}
		m[chain] = len(rules)
	}
	return m, nil
}

func TestNAT_EnsureIdempotent(t *testing.T) {
	n, _ := newTestNAT(t)
	subnet, cluster := netip.MustParsePrefix("10.1.2.0/24"), netip.MustParsePrefix("10.1.0.0/16")
	if ok, err := n.exists(); err != nil || ok {
		t.Fatalf("exists before ensure = %v, %v", ok, err)
	}
	if err := n.ensure(DefaultBridge, subnet, cluster); err != nil {
		t.Fatal(err)
	}
	if n.missing != nil {
		t.Skipf("kernel without nf_tables: %v", n.missing)
	}
	ip := netip.MustParseAddr("10.1.2.3")
	ports := []contract.PortMapping{{Protocol: "tcp", HostPort: 31000, ContainerPort: 8080}, {Protocol: "udp", HostPort: 53}}
	if err := n.add(ports, ip); err != nil {
		t.Fatal(err)
	}
	// Again, as after a restart: the rules are replaced, the elements kept.
	if err := n.ensure(DefaultBridge, subnet, cluster); err != nil {
		t.Fatal(err)
	}
	if err := n.add(ports[:1], ip); err != nil { // already there: no error
		t.Fatal(err)
	}
	want := map[portKey]natTarget{{"tcp", 31000}: {ip, 8080}, {"udp", 53}: {ip, 53}}
	have, err := n.list()
	if err != nil || len(have) != len(want) {
		t.Fatalf("list = %v, %v; want %v", have, err, want)
	}
	for k, v := range want {
		if have[k] != v {
			t.Errorf("%v → %v, want %v", k, have[k], v)
		}
	}
	if rules, err := natRules(n); err != nil || fmt.Sprint(rules) != fmt.Sprint(nodeRules) {
		t.Errorf("rules per chain: %v (%v), want %v", rules, err, nodeRules)
	}
	// A port leading elsewhere (stale after a crash) is replaced.
	other := netip.MustParseAddr("10.1.2.9")
	if err := n.add(ports[:1], other); err != nil {
		t.Fatal(err)
	}
	if have, _ := n.list(); have[portKey{"tcp", 31000}] != (natTarget{other, 8080}) {
		t.Errorf("stale entry kept: %v", have)
	}
	if err := n.del([]portKey{{"tcp", 31000}, {"udp", 53}}); err != nil {
		t.Fatal(err)
	}
	if have, err := n.list(); err != nil || len(have) != 0 {
		t.Errorf("after del: %v, %v", have, err)
	}
	for range 2 {
		if err := n.remove(); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := n.exists(); err != nil || ok {
		t.Errorf("exists after remove = %v, %v", ok, err)
	}
	if _, err := n.list(); err == nil {
		t.Error("list of a removed table: no error")
	}
}

func TestNAT_Elements(t *testing.T) {
	tests := []struct {
		name string
		k    portKey
		t    natTarget
	}{
		{"tcp", portKey{"tcp", 31000}, natTarget{netip.MustParseAddr("10.88.1.2"), 8080}},
		{"udp low", portKey{"udp", 1}, natTarget{netip.MustParseAddr("10.88.1.255"), 65535}},
		{"tcp high", portKey{"tcp", 65535}, natTarget{netip.MustParseAddr("0.0.0.1"), 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := mapKey(tt.k)
			if err != nil {
				t.Fatal(err)
			}
			k, v, err := decodeElement(nftables.SetElement{Key: key, Val: mapValue(tt.t)})
			if err != nil || k != tt.k || v != tt.t {
				t.Errorf("round trip = %v, %v, %v", k, v, err)
			}
		})
	}
	if _, err := mapKey(portKey{"sctp", 1}); !errors.Is(err, contract.ErrNotSupported) {
		t.Errorf("sctp key: %v", err)
	}
	bad := []nftables.SetElement{
		{},
		{Key: []byte{6, 0, 0, 0, 0, 80, 0, 0}, Val: []byte{10, 0, 0, 1}},
		{Key: []byte{1, 0, 0, 0, 0, 80, 0, 0}, Val: []byte{10, 0, 0, 1, 0, 80, 0, 0}},
	}
	for i, e := range bad {
		if _, _, err := decodeElement(e); err == nil {
			t.Errorf("bad element %d decoded", i)
		}
	}
}

func TestPrefixMask(t *testing.T) {
	for _, tt := range []struct {
		bits int
		want [4]byte
	}{{0, [4]byte{}}, {8, [4]byte{255}}, {16, [4]byte{255, 255}}, {23, [4]byte{255, 255, 254}}, {32, [4]byte{255, 255, 255, 255}}} {
		if got := prefixMask(tt.bits); got != tt.want {
			t.Errorf("prefixMask(%d) = %v, want %v", tt.bits, got, tt.want)
		}
	}
}

// FuzzDecodeElement feeds map elements as the kernel might return them:
// decodeElement never panics, and what it accepts encodes back to the
// same bytes (padding aside: it is not checked).
func FuzzDecodeElement(f *testing.F) {
	key, _ := mapKey(portKey{"tcp", 31000})
	f.Add(key, mapValue(natTarget{netip.MustParseAddr("10.88.1.2"), 8080}))
	f.Add([]byte{17, 0, 0, 0, 0, 53}, []byte{10, 0, 0, 1, 0, 53, 0, 0})
	f.Fuzz(func(t *testing.T, k, v []byte) {
		pk, nt, err := decodeElement(nftables.SetElement{Key: k, Val: v})
		if err != nil {
			return
		}
		k2, err := mapKey(pk)
		if err != nil {
			t.Fatalf("decoded %v does not encode: %v", pk, err)
		}
		v2 := mapValue(nt)
		// Bytes 1-3 of the key and 6-7 of both are padding.
		if k2[0] != k[0] || string(k2[4:6]) != string(k[4:6]) || string(v2[:6]) != string(v[:6]) {
			t.Errorf("round trip %x %x → %x %x", k, v, k2, v2)
		}
	})
}
