package config

import (
	"strings"
	"testing"
)

func TestMigrateV1beta3ToV1beta4(t *testing.T) {
	in := `apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
networking:
  podSubnet: 10.244.0.0/16
apiServer:
  timeoutForControlPlane: 3m
  extraArgs:
    audit-log-maxage: "30"
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: 10.0.0.10:6443
    token: abcdef.0123456789abcdef
    unsafeSkipCAVerification: true
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
`
	out, err := Migrate([]byte(in), testEnv())
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	for _, want := range []string{
		"\nkind: InitConfiguration\n",
		"\nkind: ClusterConfiguration\n",
		"\nkind: JoinConfiguration\n",
		"  - name: audit-log-maxage\n    value: \"30\"\n", // v1beta3's map became v1beta4's list
		"controlPlaneComponentHealthCheck: 3m0s",          // moved from apiServer.timeoutForControlPlane
		"  podSubnet: 10.244.0.0/16\n",
		"  name: cp-1\n", // defaulted from the hostname, lowercased
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "apiVersion: kubeadm.k8s.io/v1beta4\n"); n != 3 {
		t.Errorf("%d v1beta4 documents, want 3:\n%s", n, got)
	}
	if strings.Contains(got, "v1beta3") || strings.Contains(got, "KubeletConfiguration") || strings.Contains(got, "timeoutForControlPlane") {
		t.Errorf("output keeps v1beta3 or a component config:\n%s", got)
	}
	// The output reads back as it is: migrating it again changes nothing.
	again, err := Migrate(out, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != got {
		t.Errorf("second migration differs:\n%s\nfirst:\n%s", again, got)
	}
}

func TestMigrateResetAndUpgrade(t *testing.T) {
	in := "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\nforce: true\n---\n" +
		"apiVersion: kubeadm.k8s.io/v1beta4\nkind: UpgradeConfiguration\napply:\n  etcdUpgrade: false\n"
	out, err := Migrate([]byte(in), testEnv())
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	for _, want := range []string{"kind: ResetConfiguration\n", "force: true\n", "criSocket: unix:///var/run/containerd/containerd.sock\n",
		"kind: UpgradeConfiguration\n", "  etcdUpgrade: false\n", "  certificateRenewal: true\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "InitConfiguration") || strings.Contains(got, "JoinConfiguration") {
		t.Errorf("output has kinds the file did not:\n%s", got)
	}
}

func TestMigrateRefusesInvalid(t *testing.T) {
	_, err := Migrate([]byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  serviceSubnet: nonsense\n"), testEnv())
	if err == nil || !strings.Contains(err.Error(), "networking.serviceSubnet") {
		t.Fatalf("err = %v, want one naming networking.serviceSubnet", err)
	}
	_, err = Migrate([]byte("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"), testEnv())
	if err == nil || !strings.Contains(err.Error(), "no kubeadm configuration found") {
		t.Fatalf("err = %v", err)
	}
}

func TestResolveFileMarksDeprecated(t *testing.T) {
	r, err := ResolveFile([]byte("apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n"), testEnv())
	if err != nil {
		t.Fatal(err)
	}
	if !r.Deprecated || r.Init == nil || r.Join != nil {
		t.Fatalf("resolved = %+v", r)
	}
	err = DeprecatedAPIError(r.Warnings)
	if !strings.Contains(err.Error(), "kubeboot config migrate") || !strings.Contains(err.Error(), "--allow-deprecated-api") {
		t.Fatalf("err = %v", err)
	}
}

func TestDefaultUpgradeDocuments(t *testing.T) {
	b, err := DefaultUpgradeDocuments()
	if err != nil {
		t.Fatal(err)
	}
	want := `apiVersion: kubeadm.k8s.io/v1beta4
apply:
  certificateRenewal: true
  etcdUpgrade: true
  imagePullPolicy: IfNotPresent
  imagePullSerial: true
diff: {}
kind: UpgradeConfiguration
node:
  certificateRenewal: true
  etcdUpgrade: true
  imagePullPolicy: IfNotPresent
  imagePullSerial: true
plan:
  etcdUpgrade: true
timeouts:
  controlPlaneComponentHealthCheck: 4m0s
  discovery: 5m0s
  etcdAPICall: 2m0s
  kubeletHealthCheck: 4m0s
  kubernetesAPICall: 1m0s
  tlsBootstrap: 5m0s
  upgradeManifests: 5m0s
`
	if string(b) != want {
		t.Fatalf("got\n%s\nwant\n%s", b, want)
	}
}
