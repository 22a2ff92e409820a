package main

import (
	"context"
	"flag"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// benchHA times nothing to three Ready control planes behind the lab's load balancer, kubeboot (its control
// planes joining at once, taking turns for their etcd members) against upstream kubeadm (joining one after
// another, as its users must), in one run: each run brings a fresh lab up with one tool and takes it down again,
// the tools alternating. What counts is the lab's own timing from the start of init on the first control plane
// to every Node Ready; the steps before it (network, containerd, the image imports) are the same for both tools and
// are left out. By default every node imports its images before init (-images-first): the lab's machines share
// this machine's two cores, and the other nodes' imports during init slowed both tools' init to about 20 s.
func benchHA(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ha", flag.ContinueOnError)
	n := fs.Int("n", 2, "runs per tool")
	imagesFirst := fs.Bool("images-first", true, "import every node's images before init (lab up --images-first); false: the other nodes import while the first control plane inits, stealing its CPU on this machine")
	if err := fs.Parse(args); err != nil {
		return err
	}
	work, done, err := scratch()
	if err != nil {
		return err
	}
	defer done()
	b, err := newLabBench(ctx, work, nil)
	if err != nil {
		return err
	}
	totals := map[string][]time.Duration{}
	steps := map[string]map[string][]time.Duration{"kubeboot": {}, "kubeadm": {}}
	for i := 0; i < *n; i++ {
		for _, tool := range []string{"kubeboot", "kubeadm"} {
			up := []string{"up", "--control-planes", "3", "--workers", "0", "--bootstrapper", tool}
			if tool == "kubeboot" {
				up = append(up, "--concurrent-joins")
			}
			if *imagesFirst {
				up = append(up, "--images-first")
			}
			fmt.Fprintf(b.out, "run %d/%d %s: lab %s ...\n", i+1, *n, tool, strings.Join(up, " "))
			out, err := b.run(ctx, up...)
			if derr := b.down(ctx); derr != nil && err == nil {
				err = derr
			}
			if err != nil {
				return fmt.Errorf("lab up with %s: %v\n%s", tool, err, out)
			}
			s := labSteps(out)
			total, ok := s["lab up"]
			if !ok {
				return fmt.Errorf("no `lab up: done (DURATION)` in the output of lab up:\n%s", out)
			}
			bootstrap := total - s["network"] - s["nodes"] - s["images "+cpNode] - s["images first"]
			totals[tool] = append(totals[tool], bootstrap)
			fmt.Fprintf(b.out, "  %s (lab up %s)\n", ms(bootstrap), ms(total))
			for k, d := range s {
				switch {
				case k == "lab up" || k == "network" || k == "nodes" || strings.HasPrefix(k, "images ") || k == "load balancer":
				default:
					steps[tool][k] = append(steps[tool][k], d)
				}
			}
		}
	}
	kb, ka := totals["kubeboot"], totals["kubeadm"]
	imports := "every node's images imported before init"
	if !*imagesFirst {
		imports = "the other nodes importing their images while the first inits"
	}
	fmt.Fprintf(b.out, "\nnothing to 3 Ready control planes behind the lab's load balancer, from init on %s to every Node Ready (%s); %d runs each, alternating; median [min-max]\n", cpNode, imports, *n)
	fmt.Fprintf(b.out, "%-42s %-24s %-24s %s\n", "metric", "kubeboot (concurrent)", "kubeadm (serial)", "kubeboot/kubeadm")
	fmt.Fprintf(b.out, "%-42s %-24s %-24s %.2f (goal <= 0.5)\n", "7  three control planes Ready", stat(kb), stat(ka), float64(median(kb))/float64(median(ka)))
	for _, tool := range []string{"kubeboot", "kubeadm"} {
		overlap := ""
		if tool == "kubeboot" {
			overlap = "; its control-plane joins overlap"
		}
		fmt.Fprintf(b.out, "\n%s, the lab's steps (median of %d%s):\n", tool, *n, overlap)
		var names []string
		for k := range steps[tool] {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			fmt.Fprintf(b.out, "  %-45s %s\n", k, ms(median(steps[tool][k])))
		}
	}
	return nil
}

// labStepLine is one line of lab up's progress: "lab: NAME: WHAT (DURATION)".
var labStepLine = regexp.MustCompile(`(?m)^lab: ([^:]+): .*\(([0-9][^)]*)\)$`)

// labSteps reads lab up's progress lines into each step's duration.
func labSteps(out string) map[string]time.Duration {
	s := map[string]time.Duration{}
	for _, m := range labStepLine.FindAllStringSubmatch(out, -1) {
		if d, err := time.ParseDuration(m[2]); err == nil {
			s[m[1]] = d
		}
	}
	return s
}
