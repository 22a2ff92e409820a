package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/certificate/csr"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/discovery"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/initflow"
	"kubeboot.dev/kubeboot/internal/joinflow"
	"kubeboot.dev/kubeboot/internal/kubeclient"
	"kubeboot.dev/kubeboot/internal/kubeconfig"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/release"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/token"
	"kubeboot.dev/kubeboot/internal/workflow"
)

const (
	labState = "/var/lib/kubeboot-lab"
	cpNode   = "kblab-cp1"
	cp2Node  = "kblab-cp2"
	cp3Node  = "kblab-cp3"
	wNode    = "kblab-w1"
	cpIP     = "10.77.0.11"
	wIP      = "10.77.0.21"
	endpoint = cpIP + ":6443"
)

// labBinDir holds the binaries of the release the lab runs by default (`lab up` without --kubernetes-version).
var labBinDir = filepath.Join(labState, "bin", release.DefaultVersion())

// labBench compares kubeboot with upstream kubeadm on the same lab nodes, alternating the tools run by run.
type labBench struct {
	lab  string // the lab binary
	out  io.Writer
	tool map[string]string
}

func benchLab(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("lab", flag.ContinueOnError)
	n := fs.Int("n", 3, "runs per tool")
	joiners := fs.Int("joiners", 20, "concurrent discovery + TLS bootstrap clients")
	alg := fs.String("encryption-algorithm", "", "ClusterConfiguration.encryptionAlgorithm for both tools' inits (default: the lab config's, kubeadm's RSA-2048)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "kubeboot-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	b, down, err := startLab(ctx, work, map[string]string{
		"kubeboot": filepath.Join(labBinDir, "kubeboot"), "kubeadm": filepath.Join(labBinDir, "kubeadm")},
		"bench lab: bringing up 2 control planes + 1 worker (kubeboot) ...",
		"--control-planes", "2", "--workers", "1", "--bootstrapper", "kubeboot", "--worker-bootstrapper", "kubeboot")
	if err != nil {
		return err
	}
	defer down()
	// The lab's own configs: cp1's is for an HA cluster (controlPlaneEndpoint on the lab's load balancer, a
	// certificate key), cp2's joins it as a control plane. Rows 1, 2 and 4 use a single control plane: the same
	// config without the endpoint and the key.
	haInitCfg := filepath.Join(labState, "nodes", cpNode, "kubeboot-init.yaml")
	cfgBytes, err := os.ReadFile(haInitCfg)
	if err != nil {
		return err
	}
	m := regexp.MustCompile(`token: "?([a-z0-9]{6}\.[a-z0-9]{16})`).FindSubmatch(cfgBytes)
	if m == nil {
		return fmt.Errorf("no bootstrap token in %s", haInitCfg)
	}
	tok := string(m[1])
	initCfg := filepath.Join(labState, "nodes", cpNode, "bench-init.yaml")
	single := regexp.MustCompile(`(?m)^\s*(controlPlaneEndpoint|certificateKey):.*\n`).ReplaceAll(cfgBytes, nil)
	if bytes.Equal(single, cfgBytes) {
		return fmt.Errorf("%s has no controlPlaneEndpoint: is it the lab's HA config?", haInitCfg)
	}
	if *alg != "" {
		kind := []byte("kind: ClusterConfiguration\n")
		if bytes.Count(single, kind) != 1 || bytes.Contains(single, []byte("encryptionAlgorithm:")) {
			return fmt.Errorf("-encryption-algorithm: %s has no single ClusterConfiguration without encryptionAlgorithm to add it to", haInitCfg)
		}
		single = bytes.Replace(single, kind, append(kind, []byte("encryptionAlgorithm: "+*alg+"\n")...), 1)
		fmt.Fprintf(b.out, "bench lab: both tools' inits with encryptionAlgorithm: %s\n", *alg)
	}
	if err := os.WriteFile(initCfg, single, 0o600); err != nil {
		return err
	}
	cpJoinTemplate, err := os.ReadFile(filepath.Join(labState, "nodes", cp2Node, "kubeboot-join.yaml"))
	if err != nil {
		return err
	}

	samples := map[string]map[string][]time.Duration{}
	record := func(tool, metric string, d time.Duration) {
		if samples[metric] == nil {
			samples[metric] = map[string][]time.Duration{}
		}
		samples[metric][tool] = append(samples[metric][tool], d)
	}
	phaseTimes := map[string][]time.Duration{}
	cpJoinPhases := map[string][]time.Duration{}
	var floors []time.Duration
	var owns []ownInit
	for i := 0; i < *n; i++ {
		for _, tool := range []string{"kubeboot", "kubeadm"} {
			if err := b.resetAll(ctx); err != nil {
				return err
			}
			fmt.Fprintf(b.out, "run %d/%d %s: init ...\n", i+1, *n, tool)
			startUp, err := uptime()
			if err != nil {
				return err
			}
			start := time.Now()
			out, lines, err := b.inNodeStamped(ctx, start, cpNode, b.tool[tool], "init", "--config", initCfg)
			initWall := time.Since(start)
			if err != nil {
				return fmt.Errorf("%s init: %v\n%s", tool, err, out)
			}
			record(tool, "1a init wall time", initWall)
			if tool == "kubeboot" {
				for name, d := range parsePhases(out) {
					phaseTimes[name] = append(phaseTimes[name], d)
				}
				syncLoop, err := kubeletSyncLoop(cpNode, start)
				if err != nil {
					return err
				}
				o, err := ownInitTime(lines, initWall, syncLoop)
				if err != nil {
					return fmt.Errorf("%w\n%s", err, out)
				}
				owns = append(owns, o)
			}
			client, err := adminClient()
			if err != nil {
				return err
			}
			hash, err := caHash()
			if err != nil {
				return err
			}
			// The worker joins at once, as a script running init then join would.
			joinCfg, err := writeJoinConfig(tok, hash)
			if err != nil {
				return err
			}
			type readyResult struct {
				d   time.Duration
				err error
			}
			cpReadyCh := make(chan readyResult, 1)
			go func() {
				d, err := waitReady(ctx, client, cpNode, start)
				cpReadyCh <- readyResult{d, err}
			}()
			jstart := time.Now()
			out, err = b.inNode(ctx, wNode, b.tool[tool], "join", "--config", joinCfg)
			joinWall := time.Since(jstart)
			if err != nil {
				return fmt.Errorf("%s join right after init: %v\n%s", tool, err, out)
			}
			r := <-cpReadyCh
			cpReady, err := r.d, r.err
			if err != nil {
				return err
			}
			record(tool, "1b init to control-plane Node Ready", cpReady)
			record(tool, "2a join wall time, right after init", joinWall)
			wReady, err := waitReady(ctx, client, wNode, jstart)
			if err != nil {
				return err
			}
			record(tool, "2b join to Node Ready, right after init", wReady)
			// DNS from the worker, measured from the start of init: CoreDNS Ready, and a Pod on the worker that
			// resolves a Service name through it (kube-proxy on the worker must have programmed kube-dns).
			dns, err := b.waitDNS(ctx, client, wNode, start, startUp)
			if err != nil {
				return fmt.Errorf("%s: %w", tool, err)
			}
			record(tool, "5a init start to CoreDNS Ready", dns.ready)
			record(tool, "5a1 init start to CoreDNS /ready answering", dns.serving)
			record(tool, "5b init start to a worker Pod resolving", dns.resolved)
			record(tool, "5b1 init start to kube-dns programmed on the worker", dns.programmed)
			record(tool, "5b2 init start to the worker Pod started", dns.probeStarted)
			record(tool, "5b3 init start to the worker Pod Succeeded in the API", dns.succeeded)
			// The goal: DNS from a worker at most 10 s after init has ended, in every run.
			record(tool, "5c init end to a worker Pod resolving", dns.resolved-initWall)

			// The same join on a settled cluster: cluster-info is signed by now.
			if err := b.resetWorker(ctx, tool, client); err != nil {
				return err
			}
			jstart = time.Now()
			if out, err := b.inNode(ctx, wNode, b.tool[tool], "join", "--config", joinCfg); err != nil {
				return fmt.Errorf("%s join on a settled cluster: %v\n%s", tool, err, out)
			}
			record(tool, "2c join wall time, settled cluster", time.Since(jstart))
			wReady, err = waitReady(ctx, client, wNode, jstart)
			if err != nil {
				return err
			}
			record(tool, "2d join to Node Ready, settled cluster", wReady)
			if tool == "kubeboot" {
				f, err := b.floor(ctx)
				if err != nil {
					return err
				}
				floors = append(floors, f)
			}

			// A second control plane joins an HA cluster made by the same tool, once the cluster has settled.
			wall, ready, out, err := b.controlPlaneJoin(ctx, tool, haInitCfg, tok, cpJoinTemplate)
			if err != nil {
				return err
			}
			if tool == "kubeboot" {
				for name, d := range parsePhases(out) {
					cpJoinPhases[name] = append(cpJoinPhases[name], d)
				}
			}
			record(tool, "3a control-plane join wall time, settled", wall)
			record(tool, "3b control-plane join to Node Ready, settled", ready)
		}
	}

	fmt.Fprintf(b.out, "\nkubeboot vs upstream kubeadm %s, lab nodes %s + %s (+ %s for row 3), %d runs each, alternating; median [min-max]\n", release.DefaultVersion(), cpNode, wNode, cp2Node, *n)
	fmt.Fprintf(b.out, "%-42s %-24s %-24s %s\n", "metric", "kubeboot", "kubeadm", "kubeboot/kubeadm")
	var metrics []string
	for k := range samples {
		metrics = append(metrics, k)
	}
	sort.Strings(metrics)
	for _, k := range metrics {
		kb, ka := samples[k]["kubeboot"], samples[k]["kubeadm"]
		fmt.Fprintf(b.out, "%-42s %-24s %-24s %.2f\n", k, stat(kb), stat(ka), float64(median(kb))/float64(median(ka)))
	}
	fmt.Fprintf(b.out, "%-42s %-24s\n", "4  floor: kube-apiserver start to /readyz", stat(floors))
	if len(floors) > 0 {
		fmt.Fprintf(b.out, "   kubeboot init above the floor: %s (median init %s - median floor %s)\n",
			ms(median(samples["1a init wall time"]["kubeboot"])-median(floors)), ms(median(samples["1a init wall time"]["kubeboot"])), ms(median(floors)))
	}
	printOwn(b.out, owns)
	fmt.Fprintf(b.out, "\nkubeboot init phases (median of %d):\n", *n)
	var names []string
	for k := range phaseTimes {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return phaseOrder(order, names[i]) < phaseOrder(order, names[j]) })
	for _, k := range names {
		fmt.Fprintf(b.out, "  %-45s %s\n", k, ms(median(phaseTimes[k])))
	}

	fmt.Fprintf(b.out, "\nkubeboot join --control-plane phases (median of %d):\n", *n)
	names = names[:0]
	for k := range cpJoinPhases {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return phaseOrder(joinOrder, names[i]) < phaseOrder(joinOrder, names[j]) })
	for _, k := range names {
		fmt.Fprintf(b.out, "  %-45s %s\n", k, ms(median(cpJoinPhases[k])))
	}

	// Concurrency: many nodes' discovery and TLS bootstrap at once against the last kubeboot control plane.
	if err := b.resetAll(ctx); err != nil {
		return err
	}
	if out, err := b.inNode(ctx, cpNode, b.tool["kubeboot"], "init", "--config", initCfg); err != nil {
		return fmt.Errorf("kubeboot init for the concurrency run: %v\n%s", err, out)
	}
	return b.concurrentJoins(ctx, *joiners)
}

// runsFlag parses a lab bench's only flag, -n: the runs per tool.
func runsFlag(name string, args []string, def int) (int, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	n := fs.Int("n", def, "runs per tool")
	if err := fs.Parse(args); err != nil {
		return 0, err
	}
	return *n, nil
}

// scratch makes a bench's scratch directory; done removes it.
func scratch() (dir string, done func(), err error) {
	dir, err = os.MkdirTemp("", "kubeboot-bench-")
	if err != nil {
		return "", nil, err
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

// newLabBench builds the lab binary into work, refusing when a lab is up already: the bench brings up its own.
func newLabBench(ctx context.Context, work string, tool map[string]string) (*labBench, error) {
	b := &labBench{lab: filepath.Join(work, "lab"), out: os.Stdout, tool: tool}
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", b.lab, "./lab/cmd/lab").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build the lab: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(labState, "lab.json")); err == nil {
		return nil, errors.New("a lab is up: take it down first (bin/lab down); the bench brings up its own")
	}
	return b, nil
}

// down takes the lab down, even once ctx has ended.
func (b *labBench) down(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	if out, err := b.run(dctx, "down"); err != nil {
		return fmt.Errorf("lab down: %v\n%s", err, out)
	}
	return nil
}

// startLab builds the lab binary into work and brings a lab up with upArgs (newLabBench refuses when one is up); down
// takes it down again.
func startLab(ctx context.Context, work string, tool map[string]string, say string, upArgs ...string) (b *labBench, down func(), err error) {
	b, err = newLabBench(ctx, work, tool)
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintln(b.out, say)
	down = func() {
		if err := b.down(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	if out, err := b.run(ctx, append([]string{"up"}, upArgs...)...); err != nil {
		down() // a lab that came partly up
		return nil, nil, fmt.Errorf("lab up: %v\n%s", err, out)
	}
	return b, down, nil
}

func (b *labBench) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, b.lab, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (b *labBench) inNode(ctx context.Context, node string, args ...string) (string, error) {
	return b.run(ctx, append([]string{"exec", node, "--"}, args...)...)
}

// resetAll resets every node with kubeboot (reset is not what is measured; the second control plane first removes
// its etcd member) and waits for their kubelets to stop.
func (b *labBench) resetAll(ctx context.Context) error {
	for _, n := range []string{wNode, cp2Node, cpNode} {
		if out, err := b.inNode(ctx, n, b.tool["kubeboot"], "reset", "-f"); err != nil {
			return fmt.Errorf("reset %s: %v\n%s", n, err, out)
		}
	}
	return waitKubeletsStopped(ctx, wNode, cp2Node, cpNode)
}

// controlPlaneJoin makes an HA cluster with tool (init --upload-certs on cp1, the lab's load balancer as the
// endpoint), waits until it has settled (cluster-info signed for the token, cp1 Ready, its etcd mirror Pod), then times tool's
// join --control-plane on cp2: the command's wall time, and the time until cp2's Node is Ready.
func (b *labBench) controlPlaneJoin(ctx context.Context, tool, haInitCfg, tok string, joinTemplate []byte) (wall, ready time.Duration, out string, err error) {
	if err := b.resetAll(ctx); err != nil {
		return 0, 0, "", err
	}
	fmt.Fprintf(b.out, "  %s: init --upload-certs, then join --control-plane ...\n", tool)
	start := time.Now()
	if out, err := b.inNode(ctx, cpNode, b.tool[tool], "init", "--upload-certs", "--config", haInitCfg); err != nil {
		return 0, 0, "", fmt.Errorf("%s init --upload-certs: %v\n%s", tool, err, out)
	}
	client, err := adminClient()
	if err != nil {
		return 0, 0, "", err
	}
	if _, err := waitReady(ctx, client, cpNode, start); err != nil {
		return 0, 0, "", err
	}
	id, _, _ := strings.Cut(tok, ".")
	if err := waitSigned(ctx, client, []string{id}); err != nil {
		return 0, 0, "", err
	}
	// Both tools' control-plane joins find the etcd members through the etcd mirror Pods, which the kubelet creates
	// some seconds after init (0.6-3 s after cluster-info is signed, seen in the lab): settled includes them.
	ectx, cancel := context.WithTimeout(ctx, time.Minute)
	_, err = etcd.EndpointsFromPods(ectx, client)
	cancel()
	if err != nil {
		return 0, 0, "", fmt.Errorf("waiting for the etcd mirror Pod: %w", err)
	}
	hash, err := caHash()
	if err != nil {
		return 0, 0, "", err
	}
	file := filepath.Join(labState, "nodes", cp2Node, "bench-join.yaml")
	pin := regexp.MustCompile(`sha256:[0-9a-f]{64}`)
	if !pin.Match(joinTemplate) {
		return 0, 0, "", fmt.Errorf("no CA hash in %s's join config", cp2Node)
	}
	cfg := pin.ReplaceAll(joinTemplate, []byte(hash))
	if err := os.WriteFile(file, cfg, 0o600); err != nil {
		return 0, 0, "", err
	}
	jstart := time.Now()
	out, err = b.inNode(ctx, cp2Node, b.tool[tool], "join", "--config", file)
	if err != nil {
		return 0, 0, "", fmt.Errorf("%s join --control-plane: %v\n%s", tool, err, out)
	}
	wall = time.Since(jstart)
	ready, err = waitReady(ctx, client, cp2Node, jstart)
	return wall, ready, out, err
}

// waitSigned waits until cluster-info carries a signature for each token ID.
func waitSigned(ctx context.Context, admin kubernetes.Interface, ids []string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		cm, err := admin.CoreV1().ConfigMaps("kube-public").Get(ctx, "cluster-info", metav1.GetOptions{})
		signed := err == nil
		for _, id := range ids {
			signed = signed && cm.Data["jws-kubeconfig-"+id] != ""
		}
		if signed {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster-info not signed for %d token(s) after a minute (last error: %v)", len(ids), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (b *labBench) resetWorker(ctx context.Context, tool string, client kubernetes.Interface) error {
	if out, err := b.inNode(ctx, wNode, b.tool["kubeboot"], "reset", "-f"); err != nil {
		return fmt.Errorf("reset %s: %v\n%s", wNode, err, out)
	}
	// The kubelet must be gone before its Node is deleted, or it registers the Node again while it stops.
	if err := waitKubeletsStopped(ctx, wNode); err != nil {
		return err
	}
	if err := client.CoreV1().Nodes().Delete(ctx, wNode, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("delete Node %s: %w", wNode, err)
	}
	return nil
}

// waitKubeletsStopped waits until the lab's supervisor has stopped the nodes' kubelets (after reset removed
// config.yaml), so that the next init or join finds port 10250 free.
func waitKubeletsStopped(ctx context.Context, nodes ...string) error {
	deadline := time.Now().Add(time.Minute)
	for _, n := range nodes {
		for {
			if _, err := os.Stat(filepath.Join(labState, "nodes", n, "kubelet.pid")); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the kubelet of %s still runs a minute after reset", n)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// floor measures the kube-apiserver alone: the control plane's own binary and flags, on another port, against the
// running etcd, from process start to /readyz answering 200, timed inside the node.
func (b *labBench) floor(ctx context.Context) (time.Duration, error) {
	manifest, err := staticpod.Read(nodefs.FS{Root: filepath.Join(labState, "nodes", cpNode, "root")}, staticpod.APIServerName)
	if err != nil {
		return 0, err
	}
	command, err := manifest.Command()
	if err != nil {
		return 0, err
	}
	var flags []string
	for _, a := range command[1:] {
		if strings.HasPrefix(a, "--secure-port=") {
			continue
		}
		flags = append(flags, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	// Its own port, and no claim on the kubernetes Service's endpoints, so the running cluster is untouched.
	flags = append(flags, "--secure-port=16443", "--endpoint-reconciler-type=none")
	script := fmt.Sprintf(`start=$(date +%%s%%N)
%s/kube-apiserver %s >/tmp/kubeboot-floor.log 2>&1 &
pid=$!
i=0
until [ "$(curl -sk -o /dev/null -w '%%{http_code}' https://127.0.0.1:16443/readyz)" = 200 ]; do
  i=$((i+1)); if [ $i -gt 3000 ]; then kill $pid; echo "no /readyz after 60s" >&2; exit 1; fi
  sleep 0.02
done
end=$(date +%%s%%N)
kill $pid; wait $pid
echo $(( (end-start)/1000 ))`, labBinDir, strings.Join(flags, " "))
	out, err := b.inNode(ctx, cpNode, "sh", "-c", script)
	if err != nil {
		return 0, fmt.Errorf("floor: %v\n%s", err, out)
	}
	var us int64
	if _, err := fmt.Sscan(strings.TrimSpace(lastLine(out)), &us); err != nil {
		return 0, fmt.Errorf("floor: %q: %w", out, err)
	}
	return time.Duration(us) * time.Microsecond, nil
}

// concurrentJoins runs n nodes' worth of discovery + TLS bootstrap at once, each with its own token: fetch and
// verify cluster-info, then request a kubelet client certificate and wait for the controller-manager to sign it.
func (b *labBench) concurrentJoins(ctx context.Context, n int) error {
	admin, err := adminClient()
	if err != nil {
		return err
	}
	hash, err := caHash()
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(filepath.Join(labState, "nodes", cpNode, "root", config.DefaultCACertPath))
	if err != nil {
		return err
	}
	tokens := make([]token.Token, n)
	for i := range tokens {
		if tokens[i], err = token.Generate(); err != nil {
			return err
		}
		if err := token.Create(ctx, admin, config.BootstrapToken{Token: tokens[i].Value(), Description: "bench"}); err != nil {
			return err
		}
	}
	// cluster-info must be signed for every token before the clock starts, as for a settled cluster.
	ids := make([]string, n)
	for i, t := range tokens {
		ids[i] = t.ID
	}
	if err := waitSigned(ctx, admin, ids); err != nil {
		return err
	}
	errs := make([]error, n)
	took := make([]time.Duration, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := time.Now()
			errs[i] = bootstrapOne(ctx, tokens[i], hash, caPEM, fmt.Sprintf("bench-node-%02d", i))
			took[i] = time.Since(s)
		}()
	}
	wg.Wait()
	total := time.Since(start)
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			fmt.Fprintf(b.out, "  joiner %d: %v\n", i, err)
		}
	}
	fmt.Fprintf(b.out, "\nconcurrent discovery + TLS bootstrap: %d joiners, %d succeeded, all done in %s (per joiner median %s, max %s)\n",
		n, n-failed, ms(total), ms(median(took)), ms(maxOf(took)))
	if failed > 0 {
		return fmt.Errorf("%d of %d concurrent joiners failed", failed, n)
	}
	return nil
}

func bootstrapOne(ctx context.Context, tok token.Token, hash string, caPEM []byte, node string) error {
	if _, err := discovery.FetchClusterInfo(ctx, endpoint, tok, []string{hash}, false, time.Minute, discovery.Options{}); err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	// client-go's defaults: no request timeout, 5 requests a second.
	client, err := kubeclient.FromKubeconfig(kubeconfig.Bootstrap("https://"+endpoint, caPEM, tok.Value()), kubeclient.Options{})
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}}}, key)
	if err != nil {
		return err
	}
	pemCSR := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	name, uid, err := csr.RequestCertificate(client, pemCSR, "", certificatesv1.KubeAPIServerClientKubeletSignerName, nil,
		[]certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}, key)
	if err != nil {
		return fmt.Errorf("CSR: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	certPEM, err := csr.WaitForCertificate(wctx, client, name, uid)
	if err != nil {
		return fmt.Errorf("wait for the signed certificate: %w", err)
	}
	certs, err := certutil.ParseCertsPEM(certPEM)
	if err != nil || certs[0].Subject.CommonName != "system:node:"+node {
		return fmt.Errorf("signed certificate for the wrong subject: %v", err)
	}
	return nil
}

func adminClient() (kubernetes.Interface, error) {
	rc, err := kubeclient.LoadFile(filepath.Join(labState, "nodes", cpNode, "root", config.AdminKubeconfigFile))
	if err != nil {
		return nil, err
	}
	// A high rate limit and no request timeout, so that neither is what the bench measures.
	return kubeclient.New(rc, kubeclient.Options{QPS: 200, Burst: 400})
}

func caHash() (string, error) {
	b, err := os.ReadFile(filepath.Join(labState, "nodes", cpNode, "root", config.DefaultCACertPath))
	if err != nil {
		return "", err
	}
	certs, err := certutil.ParseCertsPEM(b)
	if err != nil {
		return "", err
	}
	return pki.DiscoveryHash(certs[0]), nil
}

func writeJoinConfig(tok, hash string) (string, error) {
	file := filepath.Join(labState, "nodes", wNode, "bench-join.yaml")
	doc := fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken: {apiServerEndpoint: %q, token: %q, caCertHashes: [%q]}
nodeRegistration:
  name: %s
  criSocket: unix:///run/containerd/containerd.sock
  imagePullPolicy: Never
  ignorePreflightErrors: [SystemVerification] # the lab machines run cgroup v1
  kubeletExtraArgs: [{name: node-ip, value: %s}]
patches: {directory: %s}
`, endpoint, tok, hash, wNode, wIP, filepath.Join(labState, "nodes", wNode, "patches"))
	return file, os.WriteFile(file, []byte(doc), 0o600)
}

// dnsProbe starts a lookup of a Service name every 100 ms, each a new nslookup with its own socket, until one is
// answered (at most a minute). A lookup whose query got no answer would wait for busybox's retry (2.5 s) and keep
// its conntrack entry; the next one started does neither, so the Pod learns within 100 ms that DNS works. It prints
// the kernel's uptime (/proc/uptime, the same clock inside the Pod as on the host) as it starts and as the first
// lookup is answered.
const dnsProbe = `apiVersion: v1
kind: Pod
metadata: {name: bench-dns, namespace: default}
spec:
  restartPolicy: Never
  nodeName: NODE
  terminationGracePeriodSeconds: 0
  containers:
  - name: probe
    image: kubeboot.lab/busybox:1
    imagePullPolicy: Never
    command:
    - sh
    - -c
    - |
      echo started $(cut -d" " -f1 /proc/uptime)
      i=0
      until [ -s /tmp/resolved ]; do
        i=$((i+1)); [ $i -le 600 ] || exit 1
        (nslookup kubernetes.default.svc.cluster.local >/dev/null 2>&1 && cut -d" " -f1 /proc/uptime >>/tmp/resolved) &
        sleep 0.1
      done
      echo resolved $(head -n 1 /tmp/resolved)
`

// probeLog reads dnsProbe's log: the uptimes at which it started and at which its first lookup was answered.
func probeLog(log string) (started, resolved time.Duration, err error) {
	seen := map[string]time.Duration{}
	for _, line := range strings.Split(log, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || (f[0] != "started" && f[0] != "resolved") {
			continue
		}
		d, err := time.ParseDuration(f[1] + "s")
		if err != nil {
			return 0, 0, fmt.Errorf("the DNS probe's log line %q: %w", line, err)
		}
		seen[f[0]] = d
	}
	started, okS := seen["started"]
	resolved, okR := seen["resolved"]
	if !okS || !okR {
		return 0, 0, fmt.Errorf("the DNS probe's log has no %q and %q lines: %q", "started", "resolved", log)
	}
	if resolved < started {
		return 0, 0, fmt.Errorf("the DNS probe's log says it resolved (%s) before it started (%s)", resolved, started)
	}
	return started, resolved, nil
}

// uptime is the kernel's uptime, the clock dnsProbe prints.
func uptime() (time.Duration, error) {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("/proc/uptime is empty")
	}
	return time.ParseDuration(f[0] + "s")
}

// kubeDNSEndpointRule is kube-proxy's DNAT to a ready endpoint of kube-dns's UDP port, in iptables-save's output.
var kubeDNSEndpointRule = regexp.MustCompile(`(?m)^-A KUBE-SEP-\S+ .*--comment "?kube-system/kube-dns:dns"? .*-j DNAT`)

// dnsTimes are the steps to DNS working from a worker Pod, each counted from the start of init.
type dnsTimes struct {
	// serving: a CoreDNS Pod's /ready (its readiness probe's target) first answers 200, asked through the API
	// server's Pod proxy; ready: the Deployment has all its replicas available, which waits for the kubelet to run
	// that probe (kubeadm's manifest gives it the default period, 10 s).
	serving, ready time.Duration
	// programmed: the worker's kube-proxy has a kube-dns endpoint in its NAT rules; succeeded: the API says the
	// probe Pod succeeded (after the kubelet has seen its container exit and reported it).
	programmed, succeeded time.Duration
	// probeStarted, resolved: the probe's container started, and its first lookup was answered, by the Pod's own
	// clock.
	probeStarted, resolved time.Duration
}

// waitDNS creates dnsProbe on node and returns the steps to it resolving a Service name (dnsTimes) since init
// started (at since, and at the kernel uptime sinceUp), each polled every 100 ms or read from the probe's log. The
// Pod is deleted afterwards.
func (b *labBench) waitDNS(ctx context.Context, c kubernetes.Interface, node string, since time.Time, sinceUp time.Duration) (dnsTimes, error) {
	var t dnsTimes
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict([]byte(strings.ReplaceAll(dnsProbe, "NODE", node)), &pod); err != nil {
		return t, err
	}
	pods := c.CoreV1().Pods(pod.Namespace)
	if _, err := pods.Create(ctx, &pod, metav1.CreateOptions{}); err != nil {
		return t, fmt.Errorf("create the DNS probe Pod: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		zero := int64(0)
		_ = pods.Delete(dctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		for dctx.Err() == nil {
			if _, err := pods.Get(dctx, pod.Name, metav1.GetOptions{}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	// Each step is polled in its own loop, so that a slow check (a request through the Pod proxy, an exec in the
	// node) does not delay the others.
	deadline := time.Now().Add(3 * time.Minute)
	poll := func(step *time.Duration, done func(ctx context.Context) (bool, error)) func() error {
		return func() error {
			for {
				ok, err := done(ctx)
				if err != nil {
					return err
				}
				if ok {
					*step = time.Since(since)
					return nil
				}
				if time.Now().After(deadline) {
					return errors.New("not done 3 minutes after init started")
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
	}
	steps := map[string]func() error{
		"CoreDNS /ready": poll(&t.serving, func(ctx context.Context) (bool, error) {
			list, err := c.CoreV1().Pods(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
			if err != nil {
				return false, nil
			}
			for _, p := range list.Items {
				if p.Status.PodIP == "" {
					continue
				}
				rctx, cancel := context.WithTimeout(ctx, time.Second)
				body, err := c.CoreV1().Pods(p.Namespace).ProxyGet("http", p.Name, "8181", "ready", nil).DoRaw(rctx)
				cancel()
				if err == nil && strings.TrimSpace(string(body)) == "OK" {
					return true, nil
				}
			}
			return false, nil
		}),
		"CoreDNS Ready": poll(&t.ready, func(ctx context.Context) (bool, error) {
			d, err := c.AppsV1().Deployments(metav1.NamespaceSystem).Get(ctx, "coredns", metav1.GetOptions{})
			return err == nil && d.Spec.Replicas != nil && d.Status.AvailableReplicas == *d.Spec.Replicas, nil
		}),
		"kube-dns in the worker's NAT rules": poll(&t.programmed, func(ctx context.Context) (bool, error) {
			// kube-proxy (iptables mode) jumps from a Service's chain to one KUBE-SEP chain per ready endpoint,
			// commented with the Service port's name.
			out, err := b.inNode(ctx, node, "iptables-save", "-t", "nat")
			return err == nil && kubeDNSEndpointRule.MatchString(out), nil
		}),
		"probe Pod succeeded": poll(&t.succeeded, func(ctx context.Context) (bool, error) {
			p, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
			switch {
			case err == nil && p.Status.Phase == corev1.PodSucceeded:
				return true, nil
			case err == nil && p.Status.Phase == corev1.PodFailed:
				return false, fmt.Errorf("the DNS probe on %s gave up after a minute of failed lookups", node)
			}
			return false, nil
		}),
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for name, run := range steps {
		wg.Go(func() {
			if err := run(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("DNS on %s, %s: %w", node, name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return t, err
	}
	log, err := pods.GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		return t, fmt.Errorf("the DNS probe's log: %w", err)
	}
	started, resolved, err := probeLog(string(log))
	if err != nil {
		return t, err
	}
	t.probeStarted, t.resolved = started-sinceUp, resolved-sinceUp
	return t, nil
}

// waitReady polls the Node every 50 ms and returns the time from since until it is Ready.
func waitReady(ctx context.Context, c kubernetes.Interface, name string, since time.Time) (time.Duration, error) {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					return time.Since(since), nil
				}
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("Node %s not Ready after 3 minutes (last error: %v)", name, err)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

var phaseLine = regexp.MustCompile(`^\[([a-z0-9/-]+)\] (?:all )?done in (\S+)$`)

func parsePhases(out string) map[string]time.Duration {
	res := map[string]time.Duration{}
	for _, l := range strings.Split(out, "\n") {
		m := phaseLine.FindStringSubmatch(strings.TrimSpace(l))
		if m == nil {
			continue
		}
		if d, err := time.ParseDuration(m[2]); err == nil {
			res[m[1]] = d
		}
	}
	return res
}

// order and joinOrder are the top-level phases of init and join, in the order the commands list them.
var (
	order     = topLevel(initflow.Phases())
	joinOrder = topLevel(joinflow.Phases())
)

func topLevel[D any](phases []workflow.Phase[D]) []string {
	var names []string
	for _, p := range phases {
		names = append(names, p.Name)
	}
	return names
}

// phaseOrder sorts phase names by their top-level phase's place in order.
func phaseOrder(order []string, p string) string {
	top, _, _ := strings.Cut(p, "/")
	for i, o := range order {
		if o == top {
			return fmt.Sprintf("%02d %s", i, p)
		}
	}
	return "99 " + p
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func maxOf(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

func stat(ds []time.Duration) string {
	if len(ds) == 0 {
		return "n/a"
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("%s [%s-%s]", ms(median(s)), ms(s[0]), ms(s[len(s)-1]))
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
