package e2e

import (
	"bytes"
	"encoding/binary"
	"net"
	"slices"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// loopCapture records the TCP payload of every packet on the loopback
// interface to or from one port, as a packet sniffer (tcpdump -i lo)
// would: an AF_PACKET socket sees the bytes as they cross the link,
// below every TLS library. Payloads are reassembled per flow by
// sequence number, so that a string split across segments is found.
type loopCapture struct {
	t    testing.TB
	fd   int
	port uint16
	done chan struct{}

	stopFn func()

	mu      sync.Mutex
	flows   map[flowKey]map[uint32][]byte
	packets int
}

type flowKey struct {
	src, dst     [4]byte
	sport, dport uint16
}

// captureLoopback starts capturing the loopback traffic of port (needs
// CAP_NET_RAW: the e2e tests run as root).
func captureLoopback(t testing.TB, port int) *loopCapture {
	t.Helper()
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	proto := int(htons(unix.ETH_P_ALL))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		t.Fatalf("packet socket: %v", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: lo.Index}); err != nil {
		unix.Close(fd)
		t.Fatalf("bind packet socket to lo: %v", err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100_000})
	c := &loopCapture{t: t, fd: fd, port: uint16(port), done: make(chan struct{}), flows: map[flowKey]map[uint32][]byte{}}
	stop := make(chan struct{})
	go c.read(stop)
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-c.done
	})
	c.stopFn = func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-c.done
	}
	return c
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (c *loopCapture) read(stop chan struct{}) {
	defer close(c.done)
	defer unix.Close(c.fd)
	buf := make([]byte, 1<<17)
	stopping := false
	for {
		if !stopping {
			select {
			case <-stop:
				// Drain what the socket holds: packets sent before stop
				// may not have been read yet.
				stopping = true
			default:
			}
		}
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			if stopping {
				return // 100 ms without a packet: drained
			}
			continue // timeout: look at stop again
		}
		c.packet(buf[:n])
	}
}

// packet takes the TCP payload of an Ethernet-framed IPv4 packet.
func (c *loopCapture) packet(b []byte) {
	if len(b) < 14+20 || binary.BigEndian.Uint16(b[12:14]) != 0x0800 {
		return
	}
	ip := b[14:]
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	if ip[9] != 6 || ihl < 20 || total > len(ip) || total < ihl+20 {
		return
	}
	tcp := ip[ihl:total]
	sport, dport := binary.BigEndian.Uint16(tcp[0:2]), binary.BigEndian.Uint16(tcp[2:4])
	if sport != c.port && dport != c.port {
		return
	}
	off := int(tcp[12]>>4) * 4
	if off < 20 || off > len(tcp) {
		return
	}
	payload := tcp[off:]
	k := flowKey{sport: sport, dport: dport}
	copy(k.src[:], ip[12:16])
	copy(k.dst[:], ip[16:20])
	c.mu.Lock()
	defer c.mu.Unlock()
	c.packets++
	if len(payload) == 0 {
		return
	}
	if c.flows[k] == nil {
		c.flows[k] = map[uint32][]byte{}
	}
	c.flows[k][binary.BigEndian.Uint32(tcp[4:8])] = bytes.Clone(payload)
}

// stop ends the capture and returns every flow's bytes, reassembled
// (sequence order, retransmissions once), flows separated by a NUL line.
func (c *loopCapture) stop() (streams []byte, packets int) {
	c.stopFn()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out bytes.Buffer
	for _, segs := range c.flows {
		seqs := slices.Sorted(func(yield func(uint32) bool) {
			for s := range segs {
				if !yield(s) {
					return
				}
			}
		})
		var next uint32
		for i, s := range seqs {
			p := segs[s]
			if i > 0 && s < next { // overlap (retransmission)
				if int(next-s) >= len(p) {
					continue
				}
				p = p[next-s:]
			}
			out.Write(p)
			next = s + uint32(len(segs[s]))
		}
		out.WriteString("\n\x00\n")
	}
	return out.Bytes(), c.packets
}
