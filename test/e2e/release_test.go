//go:build e2e

package e2e

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"kubeboot.dev/kubeboot/internal/release"
)

// TestKubebootPreviousRelease brings up the oldest release kubeboot deploys (v1.36) with kubeboot's init and
// join, and checks that the cluster runs that release's components: every kubelet and kube-apiserver at its
// version, etcd and CoreDNS at its image tags, and DNS and Services working from the worker.
func TestKubebootPreviousRelease(t *testing.T) {
	r := release.Oldest()
	if r == release.Default() {
		t.Fatal("the release table has one release; this test needs an older one")
	}
	startLab(t, "--kubernetes-version", r.Version, "--control-planes", "1", "--workers", "1",
		"--bootstrapper", "kubeboot", "--worker-bootstrapper", "kubeboot")

	t.Run("nodes Ready at "+r.Version, func(t *testing.T) {
		checkNodesReady(t, cp1, "kblab-w1")
		var nodes corev1.NodeList
		kubectlJSON(t, &nodes, "get", "nodes", "-o", "json")
		for _, n := range nodes.Items {
			if v := n.Status.NodeInfo.KubeletVersion; v != r.Version {
				t.Errorf("node %s runs kubelet %s, want %s", n.Name, v, r.Version)
			}
		}
	})
	t.Run("static Pods and addons use the release's images", func(t *testing.T) {
		want := map[string]string{
			"component=etcd":           "registry.k8s.io/etcd:" + r.EtcdVersion,
			"component=kube-apiserver": "registry.k8s.io/kube-apiserver:" + r.Version,
		}
		for selector, image := range want {
			// A mirror Pod may be missing for a moment while the kubelet re-creates it (after its restarts).
			var pods corev1.PodList
			poll(t.Context(), time.Minute, func() bool {
				pods = corev1.PodList{}
				return kubectl(t.Context(), &pods, "-n", "kube-system", "get", "pods", "-l", selector, "-o", "json") == nil && len(pods.Items) > 0
			})
			if len(pods.Items) != 1 || pods.Items[0].Spec.Containers[0].Image != image {
				t.Errorf("%s: %d Pods, want one running %s: %+v", selector, len(pods.Items), image, pods.Items)
			}
		}
		var dns appsv1.Deployment
		kubectlJSON(t, &dns, "-n", "kube-system", "get", "deployment", "coredns", "-o", "json")
		if got, want := dns.Spec.Template.Spec.Containers[0].Image, "registry.k8s.io/coredns/coredns:"+r.CoreDNSVersion; got != want {
			t.Errorf("CoreDNS runs %s, want %s", got, want)
		}
	})
	t.Run("CoreDNS answers a Pod on the worker", func(t *testing.T) { checkDNSAndServiceIPAt(t, "kblab-w1", r.Version) })
}
