//go:build linux

package bridge

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/dcos-kernel/dcos/internal/atomicfile"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

// pool leases the addresses of one IPv4 subnet to container IDs. It is the
// pure core of the driver's IPAM: no I/O, no locking (the driver locks).
// The network address, the gateway (first host) and the broadcast address
// are never leased. Leases are handed out round robin from Next, so a
// just-released address is the last to be reused.
type pool struct {
	Subnet netip.Prefix          `json:"subnet"`
	Next   netip.Addr            `json:"next"`
	Leases map[string]netip.Addr `json:"leases"`
}

// gateway returns the first host of p: the bridge's address.
func gateway(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

// broadcast returns the last address of p.
func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	for i := 3; i >= 0 && host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	return netip.AddrFrom4(b)
}

// first and last return the range of leasable addresses.
func (p *pool) first() netip.Addr { return gateway(p.Subnet).Next() }
func (p *pool) last() netip.Addr  { return broadcast(p.Subnet).Prev() }

// allocate leases an address to id. An id that already holds a lease gets
// it again. An empty pool returns an error wrapping contract.ErrExhausted.
func (p *pool) allocate(id string) (netip.Addr, error) {
	if a, ok := p.Leases[id]; ok {
		return a, nil
	}
	if !p.Subnet.IsValid() {
		return netip.Addr{}, fmt.Errorf("ipam: no subnet configured")
	}
	used := make(map[netip.Addr]bool, len(p.Leases))
	for _, a := range p.Leases {
		used[a] = true
	}
	first, last := p.first(), p.last()
	start := p.Next
	if !start.IsValid() || start.Less(first) || last.Less(start) {
		start = first
	}
	a := start
	for {
		if !used[a] {
			if p.Leases == nil {
				p.Leases = map[string]netip.Addr{}
			}
			p.Leases[id] = a
			p.Next = a.Next()
			return a, nil
		}
		if a = a.Next(); last.Less(a) {
			a = first
		}
		if a == start {
			return netip.Addr{}, fmt.Errorf("ipam: subnet %s: %w", p.Subnet, contract.ErrExhausted)
		}
	}
}

// claim records that id holds a (after a restart). It fails with
// contract.ErrConflict if another id holds a, or a is not leasable.
func (p *pool) claim(id string, a netip.Addr) error {
	if !p.Subnet.Contains(a) || a.Less(p.first()) || p.last().Less(a) {
		return fmt.Errorf("ipam: %s is not a lease of %s: %w", a, p.Subnet, contract.ErrConflict)
	}
	for other, b := range p.Leases {
		if b == a && other != id {
			return fmt.Errorf("ipam: %s is held by %q: %w", a, other, contract.ErrConflict)
		}
	}
	if p.Leases == nil {
		p.Leases = map[string]netip.Addr{}
	}
	p.Leases[id] = a
	return nil
}

// release ends id's lease; releasing an id without one is a no-op.
func (p *pool) release(id string) { delete(p.Leases, id) }

const ipamFile = "ipam.json"

// loadPool reads the pool persisted in dir; a missing file is an empty
// pool. So is an empty file, which only a power loss between the rename and
// the write-back can leave (see save): then no namespace survived either.
func loadPool(dir string) (*pool, error) {
	b, err := os.ReadFile(filepath.Join(dir, ipamFile))
	if os.IsNotExist(err) {
		return &pool{Leases: map[string]netip.Addr{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	if len(b) == 0 {
		return &pool{Leases: map[string]netip.Addr{}}, nil
	}
	var p pool
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("ipam: %s: %w", ipamFile, err)
	}
	if p.Leases == nil {
		p.Leases = map[string]netip.Addr{}
	}
	return &p, nil
}

// save writes p to dir atomically (a temp file renamed over the old one):
// after a crash of the driver process a reader sees either the old or the
// new file, never a torn one. It does not fsync: every lease names a
// namespace, and no namespace survives a reboot, so a lease that a power
// loss forgets is one nobody holds any more (and a file a power loss tore
// is read as an empty pool, see loadPool). This keeps two fsyncs (~5 ms on
// a VM's disk) off every Setup and Teardown.
func (p *pool) save(dir string) error {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, ipamFile), b); err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	return nil
}
