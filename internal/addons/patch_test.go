package addons

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"kubeboot.dev/kubeboot/internal/patches"
)

func workload[T runtime.Object](t *testing.T, objs []runtime.Object) T {
	t.Helper()
	for _, o := range objs {
		if w, ok := o.(T); ok {
			return w
		}
	}
	var zero T
	t.Fatalf("no %T among the objects", zero)
	return zero
}

// TestAddonPatches: the corednsdeployment and kubeproxydaemonset targets reach the workloads, in file order, and
// the patches applied are reported; a target's patches leave the other addon alone.
func TestAddonPatches(t *testing.T) {
	dnsReplicas := patches.Patch{File: "/p/corednsdeployment.yaml", Doc: 1, Target: patches.CoreDNSDeployment, Type: types.StrategicMergePatchType,
		Data: []byte(`{"spec":{"replicas":3,"template":{"spec":{"containers":[{"name":"coredns","resources":{"limits":{"memory":"300Mi"}}}]}}}}`)}
	dnsLabel := patches.Patch{File: "/p/corednsdeployment+merge.yaml", Doc: 1, Target: patches.CoreDNSDeployment, Type: types.MergePatchType,
		Data: []byte(`{"metadata":{"labels":{"patched":"yes"}}}`)}
	proxyEnv := patches.Patch{File: "/p/kubeproxydaemonset+json.json", Doc: 1, Target: patches.KubeProxyDaemonSet, Type: types.JSONPatchType,
		Data: []byte(`[{"op":"add","path":"/spec/template/spec/priorityClassName","value":"system-cluster-critical"},{"op":"add","path":"/spec/template/spec/containers/0/env/-","value":{"name":"PATCHED","value":"1"}}]`)}
	set := patches.NewSet(dnsReplicas, dnsLabel, proxyEnv)

	var reported []patches.Patch
	report := func(ps []patches.Patch) { reported = append(reported, ps...) }

	dns, err := CoreDNSObjects(testInit().ClusterPart(), CoreDNSPatches(set, report))
	if err != nil {
		t.Fatal(err)
	}
	d := workload[*appsv1.Deployment](t, dns)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Errorf("CoreDNS replicas %v, want 3", d.Spec.Replicas)
	}
	if got := d.Spec.Template.Spec.Containers[0].Resources.Limits.Memory().String(); got != "300Mi" {
		t.Errorf("CoreDNS memory limit %s, want 300Mi", got)
	}
	if len(d.Spec.Template.Spec.Containers[0].Ports) == 0 {
		t.Error("the strategic merge patch replaced the coredns container instead of merging into it")
	}
	if d.Labels["patched"] != "yes" || d.Labels["k8s-app"] != coreDNSAppLabel {
		t.Errorf("CoreDNS labels %v, want k8s-app kept and patched=yes", d.Labels)
	}

	proxy, err := KubeProxyObjects(testInit().ClusterPart(), testEndpoint, KubeProxyPatches(set, report))
	if err != nil {
		t.Fatal(err)
	}
	ds := workload[*appsv1.DaemonSet](t, proxy)
	if ds.Spec.Template.Spec.PriorityClassName != "system-cluster-critical" {
		t.Errorf("kube-proxy priorityClassName %q", ds.Spec.Template.Spec.PriorityClassName)
	}
	if !slices.Contains(ds.Spec.Template.Spec.Containers[0].Env, corev1.EnvVar{Name: "PATCHED", Value: "1"}) {
		t.Errorf("kube-proxy env %v lacks PATCHED=1", ds.Spec.Template.Spec.Containers[0].Env)
	}
	want := []string{dnsReplicas.File, dnsLabel.File, proxyEnv.File}
	var got []string
	for _, p := range reported {
		got = append(got, p.File)
	}
	if !slices.Equal(got, want) {
		t.Errorf("reported %v, want %v", got, want)
	}

	// Without patches for its target an addon renders as without the option.
	plain, err := KubeProxyObjects(testInit().ClusterPart(), testEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	onlyDNS := patches.NewSet(dnsReplicas)
	withDNSOnly, err := KubeProxyObjects(testInit().ClusterPart(), testEndpoint, KubeProxyPatches(onlyDNS, func([]patches.Patch) { t.Error("kube-proxy reported CoreDNS's patch") }))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := MarshalYAML(plain...)
	b, _ := MarshalYAML(withDNSOnly...)
	if string(a) != string(b) {
		t.Errorf("kube-proxy changed by a corednsdeployment patch:\n%s\n---\n%s", a, b)
	}
}

// TestAddonPatchErrorNamesTheFile: a patch that does not apply fails the addon with the file named.
func TestAddonPatchErrorNamesTheFile(t *testing.T) {
	bad := patches.Patch{File: "/etc/kubeboot/patches/kubeproxydaemonset+json.yaml", Doc: 2, Target: patches.KubeProxyDaemonSet, Type: types.JSONPatchType,
		Data: []byte(`[{"op":"replace","path":"/spec/nosuchfield/x","value":1}]`)}
	_, err := KubeProxyObjects(testInit().ClusterPart(), testEndpoint, KubeProxyPatches(patches.NewSet(bad), nil))
	want := "apply patch file /etc/kubeboot/patches/kubeproxydaemonset+json.yaml (document 2, type json) to kubeproxydaemonset: "
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %v, want one starting %q", err, want)
	}
}
