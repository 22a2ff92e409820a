package pki

import (
	"net"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kubeboot.dev/kubeboot/internal/config"
)

// testConfig is a defaulted configuration as the config package hands it over, built by hand.
func testConfig(alg config.EncryptionAlgorithmType) *config.Init {
	return &config.Init{
		Init: config.InitConfiguration{
			NodeRegistration: config.NodeRegistrationOptions{Name: "cp-1", CRISocket: config.DefaultCRISocket},
			LocalAPIEndpoint: config.APIEndpoint{AdvertiseAddress: "192.168.10.5", BindPort: 6443},
		},
		Cluster: config.ClusterConfiguration{
			Etcd:                        config.Etcd{Local: &config.LocalEtcd{DataDir: config.DefaultEtcdDataDir}},
			Networking:                  config.Networking{ServiceSubnet: "10.96.0.0/12", DNSDomain: "cluster.local"},
			KubernetesVersion:           "v1.37.2",
			CertificatesDir:             config.DefaultCertificatesDir,
			ImageRepository:             config.DefaultImageRepository,
			ClusterName:                 config.DefaultClusterName,
			EncryptionAlgorithm:         alg,
			CertificateValidityPeriod:   &metav1.Duration{Duration: 8760 * time.Hour},
			CACertificateValidityPeriod: &metav1.Duration{Duration: 87600 * time.Hour},
		},
	}
}

func ips(ss ...string) []net.IP {
	var out []net.IP
	for _, s := range ss {
		out = append(out, net.ParseIP(s))
	}
	return out
}

func TestPhasesAreKubeadms(t *testing.T) {
	var got []string
	for _, p := range Phases() {
		got = append(got, p.Name)
	}
	want := []string{"ca", "apiserver", "apiserver-kubelet-client", "front-proxy-ca", "front-proxy-client", "etcd-ca",
		"etcd-server", "etcd-peer", "etcd-healthcheck-client", "apiserver-etcd-client", "sa"}
	if !slices.Equal(got, want) {
		t.Fatalf("phases = %v, want %v", got, want)
	}
	if p := Phases()[1]; p.Short != "Generate the certificate for serving the Kubernetes API" {
		t.Errorf("apiserver phase description = %q", p.Short)
	}
}

func TestRequestSANs(t *testing.T) {
	defaultDNS := []string{"cp-1", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	tests := []struct {
		name    string
		spec    string
		mutate  func(*config.Init)
		wantDNS []string
		wantIPs []net.IP
		wantErr string
	}{
		{
			name: "apiserver defaults", spec: "apiserver",
			wantDNS: defaultDNS, wantIPs: ips("10.96.0.1", "192.168.10.5"),
		},
		{
			name: "apiserver with DNS endpoint and certSANs, duplicates removed", spec: "apiserver",
			mutate: func(c *config.Init) {
				c.Cluster.ControlPlaneEndpoint = "lb.example.com:7443"
				c.Cluster.APIServer.CertSANs = []string{"10.0.0.100", "*.apps.example.com", "cp-1", "192.168.10.5", "api.example.com"}
			},
			wantDNS: []string{"*.apps.example.com", "api.example.com", "cp-1", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
				"kubernetes.default.svc.cluster.local", "lb.example.com"},
			wantIPs: ips("10.96.0.1", "192.168.10.5", "10.0.0.100"),
		},
		{
			name: "apiserver with IP endpoint", spec: "apiserver",
			mutate:  func(c *config.Init) { c.Cluster.ControlPlaneEndpoint = "10.0.0.50" },
			wantDNS: defaultDNS, wantIPs: ips("10.96.0.1", "192.168.10.5", "10.0.0.50"),
		},
		{
			name: "apiserver IPv6 first in a dual-stack service subnet, other DNS domain", spec: "apiserver",
			mutate: func(c *config.Init) {
				c.Init.LocalAPIEndpoint.AdvertiseAddress = "fd00::5"
				c.Cluster.Networking.ServiceSubnet = "fd00:10:96::/112,10.96.0.0/12"
				c.Cluster.Networking.DNSDomain = "corp.internal"
				c.Cluster.ControlPlaneEndpoint = "[fd00::100]:6443"
			},
			wantDNS: []string{"cp-1", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.corp.internal"},
			wantIPs: ips("fd00:10:96::1", "fd00::5", "fd00::100"),
		},
		{
			name: "etcd server", spec: "etcd-server",
			mutate:  func(c *config.Init) { c.Cluster.Etcd.Local.ServerCertSANs = []string{"etcd.example.com", "10.1.1.1"} },
			wantDNS: []string{"cp-1", "etcd.example.com", "localhost"}, wantIPs: ips("192.168.10.5", "127.0.0.1", "::1", "10.1.1.1"),
		},
		{
			name: "etcd peer ignores serverCertSANs", spec: "etcd-peer",
			mutate: func(c *config.Init) {
				c.Cluster.Etcd.Local.ServerCertSANs = []string{"server.example.com"}
				c.Cluster.Etcd.Local.PeerCertSANs = []string{"peer.example.com"}
			},
			wantDNS: []string{"cp-1", "localhost", "peer.example.com"}, wantIPs: ips("192.168.10.5", "127.0.0.1", "::1"),
		},
		{
			name: "CA names itself", spec: "etcd-ca",
			wantDNS: []string{"etcd-ca"},
		},
		{
			name: "client certificate has no SANs", spec: "apiserver-kubelet-client",
		},
		{
			name: "invalid certSAN", spec: "apiserver",
			mutate:  func(c *config.Init) { c.Cluster.APIServer.CertSANs = []string{"ok.example.com", "bad_name!"} },
			wantErr: `apiserver certificate: apiServer.certSANs[1] "bad_name!" is neither an IP address nor a DNS name (RFC 1123, a leading "*." allowed)`,
		},
		{
			name: "invalid etcd peer SAN", spec: "etcd-peer",
			mutate:  func(c *config.Init) { c.Cluster.Etcd.Local.PeerCertSANs = []string{"-x-"} },
			wantErr: `etcd-peer certificate: etcd.local.peerCertSANs[0] "-x-" is neither an IP address nor a DNS name (RFC 1123, a leading "*." allowed)`,
		},
		{
			name: "advertise address not an IP", spec: "apiserver",
			mutate:  func(c *config.Init) { c.Init.LocalAPIEndpoint.AdvertiseAddress = "cp-1.example.com" },
			wantErr: `apiserver certificate: localAPIEndpoint.advertiseAddress "cp-1.example.com" is not an IP address`,
		},
		{
			name: "bad service subnet", spec: "apiserver",
			mutate:  func(c *config.Init) { c.Cluster.Networking.ServiceSubnet = "10.96.0.0" },
			wantErr: `apiserver certificate: networking.serviceSubnet "10.96.0.0": netip.ParsePrefix("10.96.0.0"): no '/'`,
		},
		{
			name: "bad endpoint port", spec: "apiserver",
			mutate:  func(c *config.Init) { c.Cluster.ControlPlaneEndpoint = "lb.example.com:99999" },
			wantErr: `apiserver certificate: controlPlaneEndpoint: "lb.example.com:99999": port "99999" must be a number between 1 and 65535`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(config.EncryptionAlgorithmECDSAP256)
			if tt.mutate != nil {
				tt.mutate(cfg)
			}
			s, ok := SpecByName(tt.spec)
			if !ok {
				t.Fatalf("no spec %q", tt.spec)
			}
			req, err := s.Request(cfg.ClusterPart(), cfg.NodePart())
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(req.DNSNames, tt.wantDNS) {
				t.Errorf("DNS names = %q, want %q", req.DNSNames, tt.wantDNS)
			}
			if !slices.EqualFunc(req.IPs, tt.wantIPs, net.IP.Equal) {
				t.Errorf("IPs = %v, want %v", req.IPs, tt.wantIPs)
			}
		})
	}
}

func TestRequestSubjectAndValidity(t *testing.T) {
	cfg := testConfig(config.EncryptionAlgorithmRSA3072)
	cfg.Cluster.CertificateValidityPeriod = &metav1.Duration{Duration: 48 * time.Hour}
	cfg.Cluster.CACertificateValidityPeriod = &metav1.Duration{Duration: 96 * time.Hour}
	tests := []struct {
		spec     string
		cn       string
		org      []string
		validity time.Duration
	}{
		{"ca", "kubernetes", nil, 96 * time.Hour},
		{"apiserver", "kube-apiserver", nil, 48 * time.Hour},
		{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", nil, 48 * time.Hour},
		{"etcd-server", "cp-1", nil, 48 * time.Hour},
		{"etcd-peer", "cp-1", nil, 48 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s, _ := SpecByName(tt.spec)
			req, err := s.Request(cfg.ClusterPart(), cfg.NodePart())
			if err != nil {
				t.Fatal(err)
			}
			if req.CommonName != tt.cn || !slices.Equal(req.Organization, tt.org) || req.Validity != tt.validity || req.Algorithm != config.EncryptionAlgorithmRSA3072 {
				t.Errorf("request = CN %q O %q validity %s alg %s, want CN %q O %q validity %s", req.CommonName, req.Organization, req.Validity, req.Algorithm, tt.cn, tt.org, tt.validity)
			}
		})
	}
}

func TestSplitHostPort(t *testing.T) {
	tests := []struct {
		in, host, port, err string
	}{
		{in: "lb.example.com", host: "lb.example.com"},
		{in: "lb.example.com:7443", host: "lb.example.com", port: "7443"},
		{in: "10.0.0.1:6443", host: "10.0.0.1", port: "6443"},
		{in: "fd00::1", host: "fd00::1"},
		{in: "[fd00::1]:6443", host: "fd00::1", port: "6443"},
		{in: "lb:0", err: `"lb:0": port "0" must be a number between 1 and 65535`},
		{in: "under_score:6443", err: `"under_score:6443": host "under_score" must be an IP address or a DNS name`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			host, port, err := SplitHostPort(tt.in)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || host != tt.host || port != tt.port {
				t.Fatalf("= %q, %q, %v; want %q, %q", host, port, err, tt.host, tt.port)
			}
		})
	}
}
