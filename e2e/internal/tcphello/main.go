// Command tcphello listens on the TCP port given as its argument and
// answers every connection with "hello from $DCOS_TASK_IP\n": a task for
// the networking end-to-end tests.
package main

import (
	"fmt"
	"net"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: tcphello PORT")
		os.Exit(2)
	}
	l, err := net.Listen("tcp", ":"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprintf(c, "hello from %s\n", os.Getenv("DCOS_TASK_IP"))
		c.Close()
	}
}
