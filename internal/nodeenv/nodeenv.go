// Package nodeenv is the machine a flow changes, as init, join and reset all reach it: its filesystem, the writer for
// their progress, the clock and randomness, the init system that restarts the kubelet and the container runtime.
// Every flow's data embeds an Env, so the real machine is built in one place (Host) and tests and --dry-run
// substitute one effect at a time.
package nodeenv

import (
	"context"
	"io"
	"os"
	"path/filepath"

	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/preflight"
)

// Env is the node as a flow's phases reach it.
type Env struct {
	// FS is the node's filesystem: the real root or a --rootfs directory, under --dry-run seen through a
	// nodefs.Overlay that keeps every write in memory.
	FS nodefs.FS
	// Out receives the phases' detail lines (the runner prints one progress line per phase).
	Out io.Writer
	// Source supplies time, randomness and keys to certificate generation; zero means the system's.
	Source pki.Source
	// Preflight is the machine as preflight checks see it.
	Preflight preflight.Env
	// InitSystem restarts the kubelet.
	InitSystem kubelet.InitSystem
	// DialRuntime connects to the container runtime at a CRI socket.
	DialRuntime func(ctx context.Context, criSocket string) (cri.Runtime, error)
}

// Host is the real machine with its files under fsys, writing progress to out.
func Host(fsys nodefs.FS, out io.Writer) Env {
	return Env{
		FS:          fsys,
		Out:         out,
		Source:      pki.SystemSource(),
		Preflight:   preflight.HostEnv(fsys),
		InitSystem:  kubelet.DetectInitSystem(fsys),
		DialRuntime: cri.DialRuntime,
	}
}

// Executable is the running kubeboot, symlinks resolved: what the timers of auto-renew and snapshot schedule run,
// and what the node-local API endpoint's static Pod runs once installed.
func Executable() (string, error) {
	p, err := os.Executable()
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(p)
}
