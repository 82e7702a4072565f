//go:build linux

package bridge

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

func TestPool_Allocate(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		name   string
		subnet string
		ids    []string // allocated in order
		want   []string // "" = ErrExhausted
	}{
		{"skips network, gateway, broadcast", "10.0.0.0/29", []string{"a", "b", "c", "d", "e", "f"},
			[]string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6", ""}},
		{"same id same address", "10.0.0.0/24", []string{"a", "a"}, []string{"10.0.0.2", "10.0.0.2"}},
		{"/30 has one", "10.0.0.4/30", []string{"a", "b"}, []string{"10.0.0.6", ""}},
		{"/16", "10.1.0.0/16", []string{"a"}, []string{"10.1.0.2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &pool{Subnet: netip.MustParsePrefix(tt.subnet)}
			for i, id := range tt.ids {
				got, err := p.allocate(id)
				if tt.want[i] == "" {
					if !errors.Is(err, contract.ErrExhausted) {
						t.Fatalf("allocate(%q) = %s, %v; want ErrExhausted", id, got, err)
					}
					continue
				}
				if err != nil || got != a(tt.want[i]) {
					t.Fatalf("allocate(%q) = %s, %v; want %s", id, got, err, tt.want[i])
				}
			}
		})
	}
}

func TestPool_RoundRobin(t *testing.T) {
	p := &pool{Subnet: netip.MustParsePrefix("10.0.0.0/29")}
	first, _ := p.allocate("a")
	p.release("a")
	next, _ := p.allocate("b")
	if next == first {
		t.Errorf("a just-released address was reused first: %s", next)
	}
	for _, id := range []string{"c", "d", "e"} {
		p.allocate(id)
	}
	// Only a's old address is left: it is found by wrapping around.
	if got, err := p.allocate("f"); err != nil || got != first {
		t.Errorf("allocate = %s, %v; want %s", got, err, first)
	}
}

func TestPool_Claim(t *testing.T) {
	p := &pool{Subnet: netip.MustParsePrefix("10.0.0.0/24")}
	if err := p.claim("a", netip.MustParseAddr("10.0.0.9")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		id, addr string
	}{{"b", "10.0.0.9"}, {"b", "10.0.0.1"}, {"b", "10.0.1.9"}, {"b", "10.0.0.255"}} {
		if err := p.claim(tt.id, netip.MustParseAddr(tt.addr)); !errors.Is(err, contract.ErrConflict) {
			t.Errorf("claim(%s, %s) = %v, want ErrConflict", tt.id, tt.addr, err)
		}
	}
	if got, _ := p.allocate("c"); got == netip.MustParseAddr("10.0.0.9") {
		t.Errorf("a claimed address was handed out")
	}
}

func TestPool_SaveLoad(t *testing.T) {
	dir := t.TempDir()
	p := &pool{Subnet: netip.MustParsePrefix("10.0.0.0/24")}
	p.allocate("a")
	p.allocate("b")
	if err := p.save(dir); err != nil {
		t.Fatal(err)
	}
	q, err := loadPool(dir)
	if err != nil {
		t.Fatal(err)
	}
	if q.Subnet != p.Subnet || q.Next != p.Next || len(q.Leases) != 2 || q.Leases["b"] != p.Leases["b"] {
		t.Errorf("loaded %+v, saved %+v", q, p)
	}
	if c, _ := q.allocate("c"); c == p.Leases["a"] || c == p.Leases["b"] {
		t.Errorf("reloaded pool reused %s", c)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temp files left: %v", ents)
	}
	if err := os.WriteFile(filepath.Join(dir, ipamFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if q, err := loadPool(dir); err != nil || len(q.Leases) != 0 {
		t.Errorf("empty file: %+v, %v", q, err)
	}
	if err := os.WriteFile(filepath.Join(dir, ipamFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadPool(dir); err == nil {
		t.Errorf("a torn file was accepted")
	}
}

func TestNames(t *testing.T) {
	for _, id := range []string{"web-1", "a/b", "..", "x y%z", "ünï"} {
		if got, ok := nsID(nsFile(id)); !ok || got != id {
			t.Errorf("nsID(nsFile(%q)) = %q, %v", id, got, ok)
		}
		if n := vethName("dcos0", id); len(n) != 15 || n[:4] != "dcos" {
			t.Errorf("vethName(%q) = %q", id, n)
		}
	}
	if vethName("dcos0", "a") == vethName("dcos1", "a") {
		t.Error("two bridges share veth names")
	}
	if _, ok := nsID("other"); ok {
		t.Error("a foreign file was taken for a namespace")
	}
	if got := broadcast(netip.MustParsePrefix("10.1.0.0/22")); got != netip.MustParseAddr("10.1.3.255") {
		t.Errorf("broadcast = %s", got)
	}
}
