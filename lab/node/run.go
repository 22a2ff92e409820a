package node

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Files the kubelet is restarted on, as the official packages' systemd drop-in reads them.
const (
	KubeletFlagsFile     = "/var/lib/kubelet/kubeadm-flags.env"
	KubeletConfigFile    = "/var/lib/kubelet/config.yaml"
	KubeletKubeconfig    = "/etc/kubernetes/kubelet.conf"
	BootstrapKubeconfig  = "/etc/kubernetes/bootstrap-kubelet.conf"
	containerdSocketPath = "/run/containerd/containerd.sock"
)

// Path is the PATH of every process in a node: the release's binaries first, then the machine's tools. kubeadm's
// preflight runs `kubelet --version`; containerd starts containerd-shim-runc-v2 from its PATH, and that must be the
// shim built with it, not one a Debian containerd package may have put in /usr/bin (runc stays Debian's).
func Path(binDir string) string {
	return binDir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}

// Run is the node's init process. It must already be in the node's own network, mount and UTS
// namespaces (see Start). It gives the node its hostname and private directories, then keeps
// containerd and the kubelet running until ctx is done (on the load balancer: `kubeboot loadbalancer`).
func Run(ctx context.Context, specPath string) error {
	s, err := ReadSpec(specPath)
	if err != nil {
		return err
	}
	logger := log.New(os.Stdout, "", log.LstdFlags|log.Lmicroseconds)
	if err := syscall.Sethostname([]byte(s.Name)); err != nil {
		return fmt.Errorf("set hostname %s: %w", s.Name, err)
	}
	if err := mountPrivate(s); err != nil {
		return err
	}
	if s.Role == LoadBalancer {
		return runLoadBalancer(ctx, s, logger)
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("enable forwarding in node %s: %w", s.Name, err)
	}

	containerd := &Service{
		Name: "containerd",
		Command: func() (*exec.Cmd, error) {
			return s.logCommand("containerd", filepath.Join(s.BinDir, "containerd"), "--config", "/etc/containerd/config.toml")
		},
		Backoff: time.Second, Poll: 250 * time.Millisecond, StopTimeout: 10 * time.Second,
		PIDFile: s.PIDFile("containerd"), Log: logger,
	}
	kubelet := &Service{
		Name: "kubelet",
		Command: func() (*exec.Cmd, error) {
			env := map[string]string{}
			if b, err := os.ReadFile(KubeletFlagsFile); err == nil {
				if env, err = ParseEnvFile(b); err != nil {
					return nil, fmt.Errorf("%s: %w", KubeletFlagsFile, err)
				}
			}
			// The spec is read again: `lab kubelet` may have installed another release's kubelet.
			cur, err := ReadSpec(specPath)
			if err != nil {
				return nil, err
			}
			return s.logCommand("kubelet", cur.KubeletBinary(), KubeletArgs(env)...)
		},
		// A tool restarts the kubelet after writing its flags and config.yaml. The kubeconfigs are read at start
		// only: the kubelet writes kubelet.conf itself when its bootstrap succeeds, kubeadm's kubelet-finalize
		// rewrites it and join removes bootstrap-kubelet.conf afterwards, and none of that restarts a systemd
		// kubelet (restarting here cost each join a kubelet shutdown and start). After a reset config.yaml is gone,
		// which stops the kubelet (Require).
		Watch:   []string{KubeletFlagsFile, KubeletConfigFile, specPath},
		Inputs:  []string{KubeletKubeconfig, BootstrapKubeconfig},
		Require: KubeletConfigFile,
		// A start waits for two equal polls of the files (see Inputs): a short poll keeps that close to the
		// immediate `systemctl restart` it stands in for.
		Backoff: time.Second, Poll: 100 * time.Millisecond, StopTimeout: 10 * time.Second,
		PIDFile: s.PIDFile("kubelet"), Log: logger,
	}

	var wg sync.WaitGroup
	ctrdCtx, stopContainerd := context.WithCancel(context.WithoutCancel(ctx))
	defer stopContainerd()
	wg.Go(func() { _ = containerd.Run(ctrdCtx) })
	if err := waitSocket(ctx, containerdSocketPath, time.Minute); err != nil {
		stopContainerd()
		wg.Wait()
		return fmt.Errorf("containerd of node %s (log %s): %w", s.Name, filepath.Join(s.LogDir(), "containerd.log"), err)
	}
	if err := os.WriteFile(s.ReadyFile(), nil, 0o644); err != nil {
		stopContainerd()
		wg.Wait()
		return fmt.Errorf("node %s: %w", s.Name, err)
	}
	logger.Printf("node %s ready: containerd answers on %s", s.Name, containerdSocketPath)
	// The kubelet stops before containerd, as it would on a real node shutting down.
	_ = kubelet.Run(ctx)
	stopContainerd()
	wg.Wait()
	return nil
}

// mountPrivate detaches the copy of the machine's /run/netns the node inherited (it holds every
// other node's netns open) and bind-mounts the node's own directories and files.
func mountPrivate(s Spec) error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := syscall.Unmount("/run/netns", syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("detach inherited /run/netns: %w", err)
	}
	for _, p := range append(slices.Clone(s.boundDirs()), s.boundFiles()...) {
		if err := syscall.Mount(s.HostPath(p), p, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s over %s: %w", s.HostPath(p), p, err)
		}
	}
	return nil
}

// logCommand builds a node process whose output is appended to LogDir/name.log.
func (s Spec) logCommand(name, path string, args ...string) (*exec.Cmd, error) {
	f, err := os.OpenFile(filepath.Join(s.LogDir(), name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	fmt.Fprintf(f, "=== %s %s %v\n", time.Now().Format(time.RFC3339Nano), path, args)
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = s.env()
	return cmd, nil
}

func waitSocket(ctx context.Context, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no answer on %s: %w", path, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
