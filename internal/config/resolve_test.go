package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/utils/ptr"
)

func TestResolveInit(t *testing.T) {
	t.Run("flags only", func(t *testing.T) {
		cfg, warnings, err := ResolveInit(nil, InitFlags{PodNetworkCIDR: ptr.To("10.244.0.0/16"), NodeName: ptr.To("CP-9")}, testEnv())
		if err != nil {
			t.Fatal(err)
		}
		if len(warnings) != 0 || cfg.Init.NodeRegistration.Name != "cp-9" || cfg.Proxy.ClusterCIDR != "10.244.0.0/16" ||
			cfg.Init.LocalAPIEndpoint.AdvertiseAddress != "10.0.0.10" {
			t.Errorf("got %+v, warnings %v", cfg, warnings)
		}
	})
	t.Run("v1beta3 file warns", func(t *testing.T) {
		_, warnings, err := ResolveInit([]byte(v1beta3Init), InitFlags{}, testEnv())
		if err != nil {
			t.Fatal(err)
		}
		if len(warnings) != 2 || !strings.Contains(warnings[0], "deprecated") {
			t.Errorf("warnings %v", warnings)
		}
	})
	for _, tt := range []struct {
		name  string
		file  []byte
		flags InitFlags
		want  string
	}{
		{"load error", []byte("kind: x\n"), InitFlags{},
			"document 1 (line 1): apiVersion and kind are required (" + supportedDocuments + ")"},
		{"empty file", []byte{}, InitFlags{}, "no InitConfiguration or ClusterConfiguration found in the configuration file"},
		{"mixing", []byte(fullV1beta4), InitFlags{Token: ptr.To("abcdef.0123456789abcdef")},
			"cannot mix --config with --token: set the corresponding fields in the configuration file instead"},
		{"defaulting error", nil, InitFlags{KubernetesVersion: ptr.To("latest")},
			`ClusterConfiguration: kubernetesVersion "latest" is a release label that needs an internet lookup, which kubeboot never does; pin a version such as v1.37.2`},
		{"validation error", nil, InitFlags{ServiceCIDR: ptr.To("10.0.0.0/8")},
			`ClusterConfiguration: networking.serviceSubnet: Invalid value: "10.0.0.0/8": too large: at most 20 host bits, so the prefix must be /12 or longer`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := ResolveInit(tt.file, tt.flags, testEnv())
			if cfg != nil {
				t.Errorf("got a configuration with the error")
			}
			assertError(t, err, tt.want)
		})
	}
}

func TestResolveJoin(t *testing.T) {
	hash := "sha256:" + strings.Repeat("ab", 32)
	j, warnings, err := ResolveJoin(nil, JoinFlags{
		APIServerEndpoint: "10.0.0.10:6443", Token: ptr.To("abcdef.0123456789abcdef"),
		DiscoveryTokenCACertHashes: []string{hash}, CertificateKey: ptr.To("x"),
	}, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	if j.Join.Discovery.TLSBootstrapToken != "abcdef.0123456789abcdef" || j.Join.ControlPlane != nil || j.Join.NodeRegistration.Taints != nil {
		t.Errorf("got %+v", j.Join)
	}
	if d := cmp.Diff([]string{"--certificate-key, --apiserver-advertise-address and --apiserver-bind-port are ignored without --control-plane"}, warnings); d != "" {
		t.Error(d)
	}

	_, _, err = ResolveJoin(nil, JoinFlags{}, testEnv())
	assertError(t, err, "JoinConfiguration: discovery: Required value: bootstrapToken or file; pass an API server endpoint "+
		"with --token and --discovery-token-ca-cert-hash, or --discovery-file")

	_, _, err = ResolveJoin([]byte(fullV1beta4), JoinFlags{ControlPlane: ptr.To(true)}, testEnv())
	assertError(t, err, "cannot mix --config with --control-plane: set the corresponding fields in the configuration file instead")

	j, _, err = ResolveJoin([]byte(fullV1beta4), JoinFlags{NodeName: ptr.To("w-3")}, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	if j.Join.NodeRegistration.Name != "w-3" {
		t.Errorf("node name %q", j.Join.NodeRegistration.Name)
	}
}
