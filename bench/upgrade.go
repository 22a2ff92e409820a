package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"kubeboot.dev/kubeboot/internal/release"
	"kubeboot.dev/kubeboot/lab/bootstrap"
)

// benchUpgrade times `upgrade apply` on a single control plane, kubeboot against upstream kubeadm, on the same
// cluster state: before each run cp1 is reset and made again by kubeboot init at the oldest release kubeboot
// deploys, with the next release's images imported; then one tool's `upgrade apply` to the default release is timed,
// the tools alternating run by run. The kubelet stays at the old release, as before a package upgrade.
func benchUpgrade(ctx context.Context, args []string) error {
	n, err := runsFlag("upgrade", args, 2)
	if err != nil {
		return err
	}
	from, to, err := upgradeReleases()
	if err != nil {
		return err
	}
	work, done, err := scratch()
	if err != nil {
		return err
	}
	defer done()
	// kubeboot is one binary for every release (lab up builds it into the release's directory); kubeadm is the
	// target release's, as its package would install it.
	kubeboot := filepath.Join(labState, "bin", from.Version, "kubeboot")
	b, down, err := startLab(ctx, work, map[string]string{"kubeboot": kubeboot, "kubeadm": filepath.Join(labState, "bin", to.Version, "kubeadm")},
		fmt.Sprintf("bench upgrade: bringing up 1 control plane at %s (kubeboot) ...", from.Version),
		"--control-planes", "1", "--workers", "0", "--bootstrapper", "kubeboot", "--kubernetes-version", from.Version)
	if err != nil {
		return err
	}
	defer down()
	if out, err := b.run(ctx, "images", "--kubernetes-version", to.Version, cpNode); err != nil {
		return fmt.Errorf("lab images: %v\n%s", err, out)
	}
	// The lab's init configuration of cp1, and the lab's UpgradeConfiguration (the e2e's too).
	nodeDir := filepath.Join(labState, "nodes", cpNode)
	initCfg := filepath.Join(nodeDir, "kubeboot-init.yaml")
	upgradeCfg := filepath.Join(nodeDir, "bench-upgrade.yaml")
	if err := os.WriteFile(upgradeCfg, bootstrap.UpgradeConfig(filepath.Join(nodeDir, "patches")), 0o600); err != nil {
		return err
	}
	// The cluster of the first run is the one lab up made; later runs make it again the same way.
	fresh := true
	walls := map[string][]time.Duration{}
	phases := map[string][]time.Duration{}
	for i := 0; i < n; i++ {
		for _, tool := range []string{"kubeboot", "kubeadm"} {
			if !fresh {
				if out, err := b.inNode(ctx, cpNode, b.tool["kubeboot"], "reset", "-f"); err != nil {
					return fmt.Errorf("reset %s: %v\n%s", cpNode, err, out)
				}
				if err := waitKubeletsStopped(ctx, cpNode); err != nil {
					return err
				}
				if out, err := b.inNode(ctx, cpNode, kubeboot, "init", "--config", initCfg); err != nil {
					return fmt.Errorf("kubeboot init at %s: %v\n%s", from.Version, err, out)
				}
			}
			fresh = false
			if err := waitSettled(ctx, b, 1); err != nil {
				return err
			}
			args := []string{b.tool[tool], "upgrade", "apply", to.Version, "-y", "--config", upgradeCfg}
			if tool == "kubeadm" {
				// kubeadm's SystemVerification fails on the lab's cgroup v1, as at init.
				args = append(args, "--ignore-preflight-errors=SystemVerification")
			}
			fmt.Fprintf(b.out, "run %d/%d %s: upgrade apply %s ...\n", i+1, n, tool, to.Version)
			start := time.Now()
			out, err := b.inNode(ctx, cpNode, args...)
			wall := time.Since(start)
			if err != nil || !strings.Contains(out, "[upgrade] SUCCESS!") {
				return fmt.Errorf("%s upgrade apply %s: %v\n%s", tool, to.Version, err, out)
			}
			walls[tool] = append(walls[tool], wall)
			fmt.Fprintf(b.out, "  %s\n", ms(wall))
			if tool == "kubeboot" {
				for name, d := range upgradeSteps(out) {
					phases[name] = append(phases[name], d)
				}
			}
		}
	}
	kb, ka := walls["kubeboot"], walls["kubeadm"]
	fmt.Fprintf(b.out, "\nupgrade apply %s -> %s on one control plane (%s), same cluster state, %d runs each, alternating; median [min-max]\n",
		from.Version, to.Version, cpNode, n)
	fmt.Fprintf(b.out, "%-42s %-24s %-24s %s\n", "metric", "kubeboot", "kubeadm", "kubeboot/kubeadm")
	fmt.Fprintf(b.out, "%-42s %-24s %-24s %.2f (goal <= 0.75)\n", "6  upgrade apply wall time", stat(kb), stat(ka), float64(median(kb))/float64(median(ka)))
	fmt.Fprintf(b.out, "\nkubeboot upgrade apply, per component (median of %d):\n", n)
	var names []string
	for k := range phases {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(b.out, "  %-45s %s\n", k, ms(median(phases[k])))
	}
	return nil
}

// upgradeReleases are the releases the upgrade benches go from and to: the oldest kubeboot deploys and the default.
func upgradeReleases() (from, to *release.Release, err error) {
	from, to = release.Oldest(), release.Default()
	if from == to {
		return nil, nil, errors.New("the release table has one release: nothing to upgrade to")
	}
	return from, to, nil
}

// waitSettled waits until the control plane answers and the four static Pods of each of its controlPlanes are
// Ready: the state both tools' upgrades start from, and the one they must leave.
func waitSettled(ctx context.Context, b *labBench, controlPlanes int) error {
	want := 4 * controlPlanes
	deadline := time.Now().Add(5 * time.Minute)
	for {
		out, err := b.run(ctx, "kubectl", "get", "pods", "-n", "kube-system", "-l", "tier=control-plane",
			"-o", `jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
		if err == nil && strings.Count(out, " True") == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the control plane's %d static Pods not all Ready after 5 minutes: %v\n%s", want, err, out)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// upgradeStep is the line kubeboot's upgrade prints once a component runs its new manifest.
var upgradeStep = regexp.MustCompile(`\[upgrade/staticpods\] Component "([^"]+)" upgraded successfully! \(([0-9.hms]+)\)`)

// upgradeSteps are the per-component durations kubeboot's upgrade apply printed.
func upgradeSteps(out string) map[string]time.Duration {
	res := map[string]time.Duration{}
	for _, l := range strings.Split(out, "\n") {
		if m := upgradeStep.FindStringSubmatch(l); m != nil {
			if d, err := time.ParseDuration(m[2]); err == nil {
				res[m[1]] = d
			}
		}
	}
	return res
}
