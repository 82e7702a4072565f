// Command tcpsend sends N zero bytes to a TCP address, waits until the
// receiver has them all (it closes its end), prints the socket's own count
// of what it put on the wire, then waits for a signal: a task for the
// network accounting end-to-end test, whose counters must agree with the
// kernel's count of the bytes this socket sent, retransmissions included.
//
// Output, one line: "bytes_sent=S bytes_retrans=R segs_out=P" (Linux
// tcp_info: payload bytes sent, retransmissions included, and segments).
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: tcpsend HOST:PORT N")
		os.Exit(2)
	}
	n, err := strconv.ParseInt(os.Args[2], 10, 64)
	if err != nil || n < 0 {
		fmt.Fprintln(os.Stderr, "tcpsend: N must be a byte count:", os.Args[2])
		os.Exit(2)
	}
	c, err := net.Dial("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tc := c.(*net.TCPConn)
	if _, err := io.CopyN(tc, zeros{}, n); err != nil {
		fmt.Fprintln(os.Stderr, "send:", err)
		os.Exit(1)
	}
	// Half-close and wait for the receiver's close: by then every byte is
	// acknowledged and tcp_info's counts are final.
	if err := tc.CloseWrite(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	io.Copy(io.Discard, tc)
	raw, err := tc.SyscallConn()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var info *unix.TCPInfo
	var ierr error
	raw.Control(func(fd uintptr) { info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) })
	if ierr != nil {
		fmt.Fprintln(os.Stderr, "tcp_info:", ierr)
		os.Exit(1)
	}
	fmt.Printf("bytes_sent=%d bytes_retrans=%d segs_out=%d\n", info.Bytes_sent, info.Bytes_retrans, info.Segs_out)
	c.Close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
