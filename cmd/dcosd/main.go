// Command dcosd runs the dcos kernel, an agent, or both with an embedded
// store (dev). See `dcosd --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/dcos-kernel/dcos/internal/daemon"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := daemon.Run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
