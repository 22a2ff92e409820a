package addons

import (
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	componentbasev1alpha1 "k8s.io/component-base/config/v1alpha1"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/testutil/golden"
)

// testInit is a configuration as the loader leaves it after defaulting, for a cluster with a pod subnet.
func testInit() *config.Init {
	return &config.Init{
		Cluster: config.ClusterConfiguration{
			KubernetesVersion: "v1.37.2",
			ImageRepository:   config.DefaultImageRepository,
			ClusterName:       config.DefaultClusterName,
			CertificatesDir:   config.DefaultCertificatesDir,
			Networking: config.Networking{
				ServiceSubnet: config.DefaultServiceSubnet,
				PodSubnet:     "10.244.0.0/16",
				DNSDomain:     config.DefaultDNSDomain,
			},
		},
		Proxy: &kubeproxyv1alpha1.KubeProxyConfiguration{
			BindAddress:      "0.0.0.0",
			ClusterCIDR:      "10.244.0.0/16",
			ClientConnection: componentbasev1alpha1.ClientConnectionConfiguration{Kubeconfig: "/var/lib/kube-proxy/kubeconfig.conf"},
		},
	}
}

// checkGolden compares the YAML of objs with testdata/name, or rewrites it under -update.
func checkGolden(t *testing.T, name string, objs []runtime.Object) {
	t.Helper()
	got, err := MarshalYAML(objs...)
	if err != nil {
		t.Fatal(err)
	}
	golden.File(t, filepath.Join("testdata", name), got)
}

func TestDisabled(t *testing.T) {
	for _, tc := range []struct {
		name               string
		dns, proxy         bool
		wantDNS, wantProxy bool
	}{
		{name: "both on"},
		{name: "dns off", dns: true, wantDNS: true},
		{name: "proxy off", proxy: true, wantProxy: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testInit()
			cfg.Cluster.DNS.Disabled = tc.dns
			cfg.Cluster.Proxy.Disabled = tc.proxy
			if got := CoreDNSDisabled(cfg.ClusterPart()); got != tc.wantDNS {
				t.Errorf("CoreDNSDisabled = %v, want %v", got, tc.wantDNS)
			}
			if got := KubeProxyDisabled(cfg.ClusterPart()); got != tc.wantProxy {
				t.Errorf("KubeProxyDisabled = %v, want %v", got, tc.wantProxy)
			}
		})
	}
}
