// Command lab runs a multi-node Kubernetes cluster on this machine, each node a set of namespaces
// with its own containerd and kubelet: lab up|down|status|exec|kubectl.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"kubeboot.dev/kubeboot/internal/release"
	"kubeboot.dev/kubeboot/lab/build"
	"kubeboot.dev/kubeboot/lab/cluster"
	"kubeboot.dev/kubeboot/lab/node"
)

const usage = `usage: lab COMMAND [flags]

  up [--control-planes N] [--workers N] [--bootstrapper kubeadm|kubeboot] [--worker-bootstrapper NAME]
     [--kubernetes-version V]
                         build what is missing, start the nodes, bootstrap, wait until every Node is Ready
                         with more than one control plane, kblab-lb (kubeboot loadbalancer) is the endpoint
  status                 the nodes, the load balancer and their processes, then kubectl get nodes -o wide
  exec NODE -- CMD...    run CMD inside a node (its network, mount and UTS namespaces)
  kubectl ARGS...        kubectl with the first control plane's admin kubeconfig
  kill NODE              kill every process of a node (or of kblab-lb), as a power cut would; files stay
  images --kubernetes-version V NODE...
                         build what is missing and import release V's images into the nodes (ahead of an upgrade)
  kubelet --kubernetes-version V NODE...
                         install release V's kubelet on the nodes and restart it, as a package upgrade would
  start NODE             start a killed node again, as after a power cut (what lives in /run is gone)
  down                   stop everything and remove every trace of the lab

Every command takes --state-dir (default ` + cluster.DefaultStateDir + `).
`

// exitCode carries a child's exit status through to os.Exit.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var code exitCode
	switch {
	case err == nil:
	case errors.As(err, &code):
		os.Exit(int(code))
	default:
		fmt.Fprintln(os.Stderr, "lab:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitCode(2)
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("lab "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateDir := fs.String("state-dir", cluster.DefaultStateDir, "where binaries, images and nodes live")
	switch cmd {
	case "up":
		return up(ctx, fs, stateDir, args, stdout)
	case "down":
		if err := fs.Parse(args); err != nil {
			return exitCode(2)
		}
		found, err := cluster.Down(ctx, *stateDir, stdout)
		if err == nil && !found {
			fmt.Fprintln(stdout, "lab: nothing to take down")
		}
		return err
	case "status":
		if err := fs.Parse(args); err != nil {
			return exitCode(2)
		}
		st, err := cluster.LoadState(*stateDir)
		if err != nil {
			return err
		}
		if err := cluster.PrintStatus(stdout, st); err != nil {
			return err
		}
		fmt.Fprintln(stdout)
		return kubectl(ctx, st, stdout, stderr, "get", "nodes", "-o", "wide")
	case "exec":
		if err := fs.Parse(args); err != nil {
			return exitCode(2)
		}
		rest := fs.Args()
		if len(rest) >= 2 && rest[1] == "--" {
			rest = append(rest[:1], rest[2:]...)
		}
		if len(rest) < 2 {
			return errors.New("usage: lab exec NODE -- CMD [ARGS...]")
		}
		st, err := cluster.LoadState(*stateDir)
		if err != nil {
			return err
		}
		n, err := st.Node(rest[0])
		if err != nil {
			return err
		}
		if !cluster.Running(n) {
			return fmt.Errorf("node %s is down: `lab start %s` brings it back", n.Name, n.Name)
		}
		c := node.Command(ctx, n.Spec, n.PID, rest[1:]...)
		c.Stdin, c.Stdout, c.Stderr = os.Stdin, stdout, stderr
		return childExit(c.Run())
	case "kill", "start":
		if err := fs.Parse(args); err != nil {
			return exitCode(2)
		}
		if fs.NArg() != 1 {
			return fmt.Errorf("usage: lab %s NODE", cmd)
		}
		st, err := cluster.LoadState(*stateDir)
		if err != nil {
			return err
		}
		start := time.Now()
		if cmd == "kill" {
			killed, err := cluster.Kill(st, fs.Arg(0))
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "lab: kill %s: %d processes killed (%s)\n", fs.Arg(0), killed, time.Since(start).Round(time.Millisecond))
			return nil
		}
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the lab binary: %w", err)
		}
		if err := cluster.Start(ctx, st, fs.Arg(0), self); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "lab: start %s: running again (%s)\n", fs.Arg(0), time.Since(start).Round(time.Millisecond))
		return nil
	case "images", "kubelet":
		version := fs.String("kubernetes-version", "", "the release whose images or kubelet to install")
		if err := fs.Parse(args); err != nil {
			return exitCode(2)
		}
		if *version == "" || fs.NArg() == 0 {
			return fmt.Errorf("usage: lab %s --kubernetes-version V NODE...", cmd)
		}
		return installRelease(ctx, cmd, *stateDir, *version, fs.Args(), stdout)
	case "kubectl":
		// Everything after the subcommand belongs to kubectl, except a leading --state-dir.
		if len(args) >= 2 && args[0] == "--state-dir" {
			*stateDir, args = args[1], args[2:]
		}
		st, err := cluster.LoadState(*stateDir)
		if err != nil {
			return err
		}
		return kubectl(ctx, st, stdout, stderr, args...)
	case "node-run":
		// Hidden: the init process of a node, started by `lab up` inside the node's namespaces.
		if len(args) != 1 {
			return errors.New("usage: lab node-run SPEC.json")
		}
		return node.Run(ctx, args[0])
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

func up(ctx context.Context, fs *flag.FlagSet, stateDir *string, args []string, stdout io.Writer) error {
	o := cluster.Options{Log: stdout}
	fs.IntVar(&o.ControlPlanes, "control-planes", 1, "number of control-plane nodes")
	fs.IntVar(&o.Workers, "workers", 2, "number of worker nodes")
	fs.StringVar(&o.Bootstrapper, "bootstrapper", "kubeboot", "kubeadm or kubeboot, for the control planes (and the workers unless --worker-bootstrapper)")
	fs.StringVar(&o.WorkerBootstrapper, "worker-bootstrapper", "", "kubeadm or kubeboot for the workers (default: --bootstrapper)")
	subnet := fs.String("subnet", "10.77.0.0/24", "the lab's node segment (bridge at .1)")
	repoRoot := fs.String("repo-root", "", "the kubeboot checkout to build from (default: found from the working directory)")
	fs.DurationVar(&o.ReadyTimeout, "ready-timeout", 5*time.Minute, "how long to wait for every Node to be Ready")
	fs.DurationVar(&o.CertificateValidityPeriod, "certificate-validity", 0, "the lifetime of the cluster's leaf certificates (certificateValidityPeriod; default: the bootstrapper's, a year)")
	fs.BoolVar(&o.NodeLocalEndpoint, "node-local-endpoint", false, "no load balancer: kubeboot's node-local API endpoint (127.0.0.1:7445) on every node (kubeboot only)")
	fs.BoolVar(&o.ImagesFirst, "images-first", false, "import every node's images before init rather than while the first control plane inits (the benches: on this machine an import takes CPU from the init)")
	fs.BoolVar(&o.ConcurrentJoins, "concurrent-joins", false, "start every control-plane join at once (kubeboot takes turns for the etcd members; kubeadm's concurrent joins are flaky)")
	fs.StringVar(&o.KubernetesVersion, "kubernetes-version", release.DefaultVersion(), "the Kubernetes release to build and run (kubeboot's release table gives etcd, CoreDNS and pause)")
	if err := fs.Parse(args); err != nil {
		return exitCode(2)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("lab up: unexpected arguments %v", fs.Args())
	}
	var err error
	if o.Subnet, err = netip.ParsePrefix(*subnet); err != nil {
		return fmt.Errorf("--subnet: %w", err)
	}
	o.StateDir = *stateDir
	if o.Self, err = os.Executable(); err != nil {
		return fmt.Errorf("find the lab binary: %w", err)
	}
	if *repoRoot == "" {
		if *repoRoot, err = findRepoRoot(); err != nil {
			return err
		}
	}
	// Refuse before building anything.
	if err := cluster.CheckNothingUp(o.StateDir); err != nil {
		return err
	}
	start := time.Now()
	if err := ensurePackages(ctx, stdout); err != nil {
		return err
	}
	bundle, err := build.Ensure(ctx, build.Options{StateDir: o.StateDir, RepoRoot: *repoRoot, KubernetesVersion: o.KubernetesVersion, Log: stdout})
	if err != nil {
		return err
	}
	o.BinDir = bundle.BinDir
	for _, img := range bundle.Images {
		o.Images = append(o.Images, cluster.Image{Ref: img.Ref, Tar: img.Tar})
	}
	st, err := cluster.Up(ctx, o)
	if errors.Is(err, cluster.ErrAlreadyUp) {
		return err
	}
	if err != nil {
		return fmt.Errorf("%w\nthe lab is left as it is for inspection (logs in %s/*/logs); remove it with `lab down`", err, cluster.NodesDir(o.StateDir))
	}
	fmt.Fprintf(stdout, "lab: up in %s\n\n", time.Since(start).Round(time.Millisecond))
	if err := kubectl(ctx, st, stdout, stdout, "get", "nodes", "-o", "wide"); err != nil {
		return err
	}
	cp, _ := st.FirstControlPlane()
	self := "lab"
	if o.Self != "" {
		self = o.Self
	}
	fmt.Fprintf(stdout, `
Use the cluster:
  %[1]s kubectl get pods -A
  %[1]s exec %[2]s -- ctr -n k8s.io containers ls
  %[1]s status
  export KUBECONFIG=%[3]s; %[4]s get nodes
Take it down, leaving nothing behind:
  %[1]s down
`, self, cp.Name, cp.AdminKubeconfig(), filepath.Join(st.BinDir, "kubectl"))
	return nil
}

// installRelease brings another release's images (what) or kubelet onto running nodes, building them first if
// needed, as an operator installs the next release's packages on each machine before and during an upgrade.
func installRelease(ctx context.Context, what, stateDir, version string, nodes []string, stdout io.Writer) error {
	st, err := cluster.LoadState(stateDir)
	if err != nil {
		return err
	}
	repoRoot, err := findRepoRoot()
	if err != nil {
		return err
	}
	bundle, err := build.Ensure(ctx, build.Options{StateDir: stateDir, RepoRoot: repoRoot, KubernetesVersion: version, Log: io.Discard})
	if err != nil {
		return err
	}
	var images []cluster.Image
	for _, img := range bundle.Images {
		images = append(images, cluster.Image{Ref: img.Ref, Tar: img.Tar})
	}
	for _, name := range nodes {
		start := time.Now()
		if what == "images" {
			count, err := cluster.ImportImages(ctx, st, name, images)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "lab: images %s: %d images of %s imported (%s)\n", name, count, version, time.Since(start).Round(time.Millisecond))
			continue
		}
		pid, err := cluster.UseKubelet(ctx, st, name, bundle.BinDir)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "lab: kubelet %s: %s started (pid %d, %s)\n", name, version, pid, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

func kubectl(ctx context.Context, st *cluster.State, stdout, stderr io.Writer, args ...string) error {
	c, err := cluster.Kubectl(ctx, st, args...)
	if err != nil {
		return err
	}
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, stdout, stderr
	return childExit(c.Run())
}

func childExit(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() > 0 {
		return exitCode(ee.ExitCode())
	}
	return err
}

// findRepoRoot walks up from the working directory to the kubeboot module's go.mod.
func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module kubeboot.dev/kubeboot\n")) {
			return d, nil
		}
		if d == "/" {
			return "", fmt.Errorf("no kubeboot checkout above %s: run lab from the repository or pass --repo-root", dir)
		}
	}
}

// debianPackages are what the nodes run on besides the lab's own build: runc (containerd itself is built, as
// kubelets from v1.36 on need containerd 2 and Debian 12 ships 1.6), the CNI plugins, and the tools kubeadm's
// preflight and kube-proxy expect on a node.
var debianPackages = []string{"runc", "containernetworking-plugins", "iptables", "conntrack",
	"socat", "ebtables", "ethtool", "util-linux", "iproute2"}

func ensurePackages(ctx context.Context, log io.Writer) error {
	var missing []string
	for _, p := range debianPackages {
		out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Status}", p).Output()
		if err != nil || strings.TrimSpace(string(out)) != "install ok installed" {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	start := time.Now()
	fmt.Fprintf(log, "lab: apt: installing %s\n", strings.Join(missing, " "))
	for _, args := range [][]string{{"update", "-q"}, append([]string{"install", "-y", "-q"}, debianPackages...)} {
		c := exec.CommandContext(ctx, "apt-get", args...)
		c.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := c.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, lastLines(string(out), 20))
		}
	}
	fmt.Fprintf(log, "lab: apt: installed (%s)\n", time.Since(start).Round(time.Millisecond))
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
