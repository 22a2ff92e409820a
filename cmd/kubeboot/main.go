// Command kubeboot bootstraps Kubernetes clusters: a kubeadm-compatible init, join, reset and friends.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"kubeboot.dev/kubeboot/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
