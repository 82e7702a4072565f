// Command tcpecho is the task of the multi-host end-to-end tests, both
// ends of a TCP exchange:
//
//	tcpecho serve PORT       answers each connection's first line L with
//	                         "$DCOS_TASK_IP got L\n", until killed
//	tcpecho dial HOST:PORT L sends L, and exits 0 if the answer is
//	                         "HOST got L\n" (the server is the task at
//	                         HOST); it retries refused or unreachable dials
//	                         for up to 30 s (the overlay may still be
//	                         coming up), then exits 1
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"time"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	switch {
	case len(args) == 2 && args[0] == "serve":
		return serve(args[1])
	case len(args) == 3 && args[0] == "dial":
		return dial(args[1], args[2])
	}
	fmt.Fprintln(os.Stderr, "usage: tcpecho serve PORT | tcpecho dial HOST:PORT LINE")
	return 2
}

func serve(port string) int {
	l, err := net.Listen("tcp", ":"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	me := os.Getenv("DCOS_TASK_IP")
	for {
		c, err := l.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s got %s", me, line)
		}()
	}
}

func dial(addr, line string) int {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	want := host + " got " + line + "\n"
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := exchange(addr, line)
		if err == nil {
			fmt.Print(got)
			if got != want {
				fmt.Fprintf(os.Stderr, "answer %q, want %q\n", got, want)
				return 1
			}
			return 0
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func exchange(addr, line string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\n", line); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}
