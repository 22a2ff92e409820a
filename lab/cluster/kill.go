package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"kubeboot.dev/kubeboot/lab/node"
)

// Running reports whether the node's supervisor (node-run) runs: alive and still in the mount namespace it
// was started in, so that a reused PID does not count.
func Running(n NodeState) bool {
	if n.PID <= 0 || !node.Alive(n.PID) {
		return false
	}
	ino, err := node.NSInode(n.PID, "mnt")
	return err == nil && ino == n.MntNS
}

// Kill stops every process of one node, or of the load balancer, as a power cut would: the supervisor first
// so that nothing is restarted, then the Pods in the node's cgroups, then whatever else runs in its
// namespaces (kubelet, containerd, shims). The netns, veth, cgroups and files stay: `lab down` removes them
// as for every node, and Start brings the node back. It returns how many processes it killed.
func Kill(st *State, name string) (int, error) {
	n, err := st.nodeRef(name)
	if err != nil {
		return 0, err
	}
	killed, err := killAll([]downTarget{targetOf(*n)})
	if err != nil {
		return killed, fmt.Errorf("kill node %s: %w", n.Name, err)
	}
	return killed, nil
}

// runDirs are a node's paths that live in /run, a tmpfs on a real machine: empty after a power cut.
var runDirs = []string{"/run/containerd", "/run/netns"}

// Start brings a killed node back the way a machine comes back after a power cut: what a real one keeps in
// memory is gone (in /run: containerd's task state and socket, the Pods' netns files, which pointed into
// namespaces that died with their processes; and the node's cgroups), everything else is kept, and its
// supervisor starts containerd and the kubelet, which starts the node's static Pods again. self is the lab binary. It returns once containerd
// answers (the load balancer: once it accepts); the Node turns Ready later.
func Start(ctx context.Context, st *State, name, self string) error {
	n, err := st.nodeRef(name)
	if err != nil {
		return err
	}
	if Running(*n) {
		return fmt.Errorf("node %s is running (node-run pid %d): `lab kill %s` first", n.Name, n.PID, n.Name)
	}
	if pods, rest := nodePIDs(targetOf(*n)); len(pods)+len(rest) > 0 {
		return fmt.Errorf("node %s has processes left (%v %v) although its supervisor is gone: `lab kill %s` first", n.Name, pods, rest, n.Name)
	}
	if _, err := os.Stat(n.NetNSPath()); err != nil {
		return fmt.Errorf("node %s: its netns is gone (%w): the lab is not whole, take it down with `lab down`", n.Name, err)
	}
	if n.Role != node.LoadBalancer {
		for _, d := range runDirs {
			if err := emptyDir(n.HostPath(d)); err != nil {
				return fmt.Errorf("start node %s: %w", n.Name, err)
			}
		}
		// The dead Pods' cgroups would outlive a power cut only here: the kubelet's cAdvisor then retries
		// each one's task for seconds before the kubelet starts anything (87 s for a control plane).
		if err := retry(func() error { return node.RemoveCgroupRoot(n.CgroupRoot) }); err != nil {
			return fmt.Errorf("start node %s: %w", n.Name, err)
		}
		if err := node.CreateCgroupRoot(n.CgroupRoot); err != nil {
			return fmt.Errorf("start node %s: %w", n.Name, err)
		}
	}
	started, err := node.Start(ctx, n.Spec, self, time.Minute)
	n.PID, n.MntNS, n.NetNS = started.PID, started.MntNS, started.NetNS
	if serr := st.Save(); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

// emptyDir removes what dir holds, keeping dir itself (a node binds it over the machine's path).
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("empty %s: %w", dir, err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("empty %s: %w", dir, err)
		}
	}
	return nil
}
