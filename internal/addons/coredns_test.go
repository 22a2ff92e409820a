package addons

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"kubeboot.dev/kubeboot/internal/config"
)

// kubeadmCorefile is what kubeadm v1.37.2's CoreDNS ConfigMap template renders for cluster.local.
const kubeadmCorefile = `.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload
    loadbalance
}
`

func TestCorefile(t *testing.T) {
	if got := Corefile("cluster.local"); got != kubeadmCorefile {
		t.Errorf("Corefile differs from kubeadm's (-kubeadm +got):\n%s", cmp.Diff(kubeadmCorefile, got))
	}

	noForward := Corefile("lab.local", WithoutForward())
	if strings.Contains(noForward, "forward") || strings.Contains(noForward, "resolv.conf") {
		t.Errorf("WithoutForward still forwards:\n%s", noForward)
	}
	// Everything else stays kubeadm's.
	want := strings.ReplaceAll(kubeadmCorefile, "cluster.local", "lab.local")
	want = strings.Replace(want, "    forward . /etc/resolv.conf {\n       max_concurrent 1000\n    }\n", "", 1)
	if noForward != want {
		t.Errorf("WithoutForward Corefile (-want +got):\n%s", cmp.Diff(want, noForward))
	}
}

func TestDNSServiceIP(t *testing.T) {
	for _, tc := range []struct {
		subnet, want, wantErr string
	}{
		{subnet: "10.96.0.0/12", want: "10.96.0.10"},
		{subnet: "10.96.7.3/12", want: "10.96.0.10"}, // host bits are ignored, as kubeadm masks the range
		{subnet: "172.30.0.0/16", want: "172.30.0.10"},
		{subnet: "10.0.0.0/28", want: "10.0.0.10"},
		{subnet: "10.96.0.250/24", want: "10.96.0.10"},
		{subnet: "fd00:10:96::/108", want: "fd00:10:96::a"},
		{subnet: "10.96.0.0/12,fd00:10:96::/108", want: "10.96.0.10"}, // the first family wins
		{subnet: "fd00:10:96::/108, 10.96.0.0/12", want: "fd00:10:96::a"},
		{subnet: "10.0.0.0/29", wantErr: `networking.serviceSubnet "10.0.0.0/29": range 10.0.0.0/29 is too small to hold the DNS Service IP (its 10th address); use a larger range`},
		{subnet: "", wantErr: `networking.serviceSubnet "": netip.ParsePrefix(""): no '/'`},
		{subnet: "10.96.0.0", wantErr: `networking.serviceSubnet "10.96.0.0": netip.ParsePrefix("10.96.0.0"): no '/'`},
	} {
		t.Run(tc.subnet, func(t *testing.T) {
			got, err := DNSServiceIP(tc.subnet)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want {
				t.Errorf("DNSServiceIP(%q) = %s, want %s", tc.subnet, got, tc.want)
			}
		})
	}
}

func TestCoreDNSObjectsGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		golden string
		mutate func(*testing.T) ([]runtime.Object, error)
	}{
		{name: "kubeadm defaults", golden: "coredns.yaml", mutate: func(t *testing.T) ([]runtime.Object, error) {
			return CoreDNSObjects(testInit().ClusterPart())
		}},
		{name: "custom registry, IPv6 service range, own domain, no forward", golden: "coredns-lab.yaml", mutate: func(t *testing.T) ([]runtime.Object, error) {
			cfg := testInit()
			cfg.Cluster.ImageRepository = "lab.local:5000"
			cfg.Cluster.DNS.ImageTag = "v1.12.1-lab"
			cfg.Cluster.Networking.ServiceSubnet = "fd00:10:96::/108,10.96.0.0/12"
			cfg.Cluster.Networking.DNSDomain = "lab.local"
			return CoreDNSObjects(cfg.ClusterPart(), WithoutForward())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := tc.mutate(t)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tc.golden, objs)
		})
	}
}

// find returns the only object of type T in objs.
func find[T runtime.Object](t *testing.T, objs []runtime.Object) T {
	t.Helper()
	var found []T
	for _, o := range objs {
		if v, ok := o.(T); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want exactly one %T among the objects, found %d", zero, len(found))
	}
	return found[0]
}

func TestCoreDNSObjectsFacts(t *testing.T) {
	cfg := testInit()
	cfg.Cluster.Networking.ServiceSubnet = "10.100.0.0/16"
	objs, err := CoreDNSObjects(cfg.ClusterPart())
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 6 {
		t.Errorf("got %d objects, want 6 (ServiceAccount, ClusterRole, ClusterRoleBinding, ConfigMap, Deployment, Service)", len(objs))
	}

	svc := find[*corev1.Service](t, objs)
	if svc.Namespace != "kube-system" || svc.Name != "kube-dns" {
		t.Errorf("Service is %s/%s, want kube-system/kube-dns", svc.Namespace, svc.Name)
	}
	if svc.Spec.ClusterIP != "10.100.0.10" {
		t.Errorf("Service clusterIP = %s, want 10.100.0.10", svc.Spec.ClusterIP)
	}
	wantLabels := map[string]string{"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}
	if diff := cmp.Diff(wantLabels, svc.Labels); diff != "" {
		t.Errorf("Service labels (-want +got):\n%s", diff)
	}
	wantAnn := map[string]string{"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}
	if diff := cmp.Diff(wantAnn, svc.Annotations); diff != "" {
		t.Errorf("Service annotations (-want +got):\n%s", diff)
	}

	cm := find[*corev1.ConfigMap](t, objs)
	if cm.Name != "coredns" || cm.Data["Corefile"] != kubeadmCorefile {
		t.Errorf("ConfigMap %s Corefile:\n%s", cm.Name, cm.Data["Corefile"])
	}

	d := find[*appsv1.Deployment](t, objs)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas = %v, want 2", d.Spec.Replicas)
	}
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	if c.Image != "registry.k8s.io/coredns/coredns:v1.14.6" {
		t.Errorf("image = %s", c.Image)
	}
	if diff := cmp.Diff([]string{"-conf", "/etc/coredns/Corefile"}, c.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if c.LivenessProbe.HTTPGet.Path != "/health" || c.ReadinessProbe.HTTPGet.Path != "/ready" {
		t.Errorf("probe paths = %s, %s", c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	// The probes name their ports; the names must resolve to CoreDNS's health and ready listeners.
	if ports[c.LivenessProbe.HTTPGet.Port.StrVal] != 8080 || ports[c.ReadinessProbe.HTTPGet.Port.StrVal] != 8181 {
		t.Errorf("probe ports resolve to %d and %d, want 8080 and 8181", ports[c.LivenessProbe.HTTPGet.Port.StrVal], ports[c.ReadinessProbe.HTTPGet.Port.StrVal])
	}
	wantTol := []corev1.Toleration{
		{Key: "CriticalAddonsOnly", Operator: corev1.TolerationOpExists},
		{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule},
	}
	if diff := cmp.Diff(wantTol, pod.Tolerations); diff != "" {
		t.Errorf("tolerations (-want +got):\n%s", diff)
	}
	if pod.PriorityClassName != "system-cluster-critical" || pod.NodeSelector["kubernetes.io/os"] != "linux" || pod.ServiceAccountName != "coredns" {
		t.Errorf("priorityClassName %q, nodeSelector %v, serviceAccountName %q", pod.PriorityClassName, pod.NodeSelector, pod.ServiceAccountName)
	}
	if pod.Affinity == nil || pod.Affinity.PodAntiAffinity == nil || len(pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Errorf("missing preferred pod anti-affinity: %+v", pod.Affinity)
	}

	crb := find[*rbacv1.ClusterRoleBinding](t, objs)
	if crb.RoleRef.Name != "system:coredns" || crb.Subjects[0].Name != "coredns" || crb.Subjects[0].Namespace != "kube-system" {
		t.Errorf("ClusterRoleBinding %+v", crb)
	}
}

func TestCoreDNSObjectsErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(*config.Init)
		wantErr string
	}{
		{name: "no domain", mutate: func(c *config.Init) { c.Cluster.Networking.DNSDomain = "" },
			wantErr: "networking.dnsDomain is empty; the configuration must be defaulted before rendering the CoreDNS addon"},
		{name: "no repository", mutate: func(c *config.Init) { c.Cluster.ImageRepository = "" },
			wantErr: "imageRepository is empty; the configuration must be defaulted before rendering the CoreDNS addon"},
		{name: "small service range", mutate: func(c *config.Init) { c.Cluster.Networking.ServiceSubnet = "10.96.0.0/30" },
			wantErr: `CoreDNS Service kube-system/kube-dns: networking.serviceSubnet "10.96.0.0/30": range 10.96.0.0/30 is too small to hold the DNS Service IP (its 10th address); use a larger range`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testInit()
			tc.mutate(cfg)
			_, err := CoreDNSObjects(cfg.ClusterPart())
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("err = %v, want %s", err, tc.wantErr)
			}
		})
	}
}

const userCorefile = ".:53 {\n    errors\n    kubernetes cluster.local\n}\n"

func TestEnsureCoreDNS(t *testing.T) {
	for _, tc := range []struct {
		name         string
		existing     []runtime.Object
		wantCorefile string
		wantReplicas int32
	}{
		{name: "new cluster gets kubeadm's Corefile", wantCorefile: kubeadmCorefile, wantReplicas: 2},
		{
			name: "an edited Corefile and a scaled Deployment are kept",
			existing: []runtime.Object{
				&corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: "kube-system"},
					Data:       map[string]string{"Corefile": userCorefile},
				},
				&appsv1.Deployment{
					ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: "kube-system"},
					Spec:       appsv1.DeploymentSpec{Replicas: ptr.To[int32](3)},
				},
			},
			wantCorefile: userCorefile,
			wantReplicas: 3,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewClientset(tc.existing...)
			if err := EnsureCoreDNS(t.Context(), client, testInit().ClusterPart()); err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if cm.Data["Corefile"] != tc.wantCorefile {
				t.Errorf("Corefile after EnsureCoreDNS (-want +got):\n%s", cmp.Diff(tc.wantCorefile, cm.Data["Corefile"]))
			}
			d, err := client.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if *d.Spec.Replicas != tc.wantReplicas {
				t.Errorf("replicas = %d, want %d", *d.Spec.Replicas, tc.wantReplicas)
			}
			if d.Spec.Template.Spec.Containers[0].Image != "registry.k8s.io/coredns/coredns:v1.14.6" {
				t.Errorf("Deployment not updated: image %s", d.Spec.Template.Spec.Containers[0].Image)
			}
			svc, err := client.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if svc.Spec.ClusterIP != "10.96.0.10" {
				t.Errorf("clusterIP = %s", svc.Spec.ClusterIP)
			}
			for _, get := range []func() error{
				func() error {
					_, err := client.CoreV1().ServiceAccounts("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
					return err
				},
				func() error {
					_, err := client.RbacV1().ClusterRoles().Get(ctx, "system:coredns", metav1.GetOptions{})
					return err
				},
				func() error {
					_, err := client.RbacV1().ClusterRoleBindings().Get(ctx, "system:coredns", metav1.GetOptions{})
					return err
				},
			} {
				if err := get(); err != nil {
					t.Error(err)
				}
			}

			// A second run changes nothing the user owns either.
			if err := EnsureCoreDNS(ctx, client, testInit().ClusterPart()); err != nil {
				t.Fatal(err)
			}
			cm, err = client.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if cm.Data["Corefile"] != tc.wantCorefile {
				t.Errorf("Corefile after a second EnsureCoreDNS (-want +got):\n%s", cmp.Diff(tc.wantCorefile, cm.Data["Corefile"]))
			}
		})
	}
}

func TestEnsureCoreDNSErrors(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "coredns", errors.New("no"))
	for _, tc := range []struct {
		name     string
		existing []runtime.Object
		reactor  clienttesting.ReactionFunc
		wantErr  string
	}{
		{
			name: "ConfigMap without a Corefile",
			existing: []runtime.Object{&corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: "kube-system"},
				Data:       map[string]string{"Corefile.old": userCorefile},
			}},
			wantErr: `ConfigMap kube-system/coredns exists without a "Corefile" key: add your Corefile under that key, or delete the ConfigMap to get the default one`,
		},
		{
			name: "ConfigMap unreadable",
			reactor: func(a clienttesting.Action) (bool, runtime.Object, error) {
				return true, nil, forbidden
			},
			wantErr: `read ConfigMap kube-system/coredns: configmaps "coredns" is forbidden: no`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewClientset(tc.existing...)
			if tc.reactor != nil {
				client.PrependReactor("get", "configmaps", tc.reactor)
			}
			err := EnsureCoreDNS(t.Context(), client, testInit().ClusterPart())
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("err = %v, want %s", err, tc.wantErr)
			}
			// Nothing may have been written when the Corefile question could not be answered.
			for _, a := range client.Actions() {
				if a.GetVerb() == "create" || a.GetVerb() == "update" {
					t.Errorf("unexpected write %s %s", a.GetVerb(), a.GetResource().Resource)
				}
			}
		})
	}
}

func TestEnsureCoreDNSRetriesTransientRead(t *testing.T) {
	client := fake.NewClientset()
	failures := 2
	client.PrependReactor("get", "configmaps", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if failures > 0 {
			failures--
			return true, nil, apierrors.NewServiceUnavailable("apiserver starting")
		}
		return false, nil, nil
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := EnsureCoreDNS(ctx, client, testInit().ClusterPart()); err != nil {
		t.Fatal(err)
	}
	if failures != 0 {
		t.Errorf("%d injected failures left unconsumed", failures)
	}
	if _, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{}); err != nil {
		t.Error(err)
	}
}
