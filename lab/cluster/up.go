package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"kubeboot.dev/kubeboot/internal/release"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/lab/bootstrap"
	"kubeboot.dev/kubeboot/lab/build"
	"kubeboot.dev/kubeboot/lab/network"
	"kubeboot.dev/kubeboot/lab/node"
)

// Image is an image tar to import into every node, and the reference it carries.
type Image struct{ Ref, Tar string }

// Options configures Up. Zero values take the defaults noted.
type Options struct {
	StateDir string // DefaultStateDir
	BinDir   string // kubelet, kubectl, kubeadm, kubeboot...; required
	Images   []Image
	Self     string // the lab binary, re-executed as each node's init (`lab node-run`); required

	ControlPlanes      int    // 1
	Workers            int    // 2 (0 is allowed)
	Bootstrapper       string // kubeadm
	WorkerBootstrapper string // Bootstrapper

	Subnet            netip.Prefix // 10.77.0.0/24: the lab segment, bridge at .1
	PodCIDR           netip.Prefix // 10.244.0.0/16: node N's Pods get its N-th /24
	ServiceCIDR       netip.Prefix // 10.96.0.0/12
	KubernetesVersion string       // release.DefaultVersion(); BinDir and Images must be that release's
	ReadyTimeout      time.Duration
	// CertificateValidityPeriod: see bootstrap.Cluster; 0 keeps the bootstrapper's default.
	CertificateValidityPeriod time.Duration
	// ConcurrentJoins starts every control-plane join at once, as the workers' (kubeboot takes turns to add the
	// etcd members); otherwise they join one after another, as kubeadm needs.
	ConcurrentJoins bool
	// NodeLocalEndpoint runs several control planes with no load balancer: kubeboot's node-local API endpoint on
	// every node (127.0.0.1:7445), the first control plane's address as the controlPlaneEndpoint. kubeboot only.
	NodeLocalEndpoint bool
	// ImagesFirst imports every node's images before init, instead of importing the other nodes' images while the
	// first control plane inits: on a real cluster each machine pulls on its own CPUs and disk, while the lab's
	// machines share this one's, and an import (decompress, unpack) slows the first control plane's start by
	// seconds. The benches that compare the tools' bootstrap use it.
	ImagesFirst bool

	Log io.Writer
}

// Names of what the lab creates in the root namespace.
const (
	BridgeName = "kblab0"
	vethPrefix = "kbv-"
)

// The load balancer of a lab with several control planes: its name (kblab-lb), its address on the lab segment
// (10.77.0.5 by default) and the port of the endpoint and of every API server.
const (
	loadBalancerShort   = "lb"
	loadBalancerHostNum = 5
	apiServerPort       = 6443
)

// Defaults fills in the zero fields of o.
func (o *Options) Defaults() {
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	if o.ControlPlanes == 0 {
		o.ControlPlanes = 1
	}
	if o.Bootstrapper == "" {
		o.Bootstrapper = "kubeadm"
	}
	if o.WorkerBootstrapper == "" {
		o.WorkerBootstrapper = o.Bootstrapper
	}
	if !o.Subnet.IsValid() {
		o.Subnet = netip.MustParsePrefix("10.77.0.0/24")
	}
	if !o.PodCIDR.IsValid() {
		o.PodCIDR = netip.MustParsePrefix("10.244.0.0/16")
	}
	if !o.ServiceCIDR.IsValid() {
		o.ServiceCIDR = netip.MustParsePrefix("10.96.0.0/12")
	}
	if o.KubernetesVersion == "" {
		o.KubernetesVersion = release.DefaultVersion()
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 5 * time.Minute
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// ErrAlreadyUp is returned by Up when a lab (or what is left of one) is on the machine.
var ErrAlreadyUp = errors.New("a lab is already up")

// Up creates the lab's nodes, bootstraps a cluster on them and waits until every Node is Ready.
// On failure the state stays behind so that Down can clean up (and logs can be read).
func Up(ctx context.Context, o Options) (*State, error) {
	o.Defaults()
	if o.BinDir == "" || o.Self == "" {
		return nil, errors.New("lab up: Options.BinDir and Options.Self are required")
	}
	if o.ControlPlanes < 1 || o.Workers < 0 || o.ControlPlanes > 9 || o.Workers > 50 {
		return nil, fmt.Errorf("lab up: want 1-9 control planes and 0-50 workers, got %d and %d", o.ControlPlanes, o.Workers)
	}
	if o.NodeLocalEndpoint && (o.Bootstrapper != "kubeboot" || o.WorkerBootstrapper != "kubeboot") {
		return nil, errors.New("lab up: --node-local-endpoint is kubeboot's: use --bootstrapper kubeboot (and kubeboot workers)")
	}
	if err := CheckNothingUp(o.StateDir); err != nil {
		return nil, err
	}
	for _, p := range []netip.Prefix{o.Subnet, o.PodCIDR, o.ServiceCIDR} {
		if err := network.CheckFree(ctx, p); err != nil {
			return nil, fmt.Errorf("lab up: %w", err)
		}
	}
	st, err := plan(o)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(NodesDir(o.StateDir), 0o755); err != nil {
		return nil, fmt.Errorf("lab up: %w", err)
	}
	p := progress{w: o.Log}
	start := time.Now()

	t := time.Now()
	if err := createNetwork(ctx, st); err != nil {
		return st, fmt.Errorf("lab up: %w", err)
	}
	p.step("network", t, fmt.Sprintf("bridge %s %s, %d netns", st.Bridge, st.Gateway, len(st.machines())))

	t = time.Now()
	if err := startNodes(ctx, st, o.Self); err != nil {
		return st, fmt.Errorf("lab up: %w", err)
	}
	if lb := st.LoadBalancer; lb != nil {
		p.step("load balancer", t, fmt.Sprintf("%s accepting on %s for %s", lb.Name, lb.LoadBalancer.Listen, strings.Join(lb.LoadBalancer.Backends, ", ")))
	}
	p.step("nodes", t, "containerd running in "+strings.Join(nodeNames(st.Nodes), ", "))

	if err := bootstrapCluster(ctx, st, o, p); err != nil {
		return st, fmt.Errorf("lab up: %w", err)
	}

	t = time.Now()
	if err := WaitNodesReady(ctx, st, o.ReadyTimeout); err != nil {
		return st, fmt.Errorf("lab up: %w", err)
	}
	p.step("ready", t, fmt.Sprintf("%d Nodes Ready", len(st.Nodes)))
	st.Phase = "up"
	if err := st.Save(); err != nil {
		return st, err
	}
	p.step("lab up", start, "done")
	return st, nil
}

// CheckNothingUp fails with ErrAlreadyUp if a lab, or what is left of one, is on the machine.
func CheckNothingUp(stateDir string) error {
	hint := "run `lab down` first"
	if _, err := os.Stat(StateFile(stateDir)); err == nil {
		return fmt.Errorf("%w (state in %s): %s", ErrAlreadyUp, StateFile(stateDir), hint)
	}
	if network.Exists(BridgeName) {
		return fmt.Errorf("%w: bridge %s exists: %s", ErrAlreadyUp, BridgeName, hint)
	}
	if ns := network.NetNSs(node.Prefix); len(ns) > 0 {
		return fmt.Errorf("%w: netns %v exist: %s", ErrAlreadyUp, ns, hint)
	}
	if roots := node.CgroupRoots(); len(roots) > 0 {
		return fmt.Errorf("%w: cgroups %v exist: %s", ErrAlreadyUp, roots, hint)
	}
	if _, err := os.Stat(NodesDir(stateDir)); err == nil {
		return fmt.Errorf("%w: %s exists: %s", ErrAlreadyUp, NodesDir(stateDir), hint)
	}
	return nil
}

// plan names and numbers the nodes: kblab-cp1.. at .11.., kblab-w1.. at .21..; node k (counting from
// 1 over all nodes) gets the k-th /24 of the pod CIDR. With more than one control plane, the load balancer
// kblab-lb at .5 is the control-plane endpoint, forwarding to every control plane's API server.
func plan(o Options) (*State, error) {
	gw, err := network.Host(o.Subnet, 1)
	if err != nil {
		return nil, err
	}
	rel, err := release.For(o.KubernetesVersion)
	if err != nil {
		return nil, fmt.Errorf("lab up: %w", err)
	}
	st := &State{
		StateDir: o.StateDir, BinDir: o.BinDir, Bridge: BridgeName,
		Subnet: o.Subnet.Masked().String(), Gateway: gw.String(),
		PodCIDR: o.PodCIDR.String(), ServiceCIDR: o.ServiceCIDR.String(),
		KubernetesVersion: o.KubernetesVersion, Phase: "starting",
	}
	add := func(short string, role node.Role, hostNum, k int, bootstrapper string) error {
		ip, err := network.Host(o.Subnet, hostNum)
		if err != nil {
			return err
		}
		pods, err := network.Subnet(o.PodCIDR, k)
		if err != nil {
			return err
		}
		name := node.Prefix + short
		st.Nodes = append(st.Nodes, NodeState{Spec: node.Spec{
			Name: name, Role: role, IP: ip.String(), PrefixLen: o.Subnet.Bits(), Gateway: gw.String(),
			PodSubnet: pods.String(), Dir: filepath.Join(NodesDir(o.StateDir), name), BinDir: o.BinDir,
			PauseImage: build.PauseImage(rel), CgroupRoot: "/" + name, HostVeth: vethPrefix + short,
		}, Bootstrapper: bootstrapper})
		return nil
	}
	k := 1
	for i := 1; i <= o.ControlPlanes; i++ {
		if err := add(fmt.Sprintf("cp%d", i), node.ControlPlane, 10+i, k, o.Bootstrapper); err != nil {
			return nil, err
		}
		k++
	}
	for i := 1; i <= o.Workers; i++ {
		if err := add(fmt.Sprintf("w%d", i), node.Worker, 20+i, k, o.WorkerBootstrapper); err != nil {
			return nil, err
		}
		k++
	}
	if o.ControlPlanes > 1 && !o.NodeLocalEndpoint {
		ip, err := network.Host(o.Subnet, loadBalancerHostNum)
		if err != nil {
			return nil, err
		}
		lb := &node.LoadBalancerSpec{Listen: fmt.Sprintf("%s:%d", ip, apiServerPort), CAFile: st.Nodes[0].HostPath("/etc/kubernetes/pki/ca.crt")}
		for _, n := range st.Nodes {
			if n.Role == node.ControlPlane {
				lb.Backends = append(lb.Backends, fmt.Sprintf("%s:%d", n.IP, apiServerPort))
			}
		}
		name := node.Prefix + loadBalancerShort
		st.LoadBalancer = &NodeState{Spec: node.Spec{
			Name: name, Role: node.LoadBalancer, IP: ip.String(), PrefixLen: o.Subnet.Bits(), Gateway: gw.String(),
			Dir: filepath.Join(NodesDir(o.StateDir), name), BinDir: o.BinDir, HostVeth: vethPrefix + loadBalancerShort,
			LoadBalancer: lb,
		}}
	}
	return st, nil
}

func createNetwork(ctx context.Context, st *State) error {
	fi, err := os.Stat("/run/netns")
	st.RunNetnsExisted = err == nil && fi.IsDir()
	st.RunNetnsMounted = isMountPoint("/run/netns")
	if err := st.Save(); err != nil {
		return err
	}
	gw := netip.MustParseAddr(st.Gateway)
	subnet := netip.MustParsePrefix(st.Subnet)
	br := network.Bridge{Name: st.Bridge, Addr: netip.PrefixFrom(gw, subnet.Bits()), PodCIDR: netip.MustParsePrefix(st.PodCIDR)}
	if err := br.Create(ctx); err != nil {
		return err
	}
	for _, n := range st.machines() {
		if err := network.AddNetNS(ctx, n.Name); err != nil {
			return err
		}
		addr := netip.PrefixFrom(netip.MustParseAddr(n.IP), n.PrefixLen)
		if err := br.Attach(ctx, network.Attachment{NetNS: n.Name, HostVeth: n.HostVeth, Addr: addr}); err != nil {
			return err
		}
	}
	for _, n := range st.Nodes {
		if err := network.RejectUnmapped(ctx, n.Name, netip.MustParsePrefix(st.ServiceCIDR)); err != nil {
			return err
		}
		if err := br.RoutePods(ctx, netip.MustParsePrefix(n.PodSubnet), netip.MustParseAddr(n.IP)); err != nil {
			return err
		}
		for _, other := range st.Nodes {
			if other.Name == n.Name {
				continue
			}
			if err := network.AddRoute(ctx, n.Name, netip.MustParsePrefix(other.PodSubnet), netip.MustParseAddr(other.IP)); err != nil {
				return err
			}
		}
	}
	return nil
}

// startNodes prepares every node's directories, creates the mount points they need on the machine
// and the nodes' cgroups, and starts their init processes: the load balancer's first, as the first
// control plane's init already talks to the endpoint.
func startNodes(ctx context.Context, st *State, self string) error {
	if err := createMountPoints(st); err != nil {
		return err
	}
	machines := st.machines()
	if st.LoadBalancer != nil {
		machines = append([]*NodeState{st.LoadBalancer}, machines[:len(machines)-1]...)
	}
	var specs []node.Spec
	for _, n := range machines {
		specs = append(specs, n.Spec)
	}
	for _, n := range machines {
		if err := node.Prepare(n.Spec, specs); err != nil {
			return err
		}
		if n.CgroupRoot == "" {
			continue
		}
		if err := node.CreateCgroupRoot(n.Spec.CgroupRoot); err != nil {
			return err
		}
	}
	for _, n := range machines {
		started, err := node.Start(ctx, n.Spec, self, time.Minute)
		n.PID, n.MntNS, n.NetNS = started.PID, started.MntNS, started.NetNS
		if serr := st.Save(); serr != nil {
			return errors.Join(err, serr)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// createMountPoints makes every path a node binds over exist on the machine, recording what it
// had to create so that Down removes exactly that.
func createMountPoints(st *State) error {
	record := func(p string) error {
		st.CreatedPaths = append(st.CreatedPaths, p)
		return st.Save()
	}
	mkdirs := func(dir string) error {
		var missing []string
		for d := dir; d != "/"; d = filepath.Dir(d) {
			if _, err := os.Lstat(d); err == nil {
				break
			}
			missing = append(missing, d)
		}
		for i := len(missing) - 1; i >= 0; i-- {
			if err := record(missing[i]); err != nil {
				return err
			}
			if err := os.Mkdir(missing[i], 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("create mount point %s: %w", missing[i], err)
			}
		}
		return nil
	}
	for _, d := range node.BoundDirs {
		if err := mkdirs(d); err != nil {
			return err
		}
	}
	for _, f := range node.BoundFiles {
		if _, err := os.Lstat(f); err == nil {
			continue
		}
		if err := mkdirs(filepath.Dir(f)); err != nil {
			return err
		}
		if err := record(f); err != nil {
			return err
		}
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			return fmt.Errorf("create mount point %s: %w", f, err)
		}
	}
	return nil
}

// imagesFor returns the images a node of role runs: a worker gets no control-plane images (those of the static
// Pods, named as their components: staticpod.Names), which are two thirds of a release's bytes (an import of all
// of them took a worker 7 s alone, and 19 s on average beside an init in the e2e runs, competing with it for the
// disk and the CPU).
func imagesFor(role node.Role, images []Image) []Image {
	if role != node.Worker {
		return images
	}
	var out []Image
	for _, img := range images {
		repo, _, _ := strings.Cut(img.Ref[strings.LastIndex(img.Ref, "/")+1:], ":")
		if !slices.Contains(staticpod.Names(), repo) {
			out = append(out, img)
		}
	}
	return out
}

// importImages loads the image tars a node of its role runs (imagesFor) into the node's containerd, checks
// containerd lists them, and returns how many it imported.
func importImages(ctx context.Context, st *State, n NodeState, all []Image) (int, error) {
	images := imagesFor(n.Role, all)
	ctr := func(out *bytes.Buffer, args ...string) error {
		cmd := node.Command(ctx, n.Spec, n.PID, append([]string{"ctr", "-n", "k8s.io"}, args...)...)
		cmd.Stdout, cmd.Stderr = out, out
		return cmd.Run()
	}
	for _, img := range images {
		var out bytes.Buffer
		if err := ctr(&out, "images", "import", img.Tar); err != nil {
			return 0, fmt.Errorf("import %s into %s: %w: %s", img.Tar, n.Name, err, strings.TrimSpace(out.String()))
		}
	}
	var out bytes.Buffer
	if err := ctr(&out, "images", "ls", "-q"); err != nil {
		return 0, fmt.Errorf("list images of %s: %w: %s", n.Name, err, strings.TrimSpace(out.String()))
	}
	have := strings.Fields(out.String())
	for _, img := range images {
		if !slices.Contains(have, img.Ref) {
			return 0, fmt.Errorf("node %s: %s was imported but containerd has no image %s (it has %v)", n.Name, img.Tar, img.Ref, have)
		}
	}
	return len(images), nil
}

// bootstrapCluster imports the images into every node and bootstraps each node as soon as its
// images are in: the first control plane's init overlaps the other nodes' imports.
func bootstrapCluster(ctx context.Context, st *State, o Options, p progress) error {
	token, err := bootstrap.NewToken()
	if err != nil {
		return err
	}
	c := bootstrap.Cluster{
		KubernetesVersion: st.KubernetesVersion,
		PodSubnet:         st.PodCIDR,
		ServiceSubnet:     st.ServiceCIDR,
		Token:             token,

		CertificateValidityPeriod: o.CertificateValidityPeriod,
		NodeLocalAPIEndpoint:      o.NodeLocalEndpoint,
	}
	cp, err := st.FirstControlPlane()
	if err != nil {
		return err
	}
	if o.NodeLocalEndpoint && o.ControlPlanes > 1 {
		// No load balancer: the joins discover the cluster through the first control plane, and every node reaches
		// the API servers through its own endpoint.
		c.ControlPlaneEndpoint = fmt.Sprintf("%s:%d", cp.IP, apiServerPort)
		if c.CertificateKey, err = bootstrap.NewCertificateKey(); err != nil {
			return err
		}
	}
	if st.LoadBalancer != nil {
		// Every kubeconfig, the API servers' certificates and every join use the load balancer, so the
		// API stays reachable when a control plane goes away.
		c.ControlPlaneEndpoint = st.LoadBalancer.LoadBalancer.Listen
		if c.CertificateKey, err = bootstrap.NewCertificateKey(); err != nil {
			return err
		}
	}
	bs := map[string]bootstrap.Bootstrapper{}
	for _, n := range st.Nodes {
		if bs[n.Bootstrapper] == nil {
			b, err := bootstrap.New(n.Bootstrapper, st.BinDir)
			if err != nil {
				return err
			}
			bs[n.Bootstrapper] = b
		}
	}

	type importResult struct {
		done chan struct{}
		err  error
	}
	imported := map[string]*importResult{}
	for _, n := range st.Nodes {
		imported[n.Name] = &importResult{done: make(chan struct{})}
	}
	for _, n := range st.Nodes {
		r := imported[n.Name]
		go func() {
			defer close(r.done)
			// The first control plane's images go in alone: on a small machine the imports compete
			// for the disk, and its init is what everything else waits for.
			if n.Name != cp.Name {
				<-imported[cp.Name].done
			}
			t := time.Now()
			var count int
			if count, r.err = importImages(ctx, st, n, o.Images); r.err == nil {
				p.step("images "+n.Name, t, fmt.Sprintf("%d imported", count))
			}
		}()
	}
	waitImported := func(name string) error {
		<-imported[name].done
		return imported[name].err
	}
	// Every import is waited for, so that none still runs when Up returns.
	defer func() {
		for name := range imported {
			_ = waitImported(name)
		}
	}()

	if err := waitImported(cp.Name); err != nil {
		return err
	}
	if o.ImagesFirst && len(st.Nodes) > 1 {
		t := time.Now()
		for _, n := range st.Nodes {
			if err := waitImported(n.Name); err != nil {
				return err
			}
		}
		p.step("images first", t, "every node's images imported before init")
	}
	t := time.Now()
	join, err := bs[cp.Bootstrapper].Init(ctx, target(st, cp), c)
	if err != nil {
		return err
	}
	p.step(cp.Bootstrapper+" init "+cp.Name, t, "control plane up")
	if len(st.Nodes) == 1 {
		return nil
	}
	// kubeadm join retries discovery every 5 s until the controller-manager has signed
	// cluster-info for the token; joining once it has saves those retries.
	t = time.Now()
	if err := waitClusterInfoSigned(ctx, st, token, 2*time.Minute); err != nil {
		return err
	}
	p.step("cluster-info signed", t, "ready for joins")

	var cps, workers []NodeState
	for _, n := range st.Nodes {
		switch {
		case n.Name == cp.Name:
		case n.Role == node.ControlPlane:
			cps = append(cps, n)
		default:
			workers = append(workers, n)
		}
	}
	// Workers join in parallel with each other and with the control planes; control planes join
	// one at a time, as each adds an etcd member and etcd takes one learner at a time, unless
	// ConcurrentJoins (kubeboot's joins take turns for that themselves).
	// Both tools' control-plane joins find etcd through the etcd mirror Pods; upstream kubeadm gives up after
	// timeouts.kubernetesAPICall (1m), so the lab waits for the first one before kubeadm's (once, timed as a step
	// of its own, which counts in kubeadm's lab up time). kubeboot's join waits for it itself.
	var etcdPodOnce sync.Once
	var etcdPodErr error
	join1 := func(n NodeState, controlPlane bool) error {
		if err := waitImported(n.Name); err != nil {
			return err
		}
		if controlPlane && n.Bootstrapper == "kubeadm" {
			etcdPodOnce.Do(func() {
				t := time.Now()
				if etcdPodErr = waitEtcdMirrorPod(ctx, st, cp.Name, 3*time.Minute); etcdPodErr == nil {
					p.step("etcd mirror Pod of "+cp.Name, t, "in the API, for kubeadm's control-plane joins")
				}
			})
			if etcdPodErr != nil {
				return etcdPodErr
			}
		}
		t := time.Now()
		if err := bs[n.Bootstrapper].Join(ctx, target(st, n), c, join, controlPlane); err != nil {
			return err
		}
		what := " join "
		if controlPlane {
			what = " join --control-plane "
		}
		p.step(n.Bootstrapper+what+n.Name, t, "joined")
		return nil
	}
	if o.ConcurrentJoins {
		return forEach(append(cps, workers...), func(n NodeState) error { return join1(n, n.Role == node.ControlPlane) })
	}
	cpErr := make(chan error, 1)
	go func() {
		for _, n := range cps {
			if err := join1(n, true); err != nil {
				cpErr <- err
				return
			}
		}
		cpErr <- nil
	}()
	werr := forEach(workers, func(n NodeState) error { return join1(n, false) })
	return errors.Join(<-cpErr, werr)
}

// target is how a bootstrapper runs commands in a node: nsenter into its namespaces.
func target(st *State, n NodeState) bootstrap.Target {
	return bootstrap.Target{
		Spec: n.Spec,
		Run: func(ctx context.Context, out io.Writer, args ...string) error {
			cmd := node.Command(ctx, n.Spec, n.PID, args...)
			cmd.Stdout, cmd.Stderr = out, out
			return cmd.Run()
		},
	}
}

// forEach runs f for every node concurrently and joins their errors.
func forEach(nodes []NodeState, f func(NodeState) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Go(func() { errs[i] = f(n) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func nodeNames(nodes []NodeState) []string {
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	return names
}

// Kubectl runs the lab's kubectl with the first control plane's admin kubeconfig.
func Kubectl(ctx context.Context, st *State, args ...string) (*exec.Cmd, error) {
	cp, err := st.FirstControlPlane()
	if err != nil {
		return nil, err
	}
	// Its discovery cache goes with the lab, not into the caller's ~/.kube.
	full := []string{"--kubeconfig", cp.AdminKubeconfig(), "--cache-dir", KubectlCacheDir(st.StateDir)}
	if server := st.apiServerWithoutLoadBalancer(); server != "" {
		full = append(full, "--server", server)
	}
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(st.BinDir, "kubectl"), full...)
	return cmd, nil
}

// apiServerWithoutLoadBalancer is, in a lab with several control planes and no load balancer (the node-local API
// endpoint), the API server of the first control plane that runs: admin.conf names the first control plane, which
// may have been killed. "" otherwise: admin.conf's server.
func (s *State) apiServerWithoutLoadBalancer() string {
	if s.LoadBalancer != nil {
		return ""
	}
	var cps []NodeState
	for _, n := range s.Nodes {
		if n.Role == node.ControlPlane {
			cps = append(cps, n)
		}
	}
	if len(cps) < 2 {
		return ""
	}
	for _, n := range cps {
		if Running(n) {
			return fmt.Sprintf("https://%s:%d", n.IP, apiServerPort)
		}
	}
	return ""
}

// KubectlCacheDir holds the lab kubectl's discovery and HTTP cache; Down removes it.
func KubectlCacheDir(stateDir string) string { return filepath.Join(stateDir, "kubectl-cache") }

type progress struct{ w io.Writer }

func (p progress) step(what string, start time.Time, result string) {
	fmt.Fprintf(p.w, "lab: %s: %s (%s)\n", what, result, time.Since(start).Round(time.Millisecond))
}
