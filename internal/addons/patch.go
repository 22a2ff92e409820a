package addons

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/patches"
)

// Patched is where an addon option reports the patches it applied, for the caller to print with Patch.Line as
// kubeadm does.
type Patched func([]patches.Patch)

// patchWorkload applies set's patches of target to the objs' workload of type T (the CoreDNS Deployment or the
// kube-proxy DaemonSet), as kubeadm's addon phases do before they create or print it. Fields a patch adds that
// the type does not know are dropped, as kubeadm's decoding into the typed object drops them.
func patchWorkload[T any, PT interface {
	*T
	runtime.Object
}](objs []runtime.Object, set *patches.Set, target string, report Patched) error {
	ps := set.For(target)
	if len(ps) == 0 {
		return nil
	}
	for i, o := range objs {
		w, ok := o.(PT)
		if !ok {
			continue
		}
		doc, err := yaml.Marshal(w)
		if err != nil {
			return fmt.Errorf("patch %s: %w", target, err)
		}
		var schema T
		out, _, err := set.Apply(target, doc, &schema)
		if err != nil {
			return err
		}
		patched := PT(new(T))
		if err := yaml.Unmarshal(out, patched); err != nil {
			return fmt.Errorf("patch %s: the patched object is no longer a %T: %w; fix the patch", target, w, err)
		}
		objs[i] = patched
		if report != nil {
			report(ps)
		}
		return nil
	}
	return fmt.Errorf("patch %s: no such object among the rendered addon's", target)
}

// CoreDNSPatches applies the corednsdeployment patches of set to the CoreDNS Deployment and reports them.
func CoreDNSPatches(set *patches.Set, report Patched) CoreDNSOption {
	return func(o *coreDNSOptions) { o.patches, o.reportPatches = set, report }
}

// KubeProxyPatches applies the kubeproxydaemonset patches of set (kubeadm 1.37's target) to the kube-proxy
// DaemonSet and reports them.
func KubeProxyPatches(set *patches.Set, report Patched) KubeProxyOption {
	return func(o *kubeProxyOptions) { o.patches, o.reportPatches = set, report }
}
