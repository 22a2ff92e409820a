package addons

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"kubeboot.dev/kubeboot/internal/apply"
	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/patches"
)

// Names of the CoreDNS objects, as kubeadm creates them.
const (
	CoreDNSName        = "coredns"        // ServiceAccount, ConfigMap and Deployment
	CoreDNSClusterRole = "system:coredns" // ClusterRole and ClusterRoleBinding
	CoreDNSServiceName = "kube-dns"
	CorefileKey        = "Corefile"

	coreDNSReplicas   = 2
	coreDNSAppLabel   = "kube-dns"
	controlPlaneTaint = "node-role.kubernetes.io/control-plane"
)

// CoreDNSOption changes the rendered CoreDNS addon away from kubeadm's defaults.
type CoreDNSOption func(*coreDNSOptions)

type coreDNSOptions struct {
	noForward     bool
	patches       *patches.Set
	reportPatches Patched
}

// WithoutForward renders a Corefile without the forward plugin: names outside the cluster's zones get SERVFAIL
// instead of being sent to the node's resolvers. For clusters (like the project's lab) whose DNS must never
// leave the machine.
func WithoutForward() CoreDNSOption {
	return func(o *coreDNSOptions) { o.noForward = true }
}

// DNSServiceIP is the kube-dns Service's cluster IP: the 10th address of the first range in
// networking.serviceSubnet (10.96.0.10 for 10.96.0.0/12), as kubeadm computes it.
func DNSServiceIP(serviceSubnet string) (netip.Addr, error) {
	first, _, _ := strings.Cut(serviceSubnet, ",")
	prefix, err := netip.ParsePrefix(strings.TrimSpace(first))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("networking.serviceSubnet %q: %w", serviceSubnet, err)
	}
	prefix = prefix.Masked()
	ip := prefix.Addr()
	for range 10 {
		ip = ip.Next()
	}
	if !ip.IsValid() || !prefix.Contains(ip) {
		return netip.Addr{}, fmt.Errorf("networking.serviceSubnet %q: range %s is too small to hold the DNS Service IP (its 10th address); use a larger range", serviceSubnet, prefix)
	}
	return ip, nil
}

// Corefile is the CoreDNS configuration kubeadm writes for dnsDomain, byte for byte, unless options say otherwise.
func Corefile(dnsDomain string, opts ...CoreDNSOption) string {
	var o coreDNSOptions
	for _, opt := range opts {
		opt(&o)
	}
	type plugin struct {
		line  string
		block []string
	}
	plugins := []plugin{
		{line: "errors"},
		{line: "health", block: []string{"lameduck 5s"}},
		{line: "ready"},
		{line: "kubernetes " + dnsDomain + " in-addr.arpa ip6.arpa", block: []string{
			"pods insecure",
			"fallthrough in-addr.arpa ip6.arpa",
			"ttl 30",
		}},
		{line: "prometheus :9153"},
	}
	if !o.noForward {
		plugins = append(plugins, plugin{line: "forward . /etc/resolv.conf", block: []string{"max_concurrent 1000"}})
	}
	plugins = append(plugins,
		plugin{line: "cache 30", block: []string{"disable success " + dnsDomain, "disable denial " + dnsDomain}},
		plugin{line: "loop"},
		plugin{line: "reload"},
		plugin{line: "loadbalance"},
	)

	// kubeadm's indentation: plugins at 4 spaces, their options at 7.
	var b strings.Builder
	b.WriteString(".:53 {\n")
	for _, p := range plugins {
		b.WriteString("    " + p.line)
		if len(p.block) == 0 {
			b.WriteString("\n")
			continue
		}
		b.WriteString(" {\n")
		for _, l := range p.block {
			b.WriteString("       " + l + "\n")
		}
		b.WriteString("    }\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// CoreDNSObjects renders the CoreDNS addon in the order it should be applied: ServiceAccount, ClusterRole,
// ClusterRoleBinding, ConfigMap, Deployment, Service. There is no PodDisruptionBudget: kubeadm creates none.
func CoreDNSObjects(cluster *config.Cluster, opts ...CoreDNSOption) ([]runtime.Object, error) {
	if cluster.Networking.DNSDomain == "" {
		return nil, errors.New("networking.dnsDomain is empty; the configuration must be defaulted before rendering the CoreDNS addon")
	}
	if cluster.ImageRepository == "" && cluster.DNS.ImageRepository == "" {
		return nil, errors.New("imageRepository is empty; the configuration must be defaulted before rendering the CoreDNS addon")
	}
	dnsIP, err := DNSServiceIP(cluster.Networking.ServiceSubnet)
	if err != nil {
		return nil, fmt.Errorf("CoreDNS Service %s/%s: %w", systemNamespace, CoreDNSServiceName, err)
	}
	image, err := cluster.CoreDNSImage()
	if err != nil {
		return nil, fmt.Errorf("CoreDNS Deployment %s/%s: %w", systemNamespace, CoreDNSName, err)
	}

	appLabels := map[string]string{"k8s-app": coreDNSAppLabel}

	sa := &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: metav1.ObjectMeta{Name: CoreDNSName, Namespace: systemNamespace},
	}
	role := &rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: CoreDNSClusterRole},
		Rules: []rbacv1.PolicyRule{
			{
				APIGroups: []string{""},
				Resources: []string{"endpoints", "services", "pods", "namespaces"},
				Verbs:     []string{"list", "watch"},
			},
			{
				APIGroups: []string{"discovery.k8s.io"},
				Resources: []string{"endpointslices"},
				Verbs:     []string{"list", "watch"},
			},
		},
	}
	binding := &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: CoreDNSClusterRole},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: CoreDNSClusterRole},
		Subjects: []rbacv1.Subject{
			{Kind: rbacv1.ServiceAccountKind, Name: CoreDNSName, Namespace: systemNamespace},
		},
	}
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: CoreDNSName, Namespace: systemNamespace},
		Data:       map[string]string{CorefileKey: Corefile(cluster.Networking.DNSDomain, opts...)},
	}

	deploy := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: CoreDNSName, Namespace: systemNamespace, Labels: appLabels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](coreDNSReplicas),
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: ptr.To(intstr.FromInt32(1))},
			},
			Selector: &metav1.LabelSelector{MatchLabels: appLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: appLabels},
				Spec:       coreDNSPodSpec(image),
			},
		},
	}

	svc := &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      CoreDNSServiceName,
			Namespace: systemNamespace,
			Labels: map[string]string{
				"k8s-app":                       coreDNSAppLabel,
				"kubernetes.io/cluster-service": "true",
				"kubernetes.io/name":            "CoreDNS",
			},
			Annotations: map[string]string{
				"prometheus.io/port":   "9153",
				"prometheus.io/scrape": "true",
			},
		},
		Spec: corev1.ServiceSpec{
			ClusterIP: dnsIP.String(),
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(53)},
				{Name: "metrics", Port: 9153, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(9153)},
			},
			Selector: appLabels,
		},
	}

	objs := []runtime.Object{sa, role, binding, cm, deploy, svc}
	var o coreDNSOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := patchWorkload[appsv1.Deployment](objs, o.patches, patches.CoreDNSDeployment, o.reportPatches); err != nil {
		return nil, err
	}
	return objs, nil
}

func coreDNSPodSpec(image string) corev1.PodSpec {
	return corev1.PodSpec{
		PriorityClassName:  "system-cluster-critical",
		ServiceAccountName: CoreDNSName,
		Affinity: &corev1.Affinity{
			// Preferred, not required: a one-node cluster still gets both replicas.
			PodAntiAffinity: &corev1.PodAntiAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
					Weight: 100,
					PodAffinityTerm: corev1.PodAffinityTerm{
						LabelSelector: &metav1.LabelSelector{
							MatchExpressions: []metav1.LabelSelectorRequirement{{
								Key:      "k8s-app",
								Operator: metav1.LabelSelectorOpIn,
								Values:   []string{coreDNSAppLabel},
							}},
						},
						TopologyKey: corev1.LabelHostname,
					},
				}},
			},
		},
		Tolerations: []corev1.Toleration{
			{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists},
			{Key: controlPlaneTaint, Effect: corev1.TaintEffectNoSchedule},
		},
		NodeSelector: map[string]string{corev1.LabelOSStable: "linux"},
		Containers: []corev1.Container{{
			Name:            "coredns",
			Image:           image,
			ImagePullPolicy: corev1.PullIfNotPresent,
			Resources: corev1.ResourceRequirements{
				Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("170Mi")},
				Requests: corev1.ResourceList{
					corev1.ResourceCPU:    resource.MustParse("100m"),
					corev1.ResourceMemory: resource.MustParse("70Mi"),
				},
			},
			Args:         []string{"-conf", "/etc/coredns/" + CorefileKey},
			VolumeMounts: []corev1.VolumeMount{{Name: "config-volume", MountPath: "/etc/coredns", ReadOnly: true}},
			Ports: []corev1.ContainerPort{
				{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
				{Name: "dns-tcp", ContainerPort: 53, Protocol: corev1.ProtocolTCP},
				{Name: "metrics", ContainerPort: 9153, Protocol: corev1.ProtocolTCP},
				{Name: "liveness-probe", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
				{Name: "readiness-probe", ContainerPort: 8181, Protocol: corev1.ProtocolTCP},
			},
			LivenessProbe: &corev1.Probe{
				ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
					Path: "/health", Port: intstr.FromString("liveness-probe"), Scheme: corev1.URISchemeHTTP,
				}},
				InitialDelaySeconds: 60,
				TimeoutSeconds:      5,
				SuccessThreshold:    1,
				FailureThreshold:    5,
			},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
					Path: "/ready", Port: intstr.FromString("readiness-probe"), Scheme: corev1.URISchemeHTTP,
				}},
			},
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false),
				Capabilities: &corev1.Capabilities{
					Add:  []corev1.Capability{"NET_BIND_SERVICE"},
					Drop: []corev1.Capability{"ALL"},
				},
				ReadOnlyRootFilesystem: ptr.To(true),
			},
		}},
		// Default: CoreDNS resolves upstream names through the node's resolv.conf, not through itself.
		DNSPolicy: corev1.DNSDefault,
		Volumes: []corev1.Volume{{
			Name: "config-volume",
			VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: CoreDNSName},
				Items:                []corev1.KeyToPath{{Key: CorefileKey, Path: CorefileKey}},
			}},
		}},
	}
}

// EnsureCoreDNS installs or updates the CoreDNS addon. Like kubeadm, it keeps what a user may have tuned: an
// existing coredns ConfigMap is left untouched (its Corefile may be edited), and an existing Deployment keeps its
// replica count.
func EnsureCoreDNS(ctx context.Context, client kubernetes.Interface, cluster *config.Cluster, opts ...CoreDNSOption) error {
	objs, err := CoreDNSObjects(cluster, opts...)
	if err != nil {
		return err
	}

	var existingCM *corev1.ConfigMap
	err = apply.Retry(ctx, func(ctx context.Context) (err error) {
		existingCM, err = client.CoreV1().ConfigMaps(systemNamespace).Get(ctx, CoreDNSName, metav1.GetOptions{})
		return err
	})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("read ConfigMap %s/%s: %w", systemNamespace, CoreDNSName, err)
	default:
		if _, ok := existingCM.Data[CorefileKey]; !ok {
			return fmt.Errorf("ConfigMap %s/%s exists without a %q key: add your Corefile under that key, or delete the ConfigMap to get the default one", systemNamespace, CoreDNSName, CorefileKey)
		}
		objs = without(objs, func(o runtime.Object) bool { _, ok := o.(*corev1.ConfigMap); return ok })
	}

	var existingDeploy *appsv1.Deployment
	err = apply.Retry(ctx, func(ctx context.Context) (err error) {
		existingDeploy, err = client.AppsV1().Deployments(systemNamespace).Get(ctx, CoreDNSName, metav1.GetOptions{})
		return err
	})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("read Deployment %s/%s: %w", systemNamespace, CoreDNSName, err)
	case existingDeploy.Spec.Replicas != nil:
		for _, o := range objs {
			if d, ok := o.(*appsv1.Deployment); ok {
				d.Spec.Replicas = ptr.To(*existingDeploy.Spec.Replicas)
			}
		}
	}

	if err := applyInWaves(ctx, client, objs); err != nil {
		return fmt.Errorf("apply the CoreDNS addon: %w", err)
	}
	return nil
}

// applyInWaves writes what Pods depend on (accounts, RBAC, ConfigMaps) before the workloads and Services:
// apply.Objects writes concurrently, and a Pod created before its ServiceAccount is refused and retried later
// by its controller with a backoff.
func applyInWaves(ctx context.Context, client kubernetes.Interface, objs []runtime.Object) error {
	var first, second []runtime.Object
	for _, o := range objs {
		switch o.(type) {
		case *appsv1.Deployment, *appsv1.DaemonSet, *corev1.Service:
			second = append(second, o)
		default:
			first = append(first, o)
		}
	}
	if err := apply.Objects(ctx, client, first...); err != nil {
		return err
	}
	return apply.Objects(ctx, client, second...)
}

func without(objs []runtime.Object, drop func(runtime.Object) bool) []runtime.Object {
	kept := objs[:0:0]
	for _, o := range objs {
		if !drop(o) {
			kept = append(kept, o)
		}
	}
	return kept
}
