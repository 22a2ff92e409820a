package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/kubeclient"
	"kubeboot.dev/kubeboot/lab/bootstrap"
	"kubeboot.dev/kubeboot/lab/traffic"
)

// benchUpgradeHA upgrades an HA cluster (3 control planes and a worker behind the lab's load balancer) by one minor
// with each tool, on a cluster that tool made, while a client writes through the load balancer every 100 ms; it
// prints how many writes failed, side by side. Each tool runs its own upgrade the way its users do: `upgrade apply`
// on the first control plane, then `upgrade node` on the others and on the worker, each node's kubelet replaced
// after its upgrade (`lab kubelet`, as a package upgrade), one node at a time.
func benchUpgradeHA(ctx context.Context, args []string) error {
	n, err := runsFlag("upgrade-ha", args, 1)
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
	next := filepath.Join(labState, "bin", to.Version)
	b, err := newLabBench(ctx, work, map[string]string{"kubeboot": filepath.Join(next, "kubeboot"), "kubeadm": filepath.Join(next, "kubeadm")})
	if err != nil {
		return err
	}
	type result struct {
		counts traffic.Counts
		took   time.Duration
	}
	results := map[string][]result{}
	for i := 0; i < n; i++ {
		for _, tool := range []string{"kubeboot", "kubeadm"} {
			fmt.Fprintf(b.out, "run %d/%d %s: 3 control planes and a worker at %s, upgraded to %s ...\n", i+1, n, tool, from.Version, to.Version)
			c, took, err := b.upgradeHA(ctx, tool, from.Version, to.Version)
			if derr := b.down(ctx); derr != nil && err == nil {
				err = derr
			}
			if err != nil {
				return fmt.Errorf("%s: %w", tool, err)
			}
			if all := slices.Concat(c.Failed, c.LeaderChange); len(all) > 0 {
				fmt.Fprintf(b.out, "  failed writes (time after the first write: error):\n    %s\n", strings.Join(all, "\n    "))
			}
			fmt.Fprintf(b.out, "  %s; the upgrade to every node and control-plane Pod Ready took %s\n", c.Summary("the upgrade"), took.Round(100*time.Millisecond))
			results[tool] = append(results[tool], result{c, took})
		}
	}
	fmt.Fprintf(b.out, "\nHA upgrade %s -> %s of 3 control planes and a worker, each tool on a cluster it made, writes every %s through the load balancer; %d runs each\n",
		from.Version, to.Version, traffic.Interval, n)
	fmt.Fprintf(b.out, "%-34s %-30s %-30s\n", "metric", "kubeboot", "kubeadm")
	row := func(name string, f func(result) string) {
		cells := map[string][]string{}
		for tool, rs := range results {
			for _, r := range rs {
				cells[tool] = append(cells[tool], f(r))
			}
		}
		fmt.Fprintf(b.out, "%-34s %-30s %-30s\n", name, strings.Join(cells["kubeboot"], ", "), strings.Join(cells["kubeadm"], ", "))
	}
	row("writes failed / sent", func(r result) string { return fmt.Sprintf("%d / %d", r.counts.AllFailed(), r.counts.Sent) })
	row("  of them by etcd's leader change", func(r result) string { return fmt.Sprint(len(r.counts.LeaderChange)) })
	row("upgrade, to all Ready", func(r result) string { return r.took.Round(100 * time.Millisecond).String() })
	return nil
}

// upgradeHA brings up an HA lab at version from, made by tool, and upgrades it to version to with tool while writes
// go through the load balancer. The lab stays up (the caller takes it down).
func (b *labBench) upgradeHA(ctx context.Context, tool, from, to string) (traffic.Counts, time.Duration, error) {
	up := []string{"up", "--kubernetes-version", from, "--control-planes", "3", "--workers", "1",
		"--bootstrapper", tool, "--worker-bootstrapper", tool}
	if tool == "kubeboot" {
		up = append(up, "--concurrent-joins")
	}
	if out, err := b.run(ctx, up...); err != nil {
		return traffic.Counts{}, 0, fmt.Errorf("lab up: %v\n%s", err, out)
	}
	cps := []string{cpNode, cp2Node, cp3Node}
	nodes := append(slices.Clone(cps), wNode)
	if out, err := b.run(ctx, append([]string{"images", "--kubernetes-version", to}, nodes...)...); err != nil {
		return traffic.Counts{}, 0, fmt.Errorf("lab images: %v\n%s", err, out)
	}
	if err := waitSettled(ctx, b, len(cps)); err != nil {
		return traffic.Counts{}, 0, err
	}
	// admin.conf names the load balancer; each write gives up after 10 s, as a client would.
	rc, err := kubeclient.LoadFile(filepath.Join(labState, "nodes", cpNode, "root", config.AdminKubeconfigFile))
	if err != nil {
		return traffic.Counts{}, 0, err
	}
	cs, err := kubeclient.New(rc, kubeclient.Options{Timeout: 10 * time.Second})
	if err != nil {
		return traffic.Counts{}, 0, err
	}
	stop := traffic.Start(ctx, cs, "bench-upgrade")
	defer stop()
	start := time.Now()
	for i, node := range nodes {
		cfg := filepath.Join(labState, "nodes", node, "bench-upgrade.yaml")
		if err := os.WriteFile(cfg, bootstrap.UpgradeConfig(filepath.Join(labState, "nodes", node, "patches")), 0o600); err != nil {
			return traffic.Counts{}, 0, err
		}
		args := []string{b.tool[tool], "upgrade", "node", "--config", cfg}
		if i == 0 {
			args = []string{b.tool[tool], "upgrade", "apply", to, "-y", "--config", cfg}
		}
		if tool == "kubeadm" {
			// kubeadm's SystemVerification fails on the lab's cgroup v1, as at init.
			args = append(args, "--ignore-preflight-errors=SystemVerification")
		}
		t := time.Now()
		out, err := b.inNode(ctx, node, args...)
		if err != nil {
			return traffic.Counts{}, 0, fmt.Errorf("%s on %s: %v\n%s", strings.Join(args[1:3], " "), node, err, out)
		}
		fmt.Fprintf(b.out, "  %s %s on %s: %s\n", tool, strings.Join(args[1:3], " "), node, time.Since(t).Round(100*time.Millisecond))
		if out, err := b.run(ctx, "kubelet", "--kubernetes-version", to, node); err != nil {
			return traffic.Counts{}, 0, fmt.Errorf("lab kubelet %s: %v\n%s", node, err, out)
		}
	}
	for _, node := range nodes {
		if _, err := waitReady(ctx, cs, node, start); err != nil {
			return traffic.Counts{}, 0, err
		}
	}
	if err := waitSettled(ctx, b, len(cps)); err != nil {
		return traffic.Counts{}, 0, err
	}
	took := time.Since(start)
	return stop(), took, nil
}
