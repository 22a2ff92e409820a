package kubelet

import (
	"testing"

	"kubeboot.dev/kubeboot/internal/nodefs"
)

func TestCRISocket(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"nothing", nil, ""},
		{"instance-config.yaml", map[string]string{
			"/var/lib/kubelet/instance-config.yaml": `containerRuntimeEndpoint: "unix:///run/crio/crio.sock"` + "\n",
			"/var/lib/kubelet/config.yaml":          "containerRuntimeEndpoint: unix:///other\n",
		}, "unix:///run/crio/crio.sock"},
		{"config.yaml", map[string]string{"/var/lib/kubelet/config.yaml": "kind: KubeletConfiguration\ncontainerRuntimeEndpoint: unix:///run/k.sock\n"}, "unix:///run/k.sock"},
		{"kubeadm-flags.env", map[string]string{
			"/var/lib/kubelet/kubeadm-flags.env": `KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/containerd/containerd.sock --node-ip=10.0.0.1"` + "\n",
		}, "unix:///run/containerd/containerd.sock"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fsys := nodefs.FS{Root: t.TempDir()}
			for p, data := range c.files {
				if err := fsys.WriteFile(p, []byte(data), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if got := CRISocket(fsys); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}
