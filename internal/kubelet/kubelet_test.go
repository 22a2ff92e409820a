package kubelet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/release"
	"kubeboot.dev/kubeboot/internal/staticpod"
	"kubeboot.dev/kubeboot/internal/testutil/golden"
)

func ptrTo[T any](v T) *T { return &v }

// kubeadmKubelet is the KubeletConfiguration kubeadm's defaulting produces for a cluster with this service DNS
// address and domain (what bundle.go promises the config package hands over).
func kubeadmKubelet(dnsIP, domain string) *kubeletv1beta1.KubeletConfiguration {
	return &kubeletv1beta1.KubeletConfiguration{
		FeatureGates:  map[string]bool{},
		StaticPodPath: staticpod.Dir,
		ClusterDNS:    []string{dnsIP},
		ClusterDomain: domain,
		Authentication: kubeletv1beta1.KubeletAuthentication{
			X509:      kubeletv1beta1.KubeletX509Authentication{ClientCAFile: "/etc/kubernetes/pki/ca.crt"},
			Anonymous: kubeletv1beta1.KubeletAnonymousAuthentication{Enabled: ptrTo(false)},
			Webhook:   kubeletv1beta1.KubeletWebhookAuthentication{Enabled: ptrTo(true)},
		},
		Authorization:      kubeletv1beta1.KubeletAuthorization{Mode: kubeletv1beta1.KubeletAuthorizationModeWebhook},
		HealthzBindAddress: "127.0.0.1",
		HealthzPort:        ptrTo[int32](10248),
		RotateCertificates: true,
		CgroupDriver:       "systemd",
	}
}

// defaultConfig mirrors testdata/kubeadm/default/kubeadm.yaml after defaulting.
func defaultConfig() *config.Init {
	return &config.Init{
		Init: config.InitConfiguration{
			NodeRegistration: config.NodeRegistrationOptions{
				Name:            "cp1",
				CRISocket:       config.DefaultCRISocket,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Taints:          []corev1.Taint{{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}},
			},
			LocalAPIEndpoint: config.APIEndpoint{AdvertiseAddress: "10.77.0.10", BindPort: 6443},
			Timeouts:         &config.Timeouts{ControlPlaneComponentHealthCheck: &metav1.Duration{Duration: 4 * time.Minute}},
		},
		Cluster: config.ClusterConfiguration{
			Etcd:              config.Etcd{Local: &config.LocalEtcd{DataDir: config.DefaultEtcdDataDir}},
			Networking:        config.Networking{ServiceSubnet: config.DefaultServiceSubnet, PodSubnet: "10.244.0.0/16", DNSDomain: config.DefaultDNSDomain},
			KubernetesVersion: "v1.37.2",
			CertificatesDir:   config.DefaultCertificatesDir,
			ImageRepository:   config.DefaultImageRepository,
			ClusterName:       config.DefaultClusterName,
		},
		Kubelet: kubeadmKubelet("10.96.0.10", "cluster.local"),
		Proxy:   &kubeproxyv1alpha1.KubeProxyConfiguration{},
	}
}

// criExtraConfig mirrors testdata/kubeadm/flags-cri-extra/kubeadm.yaml after defaulting.
func criExtraConfig() *config.Init {
	cfg := defaultConfig()
	cfg.Init.LocalAPIEndpoint.AdvertiseAddress = "10.77.0.12"
	nr := &cfg.Init.NodeRegistration
	nr.Name = "kb-ref-host"
	nr.CRISocket = "unix:///run/containerd/containerd.sock"
	nr.KubeletExtraArgs = []config.Arg{
		{Name: "node-ip", Value: "10.77.0.12"},
		{Name: "v", Value: "4"},
		{Name: "image-gc-high-threshold", Value: "90"},
		{Name: "node-labels", Value: "lab=yes,zone=a b"},
	}
	cfg.Cluster.ImageRepository = "images.lab.example"
	cfg.Cluster.Networking = config.Networking{ServiceSubnet: "10.100.0.0/16", DNSDomain: "lab.local"}
	kc := kubeadmKubelet("10.100.0.10", "lab.local")
	kc.CgroupDriver = "cgroupfs"
	kc.CgroupRoot = "/node1"
	kc.FailSwapOn = ptrTo(false)
	kc.RegistryPullQPS = ptrTo[int32](0)
	kc.SyncFrequency = metav1.Duration{Duration: 30 * time.Second}
	kc.EvictionHard = map[string]string{"memory.available": "100Mi"}
	cfg.Kubelet = kc
	return cfg
}

// refHostname is the hostname generate.sh gives kubeadm.
const refHostname = "kb-ref-host"

type fileCase struct {
	name string
	cfg  *config.Init
}

func fileCases() []fileCase {
	return []fileCase{{"default", defaultConfig()}, {"flags-cri-extra", criExtraConfig()}, {"patches", patchesConfig()}}
}

// renderFiles returns what WriteConfig and WriteFlags write for fc, by file name. A case whose
// testdata/kubeadm/<name> has a patches folder gets it at its patches.directory first.
func renderFiles(t *testing.T, fc fileCase) map[string][]byte {
	t.Helper()
	cfg := fc.cfg
	root := t.TempDir()
	fs := nodefs.FS{Root: root}
	if p := cfg.Init.Patches; p != nil {
		src := filepath.Join(kubeadmRefs(release.Default()), fc.name, "patches")
		if err := os.CopyFS(fs.Path(p.Directory), os.DirFS(src)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := WriteConfig(fs, cfg.ClusterPart(), cfg.NodePart()); err != nil {
		t.Fatal(err)
	}
	if err := WriteFlags(fs, cfg.NodePart(), refHostname); err != nil {
		t.Fatal(err)
	}
	files, err := fs.List(config.KubeletDir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := fs.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func TestGolden(t *testing.T) {
	for _, fc := range fileCases() {
		t.Run(fc.name, func(t *testing.T) {
			dir := filepath.Join("testdata", "golden", fc.name)
			got := renderFiles(t, fc)
			golden.Dir(t, dir, got)
		})
	}
}

func decodeKubelet(t *testing.T, b []byte) *kubeletv1beta1.KubeletConfiguration {
	t.Helper()
	var kc kubeletv1beta1.KubeletConfiguration
	if err := yaml.UnmarshalStrict(b, &kc); err != nil {
		t.Fatalf("decode KubeletConfiguration: %v", err)
	}
	return &kc
}

// kubeadmRefs is the directory of what upstream kubeadm of release r wrote (generate.sh).
func kubeadmRefs(r *release.Release) string {
	return filepath.Join("testdata", "kubeadm", fmt.Sprintf("v1.%d", r.Minor))
}

// TestMatchesKubeadm compares with what upstream kubeadm of each release wrote for the same configuration at that
// release's version (testdata/kubeadm/v1.MINOR, see generate.sh): the flags file and instance-config.yaml byte for
// byte, config.yaml by content, since kubeboot leaves out kubeadm's zero-valued noise.
func TestMatchesKubeadm(t *testing.T) {
	for _, r := range release.All() {
		for _, fc := range fileCases() {
			fc.cfg.Cluster.KubernetesVersion = r.Kubeadm
			t.Run(r.Kubeadm+"/"+fc.name, func(t *testing.T) { matchKubeadm(t, fc, filepath.Join(kubeadmRefs(r), fc.name)) })
		}
	}
}

func matchKubeadm(t *testing.T, fc fileCase, dir string) {
	{
		{
			refs, err := filepath.Glob(filepath.Join(dir, "*.ref"))
			if err != nil {
				t.Fatal(err)
			}
			got := renderFiles(t, fc)
			if len(refs) != len(got) {
				t.Fatalf("kubeadm wrote %d files, kubeboot %d", len(refs), len(got))
			}
			for _, ref := range refs {
				name := strings.TrimSuffix(filepath.Base(ref), ".ref")
				want, err := os.ReadFile(ref)
				if err != nil {
					t.Fatal(err)
				}
				b, ok := got[name]
				if !ok {
					t.Errorf("kubeboot does not write %s", name)
					continue
				}
				if name != "config.yaml" {
					if !bytes.Equal(b, want) {
						t.Errorf("%s\n got %q\nwant %q", name, b, want)
					}
					continue
				}
				mine, theirs := decodeKubelet(t, b), decodeKubelet(t, want)
				if !apiequality.Semantic.DeepEqual(mine, theirs) {
					t.Errorf("config.yaml decodes differently from kubeadm's\n--- kubeboot\n%s\n--- kubeadm\n%s", b, want)
				}
				if len(b) >= len(want) {
					t.Errorf("config.yaml is %d bytes, kubeadm's %d: expected the noise to be gone", len(b), len(want))
				}
			}
		}
	}
}

func TestMarshalConfigIsClean(t *testing.T) {
	b, err := Config(defaultConfig().ClusterPart(), defaultConfig().NodePart())
	if err != nil {
		t.Fatal(err)
	}
	want := `apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: unix:///var/run/containerd/containerd.sock
healthzBindAddress: 127.0.0.1
healthzPort: 10248
kind: KubeletConfiguration
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
`
	if string(b) != want {
		t.Errorf("config.yaml\n%s\nwant\n%s", b, want)
	}
}

func TestMarshalConfigKeepsExplicitValues(t *testing.T) {
	kc := &kubeletv1beta1.KubeletConfiguration{
		RegistryPullQPS:   ptrTo[int32](0),
		PodPidsLimit:      ptrTo[int64](9007199254740993), // 2^53+1: lost if numbers went through float64
		EnableServer:      ptrTo(false),
		CPUCFSQuotaPeriod: &metav1.Duration{},
		SyncFrequency:     metav1.Duration{Duration: time.Minute},
		Logging:           kubeletv1beta1.KubeletConfiguration{}.Logging,
		ShutdownGracePeriodByPodPriority: []kubeletv1beta1.ShutdownGracePeriodByPodPriority{
			{Priority: 0, ShutdownGracePeriodSeconds: 10},
		},
	}
	kc.Logging.Verbosity = 2
	b, err := MarshalConfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"registryPullQPS: 0", "podPidsLimit: 9007199254740993", "enableServer: false", "cpuCFSQuotaPeriod: 0s",
		"syncFrequency: 1m0s", "  verbosity: 2", "- priority: 0",
	} {
		if !strings.Contains(string(b), line+"\n") {
			t.Errorf("missing %q in\n%s", line, b)
		}
	}
	if strings.Contains(string(b), "flushFrequency") || strings.Contains(string(b), "infoBufferSize") {
		t.Errorf("zero logging options kept:\n%s", b)
	}
	if got := decodeKubelet(t, b); !apiequality.Semantic.DeepEqual(got, withTypeMeta(kc)) {
		t.Errorf("round trip changed the configuration:\n%s", b)
	}
	if kc.APIVersion != "" {
		t.Error("MarshalConfig modified its argument")
	}
}

func withTypeMeta(kc *kubeletv1beta1.KubeletConfiguration) *kubeletv1beta1.KubeletConfiguration {
	c := kc.DeepCopy()
	c.APIVersion, c.Kind = config.KubeletGroupVer, config.KindKubelet
	return c
}

func TestConfigCRISocket(t *testing.T) {
	cfg := defaultConfig()
	cfg.Kubelet.ContainerRuntimeEndpoint = "unix:///wrong.sock"
	b, err := Config(cfg.ClusterPart(), cfg.NodePart())
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeKubelet(t, b).ContainerRuntimeEndpoint; got != config.DefaultCRISocket {
		t.Errorf("containerRuntimeEndpoint = %q, want the node's criSocket %q", got, config.DefaultCRISocket)
	}
	if cfg.Kubelet.ContainerRuntimeEndpoint != "unix:///wrong.sock" {
		t.Error("Config modified cfg.Kubelet")
	}
	cfg.Kubelet = nil
	if _, err := Config(cfg.ClusterPart(), cfg.NodePart()); err == nil || err.Error() != "render /var/lib/kubelet/config.yaml: no KubeletConfiguration in the configuration" {
		t.Errorf("Config without a KubeletConfiguration: %v", err)
	}
}

func TestFlags(t *testing.T) {
	worker := config.NodeRegistrationOptions{
		Name:      "w1",
		CRISocket: "unix:///run/crio/crio.sock",
		Taints: []corev1.Taint{
			{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule},
			{Key: "spot", Effect: corev1.TaintEffectPreferNoSchedule},
		},
	}
	tests := []struct {
		name string
		in   FlagsInput
		want string
	}{
		{
			name: "name equals hostname",
			in:   FlagsInput{NodeRegistration: config.NodeRegistrationOptions{Name: "w1", CRISocket: "unix:///x.sock"}, Hostname: "w1"},
			want: `KUBELET_KUBEADM_ARGS=""` + "\n",
		},
		{
			name: "name differs from hostname",
			in:   FlagsInput{NodeRegistration: config.NodeRegistrationOptions{Name: "w1"}, Hostname: "host"},
			want: `KUBELET_KUBEADM_ARGS="--hostname-override=w1"` + "\n",
		},
		{
			name: "no name: the hostname",
			in:   FlagsInput{Hostname: "host"},
			want: `KUBELET_KUBEADM_ARGS=""` + "\n",
		},
		{
			name: "worker join registers taints; the CRI socket is in instance-config.yaml",
			in:   FlagsInput{NodeRegistration: worker, Hostname: "w1", RegisterTaints: true},
			want: `KUBELET_KUBEADM_ARGS="--register-with-taints=dedicated=gpu:NoSchedule,spot:PreferNoSchedule"` + "\n",
		},
		{
			name: "control-plane join does not",
			in:   FlagsInput{NodeRegistration: worker, Hostname: "w1"},
			want: `KUBELET_KUBEADM_ARGS=""` + "\n",
		},
		{
			name: "hostname-override in extra args replaces the computed one",
			in: FlagsInput{
				NodeRegistration: config.NodeRegistrationOptions{Name: "w1", KubeletExtraArgs: []config.Arg{
					{Name: "hostname-override", Value: "other"}, {Name: "node-ip", Value: "10.0.0.3"}, {Name: "node-ip", Value: "fd00::3"},
				}},
				Hostname: "host",
			},
			want: `KUBELET_KUBEADM_ARGS="--hostname-override=other --node-ip=10.0.0.3 --node-ip=fd00::3"` + "\n",
		},
		{
			name: "quotes are escaped as Go does",
			in: FlagsInput{
				NodeRegistration: config.NodeRegistrationOptions{Name: "h", KubeletExtraArgs: []config.Arg{{Name: "node-labels", Value: `a="b"`}}},
				Hostname:         "h",
			},
			want: `KUBELET_KUBEADM_ARGS="--node-labels=a=\"b\""` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(Flags(tt.in)); got != tt.want {
				t.Errorf("\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestWriteModes(t *testing.T) {
	root := t.TempDir()
	fs := nodefs.FS{Root: root}
	if _, err := WriteConfig(fs, defaultConfig().ClusterPart(), defaultConfig().NodePart()); err != nil {
		t.Fatal(err)
	}
	if err := WriteFlags(fs, defaultConfig().NodePart(), "host"); err != nil {
		t.Fatal(err)
	}
	for p, mode := range map[string]os.FileMode{
		"var/lib/kubelet":                      0o700 | os.ModeDir,
		"var/lib/kubelet/config.yaml":          0o644,
		"var/lib/kubelet/instance-config.yaml": 0o644,
		"var/lib/kubelet/kubeadm-flags.env":    0o644,
	} {
		st, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != mode {
			t.Errorf("%s mode %v, want %v", p, st.Mode(), mode)
		}
	}

	blocked := t.TempDir()
	if err := os.MkdirAll(filepath.Join(blocked, "var/lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(blocked, "var/lib/kubelet"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(blocked, "var/lib/kubelet")
	err := WriteFlags(nodefs.FS{Root: blocked}, defaultConfig().NodePart(), "host")
	if want := "create " + dir + ": mkdir " + dir + ": not a directory"; err == nil || err.Error() != want {
		t.Errorf("WriteFlags error = %v, want %s", err, want)
	}
}

func TestDetectInitSystem(t *testing.T) {
	fs := nodefs.FS{Root: t.TempDir()}
	if got := DetectInitSystem(fs).Name(); got != "none" {
		t.Errorf("without /run/systemd/system: %s, want none", got)
	}
	if err := fs.MkdirAll("/run/systemd/system", 0o755); err != nil {
		t.Fatal(err)
	}
	if got := DetectInitSystem(fs).Name(); got != "systemd" {
		t.Errorf("with /run/systemd/system: %s, want systemd", got)
	}
}

func TestSystemdRestart(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		failOn  string
		want    []string
		wantErr string
	}{
		{name: "ok", want: []string{"systemctl daemon-reload", "systemctl restart kubelet"}},
		{name: "reload fails", failOn: "systemctl daemon-reload", want: []string{"systemctl daemon-reload"},
			wantErr: "reload systemd before restarting kubelet: boom"},
		{name: "restart fails", failOn: "systemctl restart kubelet", want: []string{"systemctl daemon-reload", "systemctl restart kubelet"},
			wantErr: "restart kubelet (check `systemctl status kubelet` and `journalctl -u kubelet`): boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls []string
			s := Systemd{Run: func(_ context.Context, name string, args ...string) error {
				call := name + " " + strings.Join(args, " ")
				calls = append(calls, call)
				if call == tt.failOn {
					return boom
				}
				return nil
			}}
			err := s.Restart(t.Context(), Service)
			if !slices.Equal(calls, tt.want) {
				t.Errorf("calls %q, want %q", calls, tt.want)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("error %v", err)
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr || !errors.Is(err, boom)):
				t.Errorf("error %v, want %s wrapping boom", err, tt.wantErr)
			}
		})
	}
}

func TestSystemdEnableNow(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		failOn  string
		want    []string
		wantErr string
	}{
		{name: "ok", want: []string{"systemctl daemon-reload", "systemctl enable --now x.timer"}},
		{name: "reload fails", failOn: "systemctl daemon-reload", want: []string{"systemctl daemon-reload"},
			wantErr: "reload systemd before enabling x.timer: boom"},
		{name: "enable fails", failOn: "systemctl enable --now x.timer", want: []string{"systemctl daemon-reload", "systemctl enable --now x.timer"},
			wantErr: "enable x.timer (check `systemctl status x.timer`): boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls []string
			s := Systemd{Run: func(_ context.Context, name string, args ...string) error {
				call := name + " " + strings.Join(args, " ")
				calls = append(calls, call)
				if call == tt.failOn {
					return boom
				}
				return nil
			}}
			err := s.EnableNow(t.Context(), "x.timer")
			if !slices.Equal(calls, tt.want) {
				t.Errorf("calls %q, want %q", calls, tt.want)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("error %v", err)
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr || !errors.Is(err, boom)):
				t.Errorf("error %v, want %s wrapping boom", err, tt.wantErr)
			}
		})
	}
}

func TestRunCommand(t *testing.T) {
	if err := RunCommand(t.Context(), "sh", "-c", "exit 0"); err != nil {
		t.Errorf("success: %v", err)
	}
	err := RunCommand(t.Context(), "sh", "-c", "echo bad unit >&2; exit 3")
	var exitErr *exec.ExitError
	if err == nil || err.Error() != "sh -c echo bad unit >&2; exit 3: exit status 3: bad unit" || !errors.As(err, &exitErr) {
		t.Errorf("failure: %v", err)
	}
}

func TestNoneRestart(t *testing.T) {
	err := None{}.Restart(t.Context(), Service)
	var nie *NoInitSystemError
	if !errors.As(err, &nie) || nie.Service != Service || !errors.Is(err, ErrNoInitSystem) {
		t.Fatalf("error %#v, want a *NoInitSystemError matching ErrNoInitSystem", err)
	}
	if want := "no init system found: restart the kubelet yourself so it reads /var/lib/kubelet/config.yaml"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	if got := (&NoInitSystemError{Service: "containerd"}).Error(); got != "no init system found: restart containerd yourself" {
		t.Errorf("message %q", got)
	}
}
