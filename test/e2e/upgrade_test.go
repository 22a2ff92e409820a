//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kubeboot.dev/kubeboot/internal/release"
)

// upgradeConfig writes a node's UpgradeConfiguration: the lab's images are imported, never pulled, and the
// node's kubelet configuration patch (its cgroupRoot) must survive the kubelet-config phase. kubeadm keeps
// neither in the cluster, so `upgrade` needs them again, from kubeadm's UpgradeConfiguration.
func upgradeConfig(t *testing.T, node string) string {
	t.Helper()
	patches := filepath.Join(nodeDir(node), "patches")
	cfg := fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: UpgradeConfiguration
apply:
  imagePullPolicy: Never
  patches: {directory: %[1]s}
node:
  imagePullPolicy: Never
  patches: {directory: %[1]s}
`, patches)
	file := filepath.Join(nodeDir(node), "e2e-upgrade.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// checkUpgradeSameRelease runs the upgrade commands against a real kubeboot cluster already at the target
// release: the upgrade to another release needs a lab with two releases, this checks the real wiring of every
// phase and the interop with upstream kubeadm. kubeboot's and kubeadm's `upgrade plan` read the cluster; `kubeboot
// upgrade apply` and then upstream `kubeadm upgrade apply` succeed on the control plane and leave every manifest
// as it was; `kubeboot upgrade node` succeeds on the worker; the cluster stays whole.
func checkUpgradeSameRelease(t *testing.T, cp, worker string) {
	ctx := t.Context()
	v := release.DefaultVersion()
	cfg := upgradeConfig(t, cp)
	for _, tool := range []string{kubeboot, kubeadm} {
		if out, err := inNode(ctx, cp, tool, "upgrade", "plan", v); err != nil {
			t.Errorf("%s upgrade plan %s: %v\n%s", filepath.Base(tool), v, err, out)
		} else if strings.Contains(out, "You can now apply the upgrade") {
			t.Errorf("%s upgrade plan offers an upgrade of a cluster at %s:\n%s", filepath.Base(tool), v, out)
		}
	}
	manifests := func() string {
		var b strings.Builder
		for _, c := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
			m, err := os.ReadFile(nodeHostPath(cp, "/etc/kubernetes/manifests/"+c+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			b.Write(m)
		}
		return b.String()
	}
	before := manifests()
	start := time.Now()
	out, err := inNode(ctx, cp, kubeboot, "upgrade", "apply", v, "-y", "--config", cfg)
	t.Logf("kubeboot upgrade apply %s (%s):\n%s", v, time.Since(start).Round(10*time.Millisecond), out)
	if err != nil || !strings.Contains(out, `[upgrade] SUCCESS! A control plane node of your cluster was upgraded to "`+v+`"`) {
		t.Fatalf("kubeboot upgrade apply: %v", err)
	}
	for _, c := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		if !strings.Contains(out, "Current and new manifests of "+c+" are equal, skipping upgrade") {
			t.Errorf("kubeboot upgrade apply to the running release did not find %s's manifest unchanged", c)
		}
	}
	start = time.Now()
	// Upstream kubeadm runs SystemVerification, which the lab's cgroup v1 fails, as init's preflight does.
	out, err = inNode(ctx, cp, kubeadm, "upgrade", "apply", v, "-y", "--config", cfg, "--ignore-preflight-errors=SystemVerification")
	if err != nil || !strings.Contains(out, "[upgrade] SUCCESS!") {
		t.Fatalf("upstream kubeadm upgrade apply on a kubeboot cluster: %v\n%s", err, out)
	}
	t.Logf("upstream kubeadm upgrade apply %s on the kubeboot cluster: done (%s)", v, time.Since(start).Round(10*time.Millisecond))
	if manifests() != before {
		t.Error("the static Pod manifests changed in an upgrade to the release they run")
	}
	out, err = inNode(ctx, worker, kubeboot, "upgrade", "node", "--config", upgradeConfig(t, worker))
	if err != nil || !strings.Contains(out, "[upgrade] The configuration for this node was successfully upgraded!") {
		t.Fatalf("kubeboot upgrade node on %s: %v\n%s", worker, err, out)
	}
	waitControlPlaneReady(t)
	checkNodesReady(t, cp, worker)
	if out, err := lab(ctx, "kubectl", "get", "--raw", "/readyz"); err != nil || strings.TrimSpace(out) != "ok" {
		t.Errorf("API after the upgrades: %v %q", err, out)
	}
}
