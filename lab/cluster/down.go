package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"kubeboot.dev/kubeboot/lab/network"
	"kubeboot.dev/kubeboot/lab/node"
)

// Down stops every process of the lab and removes everything it created, in the order of
// LAB-FACTS §5: supervisors, then Pods (cgroup subtree), then whatever is left in the nodes'
// namespaces; only then netns, links, cgroups and files. Without a state file it still removes
// whatever carries the lab's names. It reports whether there was anything to take down.
func Down(ctx context.Context, stateDir string, log io.Writer) (bool, error) {
	p := progress{w: log}
	start := time.Now()
	st, err := LoadState(stateDir)
	if errors.Is(err, ErrNoLab) {
		st = &State{StateDir: stateDir, Bridge: BridgeName, RunNetnsExisted: true, RunNetnsMounted: true}
	} else if err != nil {
		fmt.Fprintf(log, "lab: %v; removing what carries the lab's names\n", err)
		st = &State{StateDir: stateDir, Bridge: BridgeName, RunNetnsExisted: true, RunNetnsMounted: true}
	}
	targets := downTargets(st)
	_, nodesDirErr := os.Stat(NodesDir(stateDir))
	if len(st.machines()) == 0 && len(targets) == 0 && !network.Exists(BridgeName) && nodesDirErr != nil {
		return false, nil
	}

	var errs []error
	t := time.Now()
	killed, err := killAll(targets)
	errs = append(errs, err)
	p.step("processes", t, fmt.Sprintf("%d killed", killed))

	t = time.Now()
	for _, tg := range targets {
		if tg.cgroupRoot == "" {
			continue // the load balancer has none; "" would mean every cgroup of the machine
		}
		if err := retry(func() error { return node.RemoveCgroupRoot(tg.cgroupRoot) }); err != nil {
			errs = append(errs, err)
		}
	}
	for _, tg := range targets {
		errs = append(errs, network.DeleteLink(ctx, tg.veth), network.DeleteNetNS(ctx, tg.netns))
	}
	for _, l := range network.Links(vethPrefix) {
		errs = append(errs, network.DeleteLink(ctx, l))
	}
	subnet, _ := netip.ParsePrefix(st.Subnet)
	errs = append(errs, network.Bridge{Name: st.Bridge, Addr: subnet}.Delete(ctx))
	errs = append(errs, restoreRunNetns(st))
	p.step("network", t, "netns, veths, bridge, firewall rule and cgroups removed")

	t = time.Now()
	errs = append(errs, unmountUnder(NodesDir(stateDir)))
	errs = append(errs, removeCreatedPaths(st.CreatedPaths))
	errs = append(errs, keepLogs(stateDir))
	for _, d := range []string{NodesDir(stateDir), KubectlCacheDir(stateDir)} {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("remove lab files: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return true, fmt.Errorf("lab down left something behind (state kept in %s; run `lab down` again): %w", StateFile(stateDir), err)
	}
	if err := os.Remove(StateFile(stateDir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return true, fmt.Errorf("remove lab state: %w", err)
	}
	p.step("files", t, "node directories removed, logs kept in "+LastLogsDir(stateDir))
	p.step("lab down", start, "done")
	return true, nil
}

// LastLogsDir keeps the last lab's node logs after Down.
func LastLogsDir(stateDir string) string { return filepath.Join(stateDir, "last-logs") }

// downTarget is one node to remove, from the state or found by its name.
type downTarget struct {
	name, netns, veth, cgroupRoot string
	pid                           int
	mntNS, netNS                  uint64
}

func targetOf(n NodeState) downTarget {
	return downTarget{name: n.Name, netns: n.Name, veth: n.HostVeth, cgroupRoot: n.Spec.CgroupRoot,
		pid: n.PID, mntNS: n.MntNS, netNS: n.NetNS}
}

func downTargets(st *State) []downTarget {
	var ts []downTarget
	seen := map[string]bool{}
	for _, n := range st.machines() {
		ts = append(ts, targetOf(*n))
		seen[n.Name] = true
	}
	// Leftovers of a lab whose state is lost: netns and cgroups carry the node's name.
	for _, ns := range network.NetNSs(node.Prefix) {
		if !seen[ns] {
			ts = append(ts, downTarget{name: ns, netns: ns, cgroupRoot: "/" + ns})
			seen[ns] = true
		}
	}
	for _, root := range node.CgroupRoots() {
		name := strings.TrimPrefix(root, "/")
		if !seen[name] {
			ts = append(ts, downTarget{name: name, cgroupRoot: root})
			seen[name] = true
		}
	}
	return ts
}

// killAll kills the supervisors first, so nothing is restarted, then sweeps until no process is
// left in any node's cgroups or namespaces.
func killAll(targets []downTarget) (int, error) {
	killed := 0
	for _, tg := range targets {
		// The PID may have been reused since `lab up`: only kill it if it is still in the node.
		if tg.pid > 0 && node.Alive(tg.pid) {
			if ino, err := node.NSInode(tg.pid, "mnt"); err == nil && ino == tg.mntNS {
				node.Kill([]int{tg.pid})
				killed++
			}
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Pods first, then what runs them (containerd, shims, kubelet), so nothing is restarted
		// in between.
		var pods, rest []int
		for _, tg := range targets {
			p, r := nodePIDs(tg)
			pods, rest = append(pods, p...), append(rest, r...)
		}
		if len(pods)+len(rest) == 0 {
			return killed, nil
		}
		if time.Now().After(deadline) {
			return killed, fmt.Errorf("processes of the lab survive SIGKILL: %v %v", pods, rest)
		}
		node.Kill(pods)
		node.Kill(rest)
		killed += len(pods) + len(rest)
		time.Sleep(100 * time.Millisecond)
	}
}

// nodePIDs lists the live processes of a node: those in its cgroups (the Pods), and the others in
// its mount namespace (containerd, kubelet, shims) or its network namespace (host-network
// containers).
func nodePIDs(tg downTarget) (pods, rest []int) {
	alive := func(pids []int) []int {
		var out []int
		for _, pid := range pids {
			if pid != os.Getpid() && node.Alive(pid) && !slices.Contains(out, pid) {
				out = append(out, pid)
			}
		}
		return out
	}
	if tg.cgroupRoot != "" {
		pods = alive(node.CgroupPIDs(tg.cgroupRoot))
	}
	var others []int
	if tg.mntNS != 0 {
		others = append(others, node.PIDsInNamespace("mnt", tg.mntNS)...)
	}
	netNS := tg.netNS
	if ino, err := node.FileInode(filepath.Join("/run/netns", tg.netns)); tg.netns != "" && err == nil {
		netNS = ino
	}
	if netNS != 0 {
		others = append(others, node.PIDsInNamespace("net", netNS)...)
	}
	for _, pid := range alive(others) {
		if !slices.Contains(pods, pid) {
			rest = append(rest, pid)
		}
	}
	return pods, rest
}

// restoreRunNetns undoes what `ip netns add` did to /run/netns if it was not so before the lab.
func restoreRunNetns(st *State) error {
	if entries, err := os.ReadDir("/run/netns"); err != nil || len(entries) > 0 {
		return nil // gone already, or somebody else's netns live there
	}
	if !st.RunNetnsMounted && isMountPoint("/run/netns") {
		if err := syscall.Unmount("/run/netns", syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount /run/netns: %w", err)
		}
	}
	if !st.RunNetnsExisted {
		if err := os.Remove("/run/netns"); err != nil {
			return fmt.Errorf("remove /run/netns: %w", err)
		}
	}
	return nil
}

// unmountUnder detaches whatever is mounted below dir in the root namespace, deepest first. Nodes
// mount only inside their own mount namespaces, so this normally finds nothing.
func unmountUnder(dir string) error {
	mounts, err := mountPoints()
	if err != nil {
		return err
	}
	var under []string
	for _, m := range mounts {
		if m == dir || strings.HasPrefix(m, dir+"/") {
			under = append(under, m)
		}
	}
	var errs []error
	for i := len(under) - 1; i >= 0; i-- {
		if err := syscall.Unmount(under[i], syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", under[i], err))
		}
	}
	return errors.Join(errs...)
}

// removeCreatedPaths removes the mount points the lab created, children first, and only while
// they are still empty: whatever someone else put there stays.
func removeCreatedPaths(paths []string) error {
	var errs []error
	for i := len(paths) - 1; i >= 0; i-- {
		p := paths[i]
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if isMountPoint(p) {
			errs = append(errs, fmt.Errorf("%s is still a mount point", p))
			continue
		}
		if !fi.IsDir() && fi.Size() > 0 {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
			errs = append(errs, fmt.Errorf("remove %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// keepLogs moves every node's log directory to LastLogsDir, replacing the previous lab's.
func keepLogs(stateDir string) error {
	entries, err := os.ReadDir(NodesDir(stateDir))
	if err != nil {
		return nil
	}
	last := LastLogsDir(stateDir)
	if err := os.RemoveAll(last); err != nil {
		return fmt.Errorf("remove old logs: %w", err)
	}
	if err := os.MkdirAll(last, 0o755); err != nil {
		return fmt.Errorf("keep logs: %w", err)
	}
	for _, e := range entries {
		nodeDir := filepath.Join(NodesDir(stateDir), e.Name())
		kept := filepath.Join(last, e.Name())
		if _, err := os.Stat(filepath.Join(nodeDir, "logs")); err == nil {
			if err := os.Rename(filepath.Join(nodeDir, "logs"), kept); err != nil {
				return fmt.Errorf("keep logs: %w", err)
			}
		}
		// The Pods' own logs (etcd's, the API server's) are what a failed e2e row needs most.
		pods := filepath.Join(nodeDir, "root", "var", "log", "pods")
		if _, err := os.Stat(pods); err != nil {
			continue
		}
		if err := os.MkdirAll(kept, 0o755); err != nil {
			return fmt.Errorf("keep logs: %w", err)
		}
		if err := os.Rename(pods, filepath.Join(kept, "pods")); err != nil {
			return fmt.Errorf("keep the Pods' logs: %w", err)
		}
	}
	return nil
}

func isMountPoint(path string) bool {
	mounts, err := mountPoints()
	return err == nil && slices.Contains(mounts, path)
}

// mountPoints lists the root namespace's mount points, in mount order.
func mountPoints() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 {
			out = append(out, unescapeMount(fields[4]))
		}
	}
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// retry runs f a few times, for removals that wait on the kernel finishing a kill.
func retry(f func() error) error {
	var err error
	for range 50 {
		if err = f(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}
