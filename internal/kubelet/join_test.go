package kubelet

import (
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/patches"
)

// clusterKubelet is kube-system/kubelet-config's document as init uploads it.
func clusterKubelet(t *testing.T) []byte {
	t.Helper()
	kc := kubeadmKubelet("10.96.0.10", "cluster.local")
	kc.TypeMeta = metav1.TypeMeta{APIVersion: config.KubeletGroupVer, Kind: config.KindKubelet}
	b, err := yaml.Marshal(kc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConfigFromCluster(t *testing.T) {
	got, err := ConfigFromCluster(append(clusterKubelet(t), "someFutureField: true\n"...))
	if err != nil {
		t.Fatal(err)
	}
	want := kubeadmKubelet("10.96.0.10", "cluster.local")
	want.TypeMeta = metav1.TypeMeta{APIVersion: config.KubeletGroupVer, Kind: config.KindKubelet}
	if !apiequality.Semantic.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	_, err = ConfigFromCluster([]byte("apiVersion: v1\nkind: ConfigMap\n"))
	if err == nil || err.Error() != "the cluster's kubelet configuration is v1 ConfigMap, want kubelet.config.k8s.io/v1beta1 KubeletConfiguration" {
		t.Fatalf("got %v", err)
	}
}

func TestRenderJoin(t *testing.T) {
	worker := config.NodeRegistrationOptions{Name: "worker-1", CRISocket: config.DefaultCRISocket}
	tests := []struct {
		name           string
		in             func(in *JoinInput)
		wantFlags      string
		wantInstance   string
		wantEndpoint   string // containerRuntimeEndpoint in config.yaml
		wantResolvConf *string
	}{
		{
			name:         "worker named like its host",
			in:           func(*JoinInput) {},
			wantFlags:    `KUBELET_KUBEADM_ARGS=""` + "\n",
			wantInstance: `containerRuntimeEndpoint: "unix:///var/run/containerd/containerd.sock"` + "\n",
			wantEndpoint: config.DefaultCRISocket,
		},
		{
			name: "other name, taints, extra args, own registry",
			in: func(in *JoinInput) {
				in.Hostname = "machine-7"
				in.Cluster.ImageRepository = "registry.lab:5000"
				in.NodeRegistration.Taints = []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule},
					{Key: "spot", Effect: corev1.TaintEffectPreferNoSchedule}}
				in.NodeRegistration.KubeletExtraArgs = []config.Arg{{Name: "node-ip", Value: "10.0.0.21"}, {Name: "pod-infra-container-image", Value: "mine/pause:1"}}
			},
			wantFlags: `KUBELET_KUBEADM_ARGS="--hostname-override=worker-1 --register-with-taints=dedicated=gpu:NoSchedule,spot:PreferNoSchedule ` +
				`--node-ip=10.0.0.21 --pod-infra-container-image=mine/pause:1"` + "\n",
			wantInstance: `containerRuntimeEndpoint: "unix:///var/run/containerd/containerd.sock"` + "\n",
			wantEndpoint: config.DefaultCRISocket,
		},
		{
			name: "control plane registers no taints by flag",
			in: func(in *JoinInput) {
				in.ControlPlane = true
				in.NodeRegistration.Taints = []corev1.Taint{config.ControlPlaneTaint()}
			},
			wantFlags:    `KUBELET_KUBEADM_ARGS=""` + "\n",
			wantInstance: `containerRuntimeEndpoint: "unix:///var/run/containerd/containerd.sock"` + "\n",
			wantEndpoint: config.DefaultCRISocket,
		},
		{
			name:         "another CRI socket goes to instance-config.yaml, never to a flag",
			in:           func(in *JoinInput) { in.NodeRegistration.CRISocket = "unix:///run/crio/crio.sock" },
			wantFlags:    `KUBELET_KUBEADM_ARGS=""` + "\n",
			wantInstance: `containerRuntimeEndpoint: "unix:///run/crio/crio.sock"` + "\n",
			wantEndpoint: "unix:///run/crio/crio.sock",
		},
		{
			name:           "systemd-resolved",
			in:             func(in *JoinInput) { in.SystemdResolved = true },
			wantFlags:      `KUBELET_KUBEADM_ARGS=""` + "\n",
			wantInstance:   `containerRuntimeEndpoint: "unix:///var/run/containerd/containerd.sock"` + "\n",
			wantEndpoint:   config.DefaultCRISocket,
			wantResolvConf: ptrTo(config.KubeletSystemdResolverConfig),
		},
		{
			name: "systemd-resolved, but the cluster names a resolv.conf",
			in: func(in *JoinInput) {
				in.SystemdResolved = true
				in.Kubelet.ResolverConfig = ptrTo("/etc/k8s-resolv.conf")
			},
			wantFlags:      `KUBELET_KUBEADM_ARGS=""` + "\n",
			wantInstance:   `containerRuntimeEndpoint: "unix:///var/run/containerd/containerd.sock"` + "\n",
			wantEndpoint:   config.DefaultCRISocket,
			wantResolvConf: ptrTo("/etc/k8s-resolv.conf"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fromCluster, err := ConfigFromCluster(clusterKubelet(t))
			if err != nil {
				t.Fatal(err)
			}
			in := JoinInput{
				NodeRegistration: worker,
				Cluster:          config.ClusterConfiguration{ImageRepository: config.DefaultImageRepository},
				Kubelet:          fromCluster,
				Hostname:         "worker-1",
			}
			tt.in(&in)
			before := in.Kubelet.DeepCopy()
			files, err := RenderJoin(in)
			if err != nil {
				t.Fatal(err)
			}
			if string(files.Flags) != tt.wantFlags {
				t.Errorf("flags\n got %s\nwant %s", files.Flags, tt.wantFlags)
			}
			if string(files.InstanceConfig) != tt.wantInstance {
				t.Errorf("instance config %q, want %q", files.InstanceConfig, tt.wantInstance)
			}
			var got kubeletv1beta1.KubeletConfiguration
			if err := yaml.UnmarshalStrict(files.Config, &got); err != nil {
				t.Fatal(err)
			}
			want := fromCluster.DeepCopy()
			want.ContainerRuntimeEndpoint = tt.wantEndpoint
			want.ResolverConfig = tt.wantResolvConf
			if !apiequality.Semantic.DeepEqual(&got, want) {
				t.Errorf("config.yaml decodes to\n%+v\nwant\n%+v", got, *want)
			}
			if !apiequality.Semantic.DeepEqual(in.Kubelet, before) {
				t.Error("RenderJoin changed the cluster's configuration it was given")
			}
		})
	}
}

func TestRenderJoinWithoutKubeletConfig(t *testing.T) {
	_, err := RenderJoin(JoinInput{})
	if err == nil || err.Error() != "render /var/lib/kubelet/config.yaml: the cluster's KubeletConfiguration is missing" {
		t.Fatalf("got %v", err)
	}
}

func TestWriteJoin(t *testing.T) {
	fs := nodefs.FS{Root: t.TempDir()}
	files := JoinFiles{Config: []byte("c\n"), InstanceConfig: []byte("i\n"), Flags: []byte("f\n")}
	if err := WriteJoin(fs, files); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{config.KubeletConfigFile: "c\n", InstanceConfigFile: "i\n", config.KubeletFlagsEnvFile: "f\n"} {
		got, err := fs.ReadFile(path)
		if err != nil || string(got) != want {
			t.Fatalf("%s: %q, %v", path, got, err)
		}
		st, err := os.Stat(fs.Path(path))
		if err != nil || st.Mode().Perm() != 0o644 {
			t.Fatalf("%s: mode %v, %v", path, st.Mode(), err)
		}
	}
	st, err := os.Stat(fs.Path(config.KubeletDir))
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("kubelet dir mode %v, %v", st.Mode(), err)
	}
	fs2 := nodefs.FS{Root: t.TempDir()}
	if err := WriteJoin(fs2, JoinFiles{Config: []byte("c\n"), Flags: []byte("f\n")}); err != nil {
		t.Fatal(err)
	}
	if fs2.Exists(InstanceConfigFile) {
		t.Fatal("instance-config.yaml written although the files had none")
	}
}

func TestRenderJoinWithPatches(t *testing.T) {
	fromCluster, err := ConfigFromCluster(clusterKubelet(t))
	if err != nil {
		t.Fatal(err)
	}
	patch := patches.Patch{File: "/etc/kubernetes/patches/kubeletconfiguration.yaml", Doc: 1, Target: patches.KubeletConfiguration,
		Type: types.StrategicMergePatchType, Data: []byte(`{"maxPods": 50, "containerRuntimeEndpoint": "unix:///patched.sock"}`)}
	files, err := RenderJoin(JoinInput{
		NodeRegistration: config.NodeRegistrationOptions{Name: "worker-1", CRISocket: config.DefaultCRISocket},
		Cluster:          config.ClusterConfiguration{ImageRepository: config.DefaultImageRepository},
		Kubelet:          fromCluster,
		Hostname:         "worker-1",
		Patches:          patches.NewSet(patch),
	})
	if err != nil {
		t.Fatal(err)
	}
	var got kubeletv1beta1.KubeletConfiguration
	if err := yaml.UnmarshalStrict(files.Config, &got); err != nil {
		t.Fatal(err)
	}
	// The user's patch applies; the node's CRI socket is patched in after it, as kubeadm does with instance-config.yaml.
	if got.MaxPods != 50 || got.ContainerRuntimeEndpoint != config.DefaultCRISocket || len(files.Applied) != 1 || files.Applied[0].File != patch.File {
		t.Fatalf("maxPods %d, containerRuntimeEndpoint %q, applied %v", got.MaxPods, got.ContainerRuntimeEndpoint, files.Applied)
	}
}
