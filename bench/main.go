// Command bench measures kubeboot with whole-process wall times and prints the figures.
//
//	go run ./bench render [-n 5]   certs + kubeconfig + etcd + control-plane phases into a scratch root
//	go run ./bench lab [-n 3]      init and join, kubeboot next to upstream kubeadm on the same lab nodes (root)
//	go run ./bench upgrade [-n 2]  upgrade apply on one control plane, kubeboot next to upstream kubeadm (root)
//	go run ./bench ha [-n 2]       nothing to 3 Ready control planes, kubeboot next to upstream kubeadm (root)
//	go run ./bench upgrade-ha [-n 1]  failed writes during an HA upgrade, each tool on a cluster it made (root)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: bench render [-n N] | bench lab [-n N] [-joiners N] | bench upgrade [-n N] | bench ha [-n N] | bench upgrade-ha [-n N]")
	}
	switch args[0] {
	case "render":
		return render(ctx, args[1:])
	case "lab":
		return benchLab(ctx, args[1:])
	case "upgrade":
		return benchUpgrade(ctx, args[1:])
	case "ha":
		return benchHA(ctx, args[1:])
	case "upgrade-ha":
		return benchUpgradeHA(ctx, args[1:])
	default:
		return fmt.Errorf("unknown benchmark %q: known are render, lab, upgrade, ha, upgrade-ha", args[0])
	}
}

// render times the file-rendering phases of init, each as its own kubeboot process as a user would run them.
func render(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	n := fs.Int("n", 5, "runs per algorithm")
	if err := fs.Parse(args); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "kubeboot-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "kubeboot")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/kubeboot")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // as `make build` links it
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build kubeboot: %w", err)
	}
	phases := [][]string{{"certs", "all"}, {"kubeconfig", "all"}, {"etcd", "local"}, {"control-plane", "all"}}
	fmt.Printf("render: `kubeboot init phase certs all; kubeconfig all; etcd local; control-plane all` into a scratch root, %d runs each\n", *n)
	fmt.Printf("%-12s %10s %10s %10s\n", "algorithm", "median", "min", "max")
	for _, alg := range []string{"RSA-2048", "ECDSA-P256"} {
		cfg := filepath.Join(work, alg+".yaml")
		doc := fmt.Sprintf("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint: {advertiseAddress: 10.1.2.3}\nnodeRegistration: {name: bench-node}\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: %s\n", alg)
		if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
			return err
		}
		var times []time.Duration
		for i := 0; i < *n; i++ {
			root := filepath.Join(work, fmt.Sprintf("%s-%d", alg, i))
			start := time.Now()
			for _, p := range phases {
				args := append([]string{"init", "phase"}, p...)
				args = append(args, "--config", cfg, "--rootfs", root)
				cmd := exec.CommandContext(ctx, bin, args...)
				if out, err := cmd.CombinedOutput(); err != nil {
					return fmt.Errorf("kubeboot %v: %w\n%s", args, err, out)
				}
			}
			times = append(times, time.Since(start))
		}
		sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
		fmt.Printf("%-12s %10s %10s %10s\n", alg, ms(times[len(times)/2]), ms(times[0]), ms(times[len(times)-1]))
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond)) }
