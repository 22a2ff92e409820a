package joinflow

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/copycerts"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/kubeconfig"
	"kubeboot.dev/kubeboot/internal/manifests"
	"kubeboot.dev/kubeboot/internal/nodeenv"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/reset"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/testutil/labbin"
	"kubeboot.dev/kubeboot/internal/workflow"
)

// freeLoopbackPair finds two addresses in 127.0.0.0/8 whose etcd ports (2379, 2380) are free: kubeadm's member
// URLs have fixed ports, so each member needs an address of its own.
func freeLoopbackPair(t *testing.T) (string, string) {
	t.Helper()
	free := func(ip string) bool {
		for _, port := range []string{"2379", "2380"} {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, port))
			if err != nil {
				return false
			}
			l.Close()
		}
		return true
	}
	var found []string
	start := 2 + rand.IntN(200)
	for i := 0; i < 50 && len(found) < 2; i++ {
		ip := fmt.Sprintf("127.0.%d.%d", 77, start+i)
		if free(ip) {
			found = append(found, ip)
		}
	}
	if len(found) < 2 {
		t.Skip("no two loopback addresses with free etcd ports")
	}
	return found[0], found[1]
}

// kubelet runs the etcd static Pod of a node as the kubelet would, from the manifest kubeboot wrote, with the node's
// paths under its root. The loopback client listener and the metrics listener are left out: both members share
// this machine's 127.0.0.1.
type staticEtcd struct {
	t    *testing.T
	root string
	cmd  *exec.Cmd
	log  bytes.Buffer
	// exited is closed when the process has ended.
	exited chan struct{}
}

func runStaticEtcd(t *testing.T, fsys nodefs.FS) *staticEtcd {
	t.Helper()
	b, err := fsys.ReadFile(staticpod.Path(staticpod.EtcdName))
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(b, &pod); err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, a := range pod.Spec.Containers[0].Command[1:] {
		k, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		switch k {
		case "data-dir", "cert-file", "key-file", "trusted-ca-file", "peer-cert-file", "peer-key-file", "peer-trusted-ca-file":
			v = fsys.Path(v)
		case "listen-client-urls":
			v = strings.Join(slices.DeleteFunc(strings.Split(v, ","), func(u string) bool { return strings.Contains(u, "//127.0.0.1:") }), ",")
		case "listen-metrics-urls":
			continue
		}
		args = append(args, "--"+k+"="+v)
	}
	// Faster elections than the defaults keep the test short; the protocol is the same.
	args = append(args, "--heartbeat-interval=50", "--election-timeout=500")
	s := &staticEtcd{t: t, root: fsys.Root, exited: make(chan struct{})}
	s.cmd = exec.Command(labbin.Path("", "etcd"), args...)
	s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("etcd of %s:\n%s", s.root, lastLines(s.log.String(), 15))
		}
	})
	return s
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestEtcdGrowsAndShrinksWithRealMembers joins a second control-plane node's etcd member to a real one-member
// etcd cluster with joinEtcd (learner, static Pod, wait, promotion), then removes it with reset's
// remove-etcd-member, and checks the member list after each step: two voting members, then the first one alone.
func TestEtcdGrowsAndShrinksWithRealMembers(t *testing.T) {
	labbin.Require(t, "", "etcd")
	ctx := t.Context()
	ip1, ip2 := freeLoopbackPair(t)
	cc := config.ClusterConfiguration{
		KubernetesVersion: "v1.37.2", ClusterName: "lab", ControlPlaneEndpoint: "cp.lab:6443",
		EncryptionAlgorithm: config.EncryptionAlgorithmECDSAP256,
		Networking:          config.Networking{ServiceSubnet: "10.96.0.0/12", DNSDomain: "cluster.local"},
		Etcd:                config.Etcd{Local: &config.LocalEtcd{DataDir: "/var/lib/etcd"}},
	}
	node := func(name, ip string) (*config.Init, nodefs.FS) {
		cfg := &config.Init{Cluster: cc}
		cfg.Init.NodeRegistration.Name = name
		cfg.Init.LocalAPIEndpoint.AdvertiseAddress = ip
		if err := config.SetInitDefaults(cfg, config.Environment{Random: strings.NewReader(strings.Repeat("t", 64))}); err != nil {
			t.Fatal(err)
		}
		for _, d := range []*metav1.Duration{cfg.Init.Timeouts.EtcdAPICall, cfg.Init.Timeouts.ControlPlaneComponentHealthCheck, cfg.Init.Timeouts.KubernetesAPICall} {
			d.Duration = 30 * time.Second
		}
		return cfg, nodefs.FS{Root: filepath.Join(t.TempDir(), name)}
	}

	// The first control-plane node: its own certificates and the single-member etcd init writes.
	cfg1, fs1 := node("cp-1", ip1)
	if _, err := pki.EnsureAll(ctx, fs1, cfg1.ClusterPart(), cfg1.NodePart(), pki.SystemSource()); err != nil {
		t.Fatal(err)
	}
	if _, err := manifests.WriteLocalEtcd(ctx, fs1, cfg1.ClusterPart(), cfg1.NodePart()); err != nil {
		t.Fatal(err)
	}
	if err := fs1.MkdirAll("/var/lib/etcd", 0o700); err != nil {
		t.Fatal(err)
	}
	runStaticEtcd(t, fs1)
	tlsCfg, err := etcd.ClientTLS(fs1, "/etc/kubernetes/pki")
	if err != nil {
		t.Fatal(err)
	}
	ec, err := etcd.New(etcd.Options{Endpoints: []string{staticpod.EtcdClientURL(ip1)}, TLS: tlsCfg, CallTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	// The cluster a node joins has been up for a while: wait until the first member serves.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := ec.MemberList(ctx); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the first member does not serve: %v", err)
		}
	}

	// The joining node: the shared CAs as download-certs leaves them, its own certificates and admin.conf.
	cfg2, fs2 := node("cp-2", ip2)
	for _, f := range copycerts.Files("/etc/kubernetes/pki", nil) {
		b, err := fs1.ReadFile(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		if err := fs2.WriteFile(f.Path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pki.EnsureAll(ctx, fs2, cfg2.ClusterPart(), cfg2.NodePart(), pki.SystemSource()); err != nil {
		t.Fatal(err)
	}
	if _, err := kubeconfig.Ensure(ctx, fs2, cfg2.ClusterPart(), cfg2.NodePart(), "admin", pki.SystemSource()); err != nil {
		t.Fatal(err)
	}
	// The API server only tells where the members are, through the first member's Pod.
	client := fake.NewClientset(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "etcd-cp-1", Namespace: "kube-system",
		Labels:      map[string]string{"component": "etcd", "tier": "control-plane"},
		Annotations: map[string]string{staticpod.EtcdAdvertiseClientURLsAnnotation: staticpod.EtcdClientURL(ip1)}}})
	var out bytes.Buffer
	d := &Data{
		Env:       nodeenv.Env{FS: fs2, Out: &out},
		Cfg:       &config.Join{Join: config.JoinConfiguration{ControlPlane: &config.JoinControlPlane{LocalAPIEndpoint: cfg2.Init.LocalAPIEndpoint}}},
		NewClient: func(*clientcmdapi.Config) (kubernetes.Interface, error) { return client, nil },
		cluster:   &Cluster{Config: cc},
		cpJoin:    &controlPlaneJoin{cluster: cfg2.ClusterPart(), node: cfg2.NodePart()},
	}
	// The kubelet of the joining node: it starts etcd once etcd.yaml appears.
	started := make(chan *staticEtcd, 1)
	go func() {
		for !fs2.Exists(staticpod.Path(staticpod.EtcdName)) {
			if ctx.Err() != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		started <- runStaticEtcd(t, fs2)
	}()

	start := time.Now()
	err = (&workflow.Runner[*Data]{Phases: Phases(), Out: &out}).Run(ctx, d, workflow.Options{Only: "etcd-join"})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	etcd2 := <-started
	t.Logf("etcd-join took %s:\n%s", took.Round(time.Millisecond), out.String())

	statuses, err := ec.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range statuses {
		got = append(got, fmt.Sprintf("%s %s learner=%v healthy=%v", s.Name, s.PeerURL(), s.IsLearner, s.Healthy))
	}
	slices.Sort(got)
	want := []string{
		fmt.Sprintf("cp-1 %s learner=false healthy=true", staticpod.EtcdPeerURL(ip1)),
		fmt.Sprintf("cp-2 %s learner=false healthy=true", staticpod.EtcdPeerURL(ip2)),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("members after the join\n%q\nwant\n%q", got, want)
	}

	// reset on the joined node removes its member: no ghost is left, and its etcd stops by itself.
	rcfg := &config.ResetConfiguration{}
	config.SetResetDefaults(rcfg)
	rcfg.Timeouts.EtcdAPICall.Duration = 30 * time.Second
	var rout bytes.Buffer
	rd := &reset.Data{Env: nodeenv.Env{FS: fs2, Out: &rout}, Cfg: rcfg, Etcd: reset.OpenEtcd,
		// The member's loopback listener is left out here (see runStaticEtcd): reach it as under --rootfs.
		EtcdRemoteNode: true}
	if err := (&workflow.Runner[*reset.Data]{Phases: reset.Phases(), Out: &rout}).Run(ctx, rd, workflow.Options{Only: "remove-etcd-member"}); err != nil {
		t.Fatalf("%v\n%s", err, rout.String())
	}
	t.Logf("reset:\n%s", rout.String())
	members, err := ec.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 1 || members[0].Name != "cp-1" {
		t.Fatalf("members after the reset: %+v", members)
	}
	select {
	case <-etcd2.exited:
	case <-time.After(10 * time.Second):
		t.Error("the removed member's etcd still runs")
	}
}
