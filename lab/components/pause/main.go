// Command pause is the lab's pod sandbox process: it holds the pod's namespaces open, reaps
// children that get reparented to it (it is PID 1 of a pod sharing its PID namespace), and
// exits 0 on SIGTERM or SIGINT, like the upstream registry.k8s.io/pause image.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// version is what -v prints; the lab build sets it to the pause tag of the release it builds
// (-ldflags -X main.version=...), as kubeadm's upgrade health check runs `pause -v`.
var version = "unknown"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("pause.go version:", version)
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "pause: warning: not PID 1, orphans will not be reaped here")
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig == syscall.SIGCHLD {
			reap()
			continue
		}
		fmt.Fprintf(os.Stderr, "pause: shutting down, got signal: %v\n", sig)
		os.Exit(0)
	}
}

// reap collects every exited child; several SIGCHLDs may coalesce into one delivery.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
