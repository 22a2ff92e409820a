package cli

import (
	"net"
	"slices"
	"strings"
	"testing"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/pki"
)

// TestInitLocalEndpointSAN: with the node-local API endpoint on, init's API server certificate is also for
// 127.0.0.1, through apiServer.certSANs (which kubeadm-config keeps); without it, certSANs are as given.
func TestInitLocalEndpointSAN(t *testing.T) {
	const base = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint: {advertiseAddress: 10.1.2.3}\n" +
		"nodeRegistration: {name: cp-1}\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer: {certSANs: [lb.example]}\n"
	const doc = "---\napiVersion: kubeboot.dev/v1alpha1\nkind: KubebootConfiguration\nnodeLocalAPIEndpoint: {enabled: %s}\n"
	env := config.Environment{
		Hostname:              func() (string, error) { return "cp-1", nil },
		AdvertiseAddress:      func() (net.IP, error) { return net.ParseIP("10.1.2.3"), nil },
		SystemdResolvedActive: func() bool { return false },
		Random:                strings.NewReader(strings.Repeat("k", 256)),
	}
	for _, tc := range []struct {
		name, file string
		want       []string
	}{
		{name: "without the document", file: base, want: []string{"lb.example"}},
		{name: "disabled", file: base + strings.Replace(doc, "%s", "false", 1), want: []string{"lb.example"}},
		{name: "enabled", file: base + strings.Replace(doc, "%s", "true", 1), want: []string{"lb.example", "127.0.0.1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := resolveInitConfig([]byte(tc.file), config.InitFlags{}, env)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.Cluster.APIServer.CertSANs, tc.want) {
				t.Errorf("certSANs %v, want %v", cfg.Cluster.APIServer.CertSANs, tc.want)
			}
			alt, err := pki.APIServerSANs(cfg.ClusterPart(), cfg.NodePart())
			if err != nil {
				t.Fatal(err)
			}
			has := slices.ContainsFunc(alt.IPs, func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) })
			if want := len(tc.want) == 2; has != want {
				t.Errorf("the API server certificate is for 127.0.0.1: %v, want %v (%v)", has, want, alt.IPs)
			}
		})
	}
}
