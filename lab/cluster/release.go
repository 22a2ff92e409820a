package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"kubeboot.dev/kubeboot/lab/node"
)

// ImportImages imports images (another release's, ahead of an upgrade) into a running node's containerd, those its
// role runs (a worker: no control-plane images), and returns how many it imported.
func ImportImages(ctx context.Context, st *State, name string, images []Image) (int, error) {
	n, err := st.nodeRef(name)
	if err != nil {
		return 0, err
	}
	if n.Role == node.LoadBalancer {
		return 0, fmt.Errorf("%s is the load balancer: it runs no containers", n.Name)
	}
	if !Running(*n) {
		return 0, fmt.Errorf("node %s is down: `lab start %s` brings it back", n.Name, n.Name)
	}
	return importImages(ctx, st, *n, images)
}

// UseKubelet makes a node run the kubelet in binDir, as installing another release's kubelet package and
// restarting its service would: the supervisor sees the node's spec change and restarts the kubelet with the new
// binary. It returns once the new kubelet process runs.
func UseKubelet(ctx context.Context, st *State, name, binDir string) (pid int, err error) {
	n, err := st.nodeRef(name)
	if err != nil {
		return 0, err
	}
	if n.Role == node.LoadBalancer {
		return 0, fmt.Errorf("%s is the load balancer: it runs no kubelet", n.Name)
	}
	if !Running(*n) {
		return 0, fmt.Errorf("node %s is down: `lab start %s` brings it back", n.Name, n.Name)
	}
	if _, err := os.Stat(filepath.Join(binDir, "kubelet")); err != nil {
		return 0, fmt.Errorf("no kubelet to install on %s: %w", n.Name, err)
	}
	before := readPID(n.PIDFile("kubelet"))
	n.KubeletBinDir = binDir
	if err := node.WriteSpec(n.Spec); err != nil {
		return 0, err
	}
	if err := st.Save(); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if pid := readPID(n.PIDFile("kubelet")); pid > 0 && pid != before {
			return pid, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("the kubelet of %s did not restart within a minute with %s (log %s)", n.Name,
		n.KubeletBinary(), filepath.Join(n.LogDir(), "kubelet.log"))
}
