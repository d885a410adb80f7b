// Command mclab builds Istio multi-cluster labs, verifies them and reports for CI gates.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"mclab.dev/mclab/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}
