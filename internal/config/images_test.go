package config

import (
	"slices"
	"testing"
)

func TestImages(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*ClusterConfiguration)
		want   []string
	}{
		{
			name: "defaults",
			want: []string{
				"registry.k8s.io/kube-apiserver:v1.37.2", "registry.k8s.io/kube-controller-manager:v1.37.2",
				"registry.k8s.io/kube-scheduler:v1.37.2", "registry.k8s.io/kube-proxy:v1.37.2",
				"registry.k8s.io/coredns/coredns:v1.14.6", "registry.k8s.io/pause:3.10.2", "registry.k8s.io/etcd:3.7.0-0",
			},
		},
		{
			name: "mirror, addons disabled, external etcd",
			modify: func(c *ClusterConfiguration) {
				c.ImageRepository = "mirror.local:5000/k8s"
				c.KubernetesVersion = "v1.37.2+kb.1"
				c.Proxy.Disabled = true
				c.DNS.Disabled = true
				c.Etcd = Etcd{External: &ExternalEtcd{}}
			},
			want: []string{
				"mirror.local:5000/k8s/kube-apiserver:v1.37.2_kb.1", "mirror.local:5000/k8s/kube-controller-manager:v1.37.2_kb.1",
				"mirror.local:5000/k8s/kube-scheduler:v1.37.2_kb.1", "mirror.local:5000/k8s/pause:3.10.2",
			},
		},
		{
			name: "image overrides",
			modify: func(c *ClusterConfiguration) {
				c.ImageRepository = "mirror.local"
				c.DNS.ImageMeta = ImageMeta{ImageTag: "v1.12.0"}
				c.Etcd.Local.ImageMeta = ImageMeta{ImageRepository: "quay.io/coreos", ImageTag: "v3.6.4"}
			},
			want: []string{
				"mirror.local/kube-apiserver:v1.37.2", "mirror.local/kube-controller-manager:v1.37.2",
				"mirror.local/kube-scheduler:v1.37.2", "mirror.local/kube-proxy:v1.37.2",
				"mirror.local/coredns:v1.12.0", "mirror.local/pause:3.10.2", "quay.io/coreos/etcd:v3.6.4",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ClusterConfiguration{
				Etcd:              Etcd{Local: &LocalEtcd{DataDir: DefaultEtcdDataDir}},
				KubernetesVersion: "v1.37.2",
				ImageRepository:   DefaultImageRepository,
			}
			if tt.modify != nil {
				tt.modify(&cfg)
			}
			got, err := cfg.Images()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Images:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestCoreDNSImage(t *testing.T) {
	for _, tc := range []struct {
		name               string
		repo, dnsRepo, tag string
		want               string
	}{
		{name: "default", repo: "registry.k8s.io", want: "registry.k8s.io/coredns/coredns:v1.14.6"},
		{name: "custom registry holds coredns at its top", repo: "lab.local:5000", want: "lab.local:5000/coredns:v1.14.6"},
		{name: "dns repository override", repo: "lab.local:5000", dnsRepo: "mirror.example/dns", want: "mirror.example/dns/coredns:v1.14.6"},
		{name: "dns override back to the default registry", repo: "lab.local:5000", dnsRepo: "registry.k8s.io", want: "registry.k8s.io/coredns/coredns:v1.14.6"},
		{name: "tag override", repo: "registry.k8s.io", tag: "v1.11.3", want: "registry.k8s.io/coredns/coredns:v1.11.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ClusterConfiguration{KubernetesVersion: "v1.37.2", ImageRepository: tc.repo}
			c.DNS.ImageRepository = tc.dnsRepo
			c.DNS.ImageTag = tc.tag
			if got, err := c.CoreDNSImage(); err != nil || got != tc.want {
				t.Errorf("CoreDNSImage = %s, %v; want %s", got, err, tc.want)
			}
		})
	}
}

func TestImagesOfEachRelease(t *testing.T) {
	for _, tc := range []struct{ version, etcd, dns, pause string }{
		{"v1.37.2", "registry.k8s.io/etcd:3.7.0-0", "registry.k8s.io/coredns/coredns:v1.14.6", "registry.k8s.io/pause:3.10.2"},
		{"v1.36.1", "registry.k8s.io/etcd:3.6.8-0", "registry.k8s.io/coredns/coredns:v1.14.2", "registry.k8s.io/pause:3.10.2"},
	} {
		c := ClusterConfiguration{KubernetesVersion: tc.version, Etcd: Etcd{Local: &LocalEtcd{}}}
		etcd, err1 := c.EtcdImage()
		dns, err2 := c.CoreDNSImage()
		pause, err3 := c.PauseImage()
		if etcd != tc.etcd || dns != tc.dns || pause != tc.pause || err1 != nil || err2 != nil || err3 != nil {
			t.Errorf("%s: etcd %q (%v), CoreDNS %q (%v), pause %q (%v); want %q, %q, %q",
				tc.version, etcd, err1, dns, err2, pause, err3, tc.etcd, tc.dns, tc.pause)
		}
	}
	c := ClusterConfiguration{KubernetesVersion: "v1.35.4", Etcd: Etcd{Local: &LocalEtcd{}}}
	want := "ClusterConfiguration: kubernetesVersion: this version of kubeboot only supports deploying clusters with the control plane version >= v1.36.0. Current version: v1.35.4"
	if _, err := c.Images(); err == nil || err.Error() != want {
		t.Errorf("Images of v1.35.4: %v\nwant %s", err, want)
	}
}
