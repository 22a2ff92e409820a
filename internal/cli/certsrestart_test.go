package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"

	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/restart"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// fakeNode is the container runtime, the health endpoints and the cluster of a node whose kubelet starts a
// stopped container again at once and whose components are healthy; it records what --restart did.
type fakeNode struct {
	log     []string
	running map[string]int // component: attempt of its running container
	members []etcd.MemberStatus
	servers []restart.APIServer
}

func newFakeNode() *fakeNode {
	n := &fakeNode{running: map[string]int{}}
	for _, c := range restart.Order {
		n.running[c] = 0
	}
	for i, name := range []string{"cp-1", "cp-2", "cp-3"} {
		n.members = append(n.members, etcd.MemberStatus{Member: etcd.Member{ID: uint64(i + 1), Name: name,
			PeerURLs: []string{fmt.Sprintf("https://10.0.0.%d:2380", i+1)}}, Healthy: true})
		n.servers = append(n.servers, restart.APIServer{Name: "kube-apiserver-" + name, Endpoint: fmt.Sprintf("10.0.0.%d:6443", i+1), Self: i == 0, Ready: true})
	}
	return n
}

func (n *fakeNode) ListContainers(_ context.Context, labels map[string]string) ([]cri.Container, error) {
	c := labels[cri.LabelContainerName]
	return []cri.Container{{ID: fmt.Sprintf("%s-%d", c, n.running[c]), Name: c, State: cri.ContainerRunning}}, nil
}

func (n *fakeNode) StopContainer(_ context.Context, id string, _ time.Duration) error {
	n.log = append(n.log, "stop "+id)
	c := id[:strings.LastIndexByte(id, '-')]
	n.running[c]++
	return nil
}

func (n *fakeNode) Probe(context.Context, string) error { return nil }

func (n *fakeNode) EtcdMembers(context.Context) ([]etcd.MemberStatus, error) {
	n.log = append(n.log, "check etcd")
	return n.members, nil
}

func (n *fakeNode) APIServers(context.Context) ([]restart.APIServer, error) {
	n.log = append(n.log, "check API servers")
	return n.servers, nil
}

// renewDepsFor builds renew's effects at now, restarting through node (nil: --restart must not reach the node).
func renewDepsFor(t *testing.T, now time.Time, node *fakeNode) renewDeps {
	return renewDeps{
		now:    func() time.Time { return now },
		source: func() pki.Source { return pki.Source{Now: func() time.Time { return now }} },
		restarter: func(_ context.Context, n restartNode) (*restart.Restarter, func(), error) {
			if node == nil {
				t.Fatal("--restart reached for the node")
			}
			if n.certDir != "/etc/kubernetes/pki" || n.kubeconfig != "/etc/kubernetes/admin.conf" || n.timeout != restart.DefaultTimeout {
				t.Errorf("restart of %+v", n)
			}
			clock := now
			r := &restart.Restarter{Runtime: node, Probe: node, Cluster: node, Out: n.out, Interval: time.Millisecond,
				Now: func() time.Time { clock = clock.Add(2100 * time.Millisecond); return clock }}
			return r, func() { node.log = append(node.log, "done") }, nil
		},
	}
}

// runRenew runs `kubeboot certs renew args...` with deps.
func runRenew(t *testing.T, deps renewDeps, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := &cobra.Command{Use: "kubeboot", SilenceUsage: true, SilenceErrors: true}
	addGlobalFlags(root)
	certs := &cobra.Command{Use: "certs"}
	certs.AddCommand(newCertsRenewCmd(&out, deps))
	root.AddCommand(certs)
	root.SetArgs(append([]string{"certs", "renew"}, args...))
	root.SetOut(&out)
	err := root.ExecuteContext(t.Context())
	return out.String(), err
}

// withManifests puts a static Pod manifest of each component under root.
func withManifests(t *testing.T, root string, components ...string) {
	t.Helper()
	for _, c := range components {
		p := filepath.Join(root, staticpod.Path(c))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("apiVersion: v1\nkind: Pod\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// kubernetesFiles reads every file of the node's /etc/kubernetes.
func kubernetesFiles(t *testing.T, root string) map[string]string {
	t.Helper()
	files := map[string]string{}
	dir := filepath.Join(root, "etc/kubernetes")
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		files[strings.TrimPrefix(p, root)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func renewedLines(out string) int { return strings.Count(out, " renewed\n") }

func TestCertsRenewIfExpiresWithin(t *testing.T) {
	root, cfgFile := certsNode(t)
	made := time.Now()
	flags := []string{"--config", cfgFile, "--rootfs", root}

	t.Run("nothing due: one line, nothing else, no restart", func(t *testing.T) {
		before := kubernetesFiles(t, root)
		out, err := runRenew(t, renewDepsFor(t, made, nil), append([]string{"all", "--if-expires-within", "720h", "--restart"}, flags...)...)
		if err != nil {
			t.Fatal(err)
		}
		if want := "[renew] No certificate expires within 720h0m0s: nothing to renew\n"; out != want {
			t.Errorf("printed %q, want %q", out, want)
		}
		if d := cmp.Diff(before, kubernetesFiles(t, root)); d != "" {
			t.Errorf("files changed (-before +after):\n%s", d)
		}
	})

	// The apiserver certificate is renewed 100 days on; at 340 days, within 30 days, the others are due and it is not.
	if _, err := runRenew(t, renewDepsFor(t, made.Add(100*24*time.Hour), nil), append([]string{"apiserver"}, flags...)...); err != nil {
		t.Fatal(err)
	}
	t.Run("only what is due", func(t *testing.T) {
		fsys := nodefs.FS{Root: root}
		apiserver, _ := fsys.ReadFile("/etc/kubernetes/pki/apiserver.crt")
		out, err := runRenew(t, renewDepsFor(t, made.Add(340*24*time.Hour), nil), append([]string{"all", "--if-expires-within", "720h"}, flags...)...)
		if err != nil {
			t.Fatal(err)
		}
		if renewedLines(out) != 10 || strings.Contains(out, "serving the Kubernetes API renewed") || !strings.HasSuffix(out, renewAllDone) {
			t.Errorf("renewed %d, want the 10 but the apiserver's, then kubeadm's last line:\n%s", renewedLines(out), out)
		}
		if after, _ := fsys.ReadFile("/etc/kubernetes/pki/apiserver.crt"); string(after) != string(apiserver) {
			t.Error("the apiserver certificate, not due, was renewed")
		}
	})
	t.Run("one certificate, due", func(t *testing.T) {
		out, err := runRenew(t, renewDepsFor(t, made.Add(340*24*time.Hour), nil), append([]string{"apiserver", "--if-expires-within", "3001h"}, flags...)...)
		if err != nil || out != "certificate for serving the Kubernetes API renewed\n" {
			t.Errorf("printed %q, %v", out, err)
		}
	})
	t.Run("one certificate, not due", func(t *testing.T) {
		out, err := runRenew(t, renewDepsFor(t, made.Add(340*24*time.Hour), nil), append([]string{"front-proxy-client", "--if-expires-within", "1h"}, flags...)...)
		if err != nil || out != "[renew] No certificate expires within 1h0m0s: nothing to renew\n" {
			t.Errorf("printed %q, %v", out, err)
		}
	})
}

func TestCertsRenewRestart(t *testing.T) {
	now := time.Now()
	all := []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

	t.Run("all: every component, in order, each checked and healthy", func(t *testing.T) {
		root, cfgFile := certsNode(t)
		withManifests(t, root, all...)
		node := newFakeNode()
		out, err := runRenew(t, renewDepsFor(t, now, node), "all", "--restart", "--config", cfgFile, "--rootfs", root)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"check etcd", "check API servers", // before renewing
			"check etcd", "check API servers", "stop kube-apiserver-0", "stop etcd-0", "check API servers", "stop kube-controller-manager-0", "stop kube-scheduler-0", "done"}
		if d := cmp.Diff(want, node.log); d != "" {
			t.Errorf("restart (-want +got):\n%s", d)
		}
		wantTail := "super-admin renewed\n" +
			"[restart] kube-apiserver: stopped first, so that it finishes its requests before etcd, which it reads, restarts (2.1s)\n" +
			"[restart] etcd: restarted and healthy (2.1s)\n" +
			"[restart] kube-apiserver: restarted and healthy (8.4s)\n" +
			"[restart] kube-apiserver: Ready in the cluster (2.1s later)\n" +
			"[restart] kube-controller-manager: restarted and healthy (2.1s)\n" +
			"[restart] kube-scheduler: restarted and healthy (2.1s)\n"
		if renewedLines(out) != 11 || !strings.HasSuffix(out, wantTail) || strings.Contains(out, "You must restart") {
			t.Errorf("printed:\n%s\nwant 11 renewed, then:\n%s", out, wantTail)
		}
	})
	t.Run("one kubeconfig: its component alone, unchecked", func(t *testing.T) {
		root, cfgFile := certsNode(t)
		withManifests(t, root, all...)
		node := newFakeNode()
		out, err := runRenew(t, renewDepsFor(t, now, node), "scheduler.conf", "--restart", "--config", cfgFile, "--rootfs", root)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff([]string{"stop kube-scheduler-0", "done"}, node.log); d != "" {
			t.Errorf("restart (-want +got):\n%s", d)
		}
		if want := "certificate embedded in the kubeconfig file for the scheduler manager to use renewed\n[restart] kube-scheduler: restarted and healthy (2.1s)\n"; out != want {
			t.Errorf("printed %q, want %q", out, want)
		}
	})
	t.Run("admin.conf restarts nothing", func(t *testing.T) {
		root, cfgFile := certsNode(t)
		withManifests(t, root, all...)
		out, err := runRenew(t, renewDepsFor(t, now, nil), "admin.conf", "--restart", "--config", cfgFile, "--rootfs", root)
		want := "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself renewed\n" +
			"[restart] No component of this node reads a renewed certificate: nothing to restart\n"
		if err != nil || out != want {
			t.Errorf("printed %q, %v; want %q", out, err, want)
		}
	})
	t.Run("only the components whose manifest is on this node", func(t *testing.T) {
		root, cfgFile := certsNode(t)
		withManifests(t, root, "kube-apiserver", "kube-scheduler")
		node := newFakeNode()
		if _, err := runRenew(t, renewDepsFor(t, now, node), "all", "--restart", "--config", cfgFile, "--rootfs", root); err != nil {
			t.Fatal(err)
		}
		want := []string{"check API servers", "check API servers", "stop kube-apiserver-0", "check API servers", "stop kube-scheduler-0", "done"}
		if d := cmp.Diff(want, node.log); d != "" {
			t.Errorf("restart (-want +got):\n%s", d)
		}
	})
	t.Run("refused before renewing anything while another control plane is unhealthy", func(t *testing.T) {
		root, cfgFile := certsNode(t)
		withManifests(t, root, all...)
		node := newFakeNode()
		node.members[2].Healthy, node.members[2].Problem = false, "unreachable: dial tcp 10.0.0.3:2379: connect: connection refused"
		node.servers[2].Ready, node.servers[2].Problem = false, "its Pod is not Ready"
		before := kubernetesFiles(t, root)
		out, err := runRenew(t, renewDepsFor(t, now, node), "all", "--restart", "--config", cfgFile, "--rootfs", root)
		wantErr := "refusing to restart etcd, kube-apiserver, kube-controller-manager, kube-scheduler on this node: the rest of the control plane is not healthy: " +
			"etcd member cp-3 (https://10.0.0.3:2380) is not healthy: unreachable: dial tcp 10.0.0.3:2379: connect: connection refused; " +
			"API server kube-apiserver-cp-3 (10.0.0.3:6443) is not ready: its Pod is not Ready"
		if err == nil || err.Error() != wantErr || !errors.Is(err, restart.ErrUnsafe) || hint.Of(err) != renewRefusedHint {
			t.Fatalf("error:\n%v\nhint: %s\nwant:\n%s", err, hint.Of(err), wantErr)
		}
		if out != "" {
			t.Errorf("printed %q", out)
		}
		if d := cmp.Diff(before, kubernetesFiles(t, root)); d != "" {
			t.Errorf("files changed (-before +after):\n%s", d)
		}
		if d := cmp.Diff([]string{"check etcd", "check API servers", "done"}, node.log); d != "" {
			t.Errorf("restart (-want +got):\n%s", d)
		}
	})
}
