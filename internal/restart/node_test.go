package restart

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

func manifest(component string, annotations map[string]string, command ...string) *staticpod.Manifest {
	return &staticpod.Manifest{File: staticpod.Path(component), Pod: &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: component, Annotations: annotations},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: component, Command: append([]string{component}, command...)}}},
	}}
}

func TestHealthURL(t *testing.T) {
	tests := []struct {
		name      string
		component string
		command   []string
		want      string
		wantErr   string
	}{
		{name: "etcd as kubeadm writes it", component: "etcd",
			command: []string{"--listen-client-urls=https://127.0.0.1:2379,https://10.0.0.1:2379", "--listen-metrics-urls=http://127.0.0.1:2381"},
			want:    "http://127.0.0.1:2381/readyz"},
		{name: "etcd's metrics moved, on every address", component: "etcd", command: []string{"--listen-metrics-urls=http://0.0.0.0:12381,http://[::1]:12381"},
			want: "http://127.0.0.1:12381/readyz"},
		{name: "etcd without a metrics listener flag: staticpod's port", component: "etcd", want: "http://127.0.0.1:2381/readyz"},
		{name: "etcd's metrics URL is not one", component: "etcd", command: []string{"--listen-metrics-urls=127.0.0.1"},
			wantErr: `/etc/kubernetes/manifests/etcd.yaml: --listen-metrics-urls "127.0.0.1" is not a URL`},
		{name: "the API server at its advertise address", component: "kube-apiserver", command: []string{"--advertise-address=10.0.0.1", "--secure-port=6443"},
			want: "https://10.0.0.1:6443/readyz"},
		{name: "the API server on IPv6, another port", component: "kube-apiserver", command: []string{"--advertise-address=fd00::1", "--secure-port=16443"},
			want: "https://[fd00::1]:16443/readyz"},
		{name: "the API server without an address", component: "kube-apiserver", want: "https://127.0.0.1:6443/readyz"},
		{name: "the controller manager", component: "kube-controller-manager", command: []string{"--bind-address=127.0.0.1"},
			want: "https://127.0.0.1:10257/healthz"},
		{name: "the scheduler on every address, another port", component: "kube-scheduler", command: []string{"--bind-address=0.0.0.0", "--secure-port=10300"},
			want: "https://127.0.0.1:10300/livez"},
		{name: "not a component", component: "coredns", wantErr: "coredns is not a control-plane component"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := HealthURL(manifest(tt.component, nil, tt.command...), tt.component)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("HealthURL error %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("HealthURL = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestSelfEndpoint(t *testing.T) {
	fsys := nodefs.FS{Root: t.TempDir()}
	if got := SelfEndpoint(fsys); got != "" {
		t.Errorf("SelfEndpoint without a manifest = %q", got)
	}
	writeManifest(t, fsys, "kube-apiserver", "kind: Pod\nspec:\n  containers:\n  - name: kube-apiserver\n    command: [kube-apiserver, --advertise-address=10.0.0.1]\n")
	if got := SelfEndpoint(fsys); got != "10.0.0.1:6443" {
		t.Errorf("SelfEndpoint from the flags = %q", got)
	}
	writeManifest(t, fsys, "kube-apiserver", "kind: Pod\nmetadata:\n  annotations:\n    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: 10.0.0.1:16443\n"+
		"spec:\n  containers:\n  - name: kube-apiserver\n    command: [kube-apiserver, --advertise-address=10.0.0.1]\n")
	if got := SelfEndpoint(fsys); got != "10.0.0.1:16443" {
		t.Errorf("SelfEndpoint from the annotation = %q", got)
	}
}

func apiserverPod(node, endpoint string, ready corev1.ConditionStatus, reason string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-apiserver-" + node, Namespace: "kube-system", Labels: staticpod.Labels("kube-apiserver")},
		Spec:       corev1.PodSpec{NodeName: node},
	}
	if endpoint != "" {
		p.Annotations = map[string]string{staticpod.APIServerAdvertiseAddressAnnotation: endpoint}
	}
	if ready != "" {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: ready, Reason: reason, Message: "why: " + reason}}
	}
	return p
}

// withContainer gives p the status of a kube-apiserver container with id (and of a sidecar that is not it).
func withContainer(p *corev1.Pod, id string) *corev1.Pod {
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "sidecar", ContainerID: "containerd://other"}, {Name: "kube-apiserver", ContainerID: id}}
	return p
}

func kubernetesSliceOf(addrs ...string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To[int32](6443)}},
	}
	for _, a := range addrs {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{a}})
	}
	return s
}

func TestAPIServersOf(t *testing.T) {
	const notInSlice = "it is not a ready endpoint of the EndpointSlice default/kubernetes, where every running API server keeps its address"
	tests := []struct {
		name    string
		objects []runtime.Object
		listErr error
		want    []APIServer
		wantErr string
	}{
		{name: "three ready control planes",
			objects: []runtime.Object{
				apiserverPod("cp-1", "10.0.0.1:6443", corev1.ConditionTrue, ""), apiserverPod("cp-2", "10.0.0.2:6443", corev1.ConditionTrue, ""),
				apiserverPod("cp-3", "10.0.0.3:6443", corev1.ConditionTrue, ""), kubernetesSliceOf("10.0.0.1", "10.0.0.2", "10.0.0.3"),
			},
			want: []APIServer{
				{Name: "kube-apiserver-cp-1", Endpoint: "10.0.0.1:6443", Self: true, Ready: true},
				{Name: "kube-apiserver-cp-2", Endpoint: "10.0.0.2:6443", Ready: true},
				{Name: "kube-apiserver-cp-3", Endpoint: "10.0.0.3:6443", Ready: true},
			}},
		{name: "a Pod not Ready, and one Ready whose API server left the slice (its node died a moment ago)",
			objects: []runtime.Object{
				apiserverPod("cp-1", "10.0.0.1:6443", corev1.ConditionTrue, ""), apiserverPod("cp-2", "10.0.0.2:6443", corev1.ConditionFalse, "ContainersNotReady"),
				apiserverPod("cp-3", "10.0.0.3:6443", corev1.ConditionTrue, ""), kubernetesSliceOf("10.0.0.1", "10.0.0.2"),
			},
			want: []APIServer{
				{Name: "kube-apiserver-cp-1", Endpoint: "10.0.0.1:6443", Self: true, Ready: true},
				{Name: "kube-apiserver-cp-2", Endpoint: "10.0.0.2:6443", Problem: "its Pod is not Ready (ContainersNotReady: why: ContainersNotReady)"},
				{Name: "kube-apiserver-cp-3", Endpoint: "10.0.0.3:6443", Problem: notInSlice},
			}},
		{name: "a Pod without status, one without kubeadm's annotation, an endpoint without a Pod",
			objects: []runtime.Object{
				apiserverPod("cp-1", "10.0.0.1:6443", corev1.ConditionTrue, ""), apiserverPod("cp-2", "10.0.0.2:6443", "", ""),
				apiserverPod("cp-4", "", corev1.ConditionTrue, ""), kubernetesSliceOf("10.0.0.1", "10.0.0.2", "10.0.0.9"),
			},
			want: []APIServer{
				{Name: "10.0.0.9:6443", Endpoint: "10.0.0.9:6443", Ready: true},
				{Name: "kube-apiserver-cp-1", Endpoint: "10.0.0.1:6443", Self: true, Ready: true},
				{Name: "kube-apiserver-cp-2", Endpoint: "10.0.0.2:6443", Problem: "its Pod is not Ready"},
				{Name: "kube-apiserver-cp-4", Ready: true},
			}},
		{name: "the container each Pod's status reports",
			objects: []runtime.Object{
				withContainer(apiserverPod("cp-1", "10.0.0.1:6443", corev1.ConditionTrue, ""), "containerd://0123456789abcdef"),
				withContainer(apiserverPod("cp-2", "10.0.0.2:6443", corev1.ConditionTrue, ""), "fedcba"),
				kubernetesSliceOf("10.0.0.1", "10.0.0.2"),
			},
			want: []APIServer{
				{Name: "kube-apiserver-cp-1", Endpoint: "10.0.0.1:6443", Self: true, Ready: true, ContainerID: "0123456789abcdef"},
				{Name: "kube-apiserver-cp-2", Endpoint: "10.0.0.2:6443", Ready: true, ContainerID: "fedcba"},
			}},
		{name: "no EndpointSlice: the Pods alone",
			objects: []runtime.Object{apiserverPod("cp-1", "10.0.0.1:6443", corev1.ConditionTrue, ""), apiserverPod("cp-2", "10.0.0.2:6443", corev1.ConditionTrue, "")},
			want: []APIServer{
				{Name: "kube-apiserver-cp-1", Endpoint: "10.0.0.1:6443", Self: true, Ready: true},
				{Name: "kube-apiserver-cp-2", Endpoint: "10.0.0.2:6443", Ready: true},
			}},
		{name: "the API refuses", listErr: errors.New("Unauthorized"), wantErr: "list the kube-apiserver Pods in kube-system: Unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset(tt.objects...)
			if tt.listErr != nil {
				client.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, tt.listErr })
			}
			got, err := APIServersOf(t.Context(), client, "10.0.0.1:6443")
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("APIServersOf error %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("APIServersOf (-want +got):\n%s", d)
			}
		})
	}
}

type members []etcd.MemberStatus

func (m members) EtcdMembers(context.Context) ([]etcd.MemberStatus, error) { return m, nil }
func (members) APIServers(context.Context) ([]APIServer, error)            { return nil, nil }

func TestNodeProber(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		w.Write([]byte("[-]etcd failed: reason withheld\n" + r.URL.Path))
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	host, port, _ := net.SplitHostPort(u.Host)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(plain.Close)

	fsys := nodefs.FS{Root: t.TempDir()}
	writeManifest(t, fsys, "kube-apiserver", "kind: Pod\nspec:\n  containers:\n  - name: kube-apiserver\n    command: [kube-apiserver, --advertise-address="+host+", --secure-port="+port+"]\n")
	writeManifest(t, fsys, "etcd", "kind: Pod\nspec:\n  containers:\n  - name: etcd\n    command: [etcd, --listen-metrics-urls="+plain.URL+"]\n")
	down := member(2, "cp-2", false, "unreachable: connection refused")
	p := &NodeProber{FS: fsys, Cluster: members{healthyMembers[0], down}}

	if err := p.Probe(t.Context(), "kube-apiserver"); err != nil {
		t.Errorf("Probe(ready API server): %v", err)
	}
	status = http.StatusInternalServerError
	want := "GET " + srv.URL + "/readyz: HTTP 500: [-]etcd failed: reason withheld\n/readyz"
	if err := p.Probe(t.Context(), "kube-apiserver"); err == nil || err.Error() != want {
		t.Errorf("Probe(API server not ready) = %v\nwant %s", err, want)
	}
	want = "etcd member cp-2 (https://10.0.0.2:2380) is not healthy: unreachable: connection refused"
	if err := p.Probe(t.Context(), "etcd"); err == nil || err.Error() != want {
		t.Errorf("Probe(etcd, a member down) = %v\nwant %s", err, want)
	}
	p.Cluster = members(healthyMembers)
	if err := p.Probe(t.Context(), "etcd"); err != nil {
		t.Errorf("Probe(etcd, all healthy): %v", err)
	}
	want = "read the static Pod of kube-scheduler: open " + fsys.Path(staticpod.Path("kube-scheduler")) + ": no such file or directory"
	if err := p.Probe(t.Context(), "kube-scheduler"); err == nil || err.Error() != want {
		t.Errorf("Probe(no manifest) = %v\nwant %s", err, want)
	}
}
