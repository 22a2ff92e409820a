// Package pki makes and checks the cluster's certificates and keys exactly as kubeadm lays them out under
// certificatesDir (/etc/kubernetes/pki): three CAs, the leaf certificates they sign, and the service-account
// key pair.
//
// The tree is data (Specs) resolved against the cluster's configuration and the node's (config.Cluster,
// config.Node); rendering is pure (NewCA, NewSignedCert: a Source in, PEM bytes out); effects (EnsureAll, Ensure)
// go through a nodefs.FS, the node's disk or memory (nodefs.Memory, nodefs.Overlay: keys a run needs only for a
// moment, a dry run), and never overwrite what is there: an existing file is reused after it has been verified,
// or refused with a reason and a remedy.
package pki

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"kubeboot.dev/kubeboot/internal/config"
)

// Kubeadm's fixed values.
const (
	// Backdate is subtracted from "now" for NotBefore, so that small clock differences between nodes do not
	// make a fresh certificate "not yet valid".
	Backdate = 5 * time.Minute
	// DefaultValidity and DefaultCAValidity apply when the configuration leaves the periods unset.
	DefaultValidity   = 365 * 24 * time.Hour
	DefaultCAValidity = 10 * 365 * 24 * time.Hour

	// ClusterAdminsGroup is the group of admin.conf, bound to cluster-admin by the kubeadm:cluster-admins
	// ClusterRoleBinding.
	ClusterAdminsGroup = "kubeadm:cluster-admins"
	// APIServerKubeletClientUser is the CN of apiserver-kubelet-client.crt, the user the API server calls kubelets as.
	APIServerKubeletClientUser = "kube-apiserver-kubelet-client"

	// Service-account key pair file names, in certificatesDir.
	ServiceAccountKeyName = "sa.key"
	ServiceAccountPubName = "sa.pub"
)

// Phase names and describes one `certs/<name>` phase.
type Phase struct {
	Name  string
	Short string
}

// SAPhase is the name of the service-account key pair phase; it is not a certificate, so it has no Spec.
const SAPhase = "sa"

// CAPhase is the name of the cluster CA's phase (and Spec).
const CAPhase = "ca"

// Phases lists the certificate phases in kubeadm's order (the order of `kubeadm init phase certs`).
func Phases() []Phase {
	var out []Phase
	for _, s := range Specs() {
		out = append(out, Phase{Name: s.Name, Short: "Generate the " + s.Description})
	}
	return append(out, Phase{Name: SAPhase, Short: "Generate a private key for signing service account tokens along with its public key"})
}

// AltNames are the subject alternative names of a certificate.
type AltNames struct {
	DNSNames []string
	IPs      []net.IP
}

// Spec describes one certificate of the tree.
type Spec struct {
	// Name is kubeadm's name for it, also the phase name: "apiserver", "etcd-server".
	Name        string
	Description string
	// BaseName is the file name without extension, relative to certificatesDir: "apiserver", "etcd/server".
	BaseName string
	// CAName is the Name of the signing CA; empty for a self-signed CA.
	CAName string
	// CommonName is the subject CN; NodeNameCN replaces it with the node's name (etcd server and peer).
	CommonName   string
	NodeNameCN   bool
	Organization []string
	KeyUsage     x509.KeyUsage
	ExtKeyUsage  []x509.ExtKeyUsage
	// SANs computes the subject alternative names from the configuration; nil means none.
	SANs func(cluster *config.Cluster, node *config.Node) (AltNames, error)
	// LocalEtcdOnly certificates are not made when etcd is external.
	LocalEtcdOnly bool
}

// IsCA reports whether the spec is a self-signed CA.
func (s Spec) IsCA() bool { return s.CAName == "" }

// CertPath is the node path of the spec's certificate under the certificates directory dir.
func (s Spec) CertPath(dir string) string { return path.Join(dir, s.BaseName+".crt") }

// KeyPath is the node path of the spec's private key under dir.
func (s Spec) KeyPath(dir string) string { return path.Join(dir, s.BaseName+".key") }

// Key usages as kubeadm sets them, for RSA and ECDSA keys alike.
const (
	leafKeyUsage = x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature
	caKeyUsage   = leafKeyUsage | x509.KeyUsageCertSign
)

var (
	serverAuth = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	clientAuth = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	// etcd requires client auth on its serving certificates too (etcd-io/etcd#9785).
	serverClientAuth = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
)

// Specs returns every certificate kubeadm makes, CAs before the leaves they sign, in kubeadm's phase order.
func Specs() []Spec {
	return []Spec{
		caSpec(CAPhase, "self-signed Kubernetes CA to provision identities for other Kubernetes components", "ca", "kubernetes", false),
		{
			Name: "apiserver", Description: "certificate for serving the Kubernetes API",
			BaseName: "apiserver", CAName: CAPhase, CommonName: "kube-apiserver",
			KeyUsage: leafKeyUsage, ExtKeyUsage: serverAuth, SANs: APIServerSANs,
		},
		{
			Name: "apiserver-kubelet-client", Description: "certificate for the API server to connect to kubelet",
			// No Organization since 1.36: the kubeadm:apiserver-kubelet-client binding gives this user
			// system:kubelet-api-admin instead of cluster-admin.
			BaseName: "apiserver-kubelet-client", CAName: CAPhase, CommonName: APIServerKubeletClientUser,
			KeyUsage: leafKeyUsage, ExtKeyUsage: clientAuth,
		},
		caSpec("front-proxy-ca", "self-signed CA to provision identities for front proxy", "front-proxy-ca", "front-proxy-ca", false),
		{
			Name: "front-proxy-client", Description: "certificate for the front proxy client",
			BaseName: "front-proxy-client", CAName: "front-proxy-ca", CommonName: "front-proxy-client",
			KeyUsage: leafKeyUsage, ExtKeyUsage: clientAuth,
		},
		caSpec("etcd-ca", "self-signed CA to provision identities for etcd", "etcd/ca", "etcd-ca", true),
		{
			Name: "etcd-server", Description: "certificate for serving etcd",
			BaseName: "etcd/server", CAName: "etcd-ca", NodeNameCN: true,
			KeyUsage: leafKeyUsage, ExtKeyUsage: serverClientAuth, SANs: EtcdServerSANs, LocalEtcdOnly: true,
		},
		{
			Name: "etcd-peer", Description: "certificate for etcd nodes to communicate with each other",
			BaseName: "etcd/peer", CAName: "etcd-ca", NodeNameCN: true,
			KeyUsage: leafKeyUsage, ExtKeyUsage: serverClientAuth, SANs: EtcdPeerSANs, LocalEtcdOnly: true,
		},
		{
			Name: "etcd-healthcheck-client", Description: "certificate for liveness probes to healthcheck etcd",
			BaseName: "etcd/healthcheck-client", CAName: "etcd-ca", CommonName: "kube-etcd-healthcheck-client",
			KeyUsage: leafKeyUsage, ExtKeyUsage: clientAuth, LocalEtcdOnly: true,
		},
		{
			Name: "apiserver-etcd-client", Description: "certificate the apiserver uses to access etcd",
			BaseName: "apiserver-etcd-client", CAName: "etcd-ca", CommonName: "kube-apiserver-etcd-client",
			KeyUsage: leafKeyUsage, ExtKeyUsage: clientAuth, LocalEtcdOnly: true,
		},
	}
}

// caSpec is a self-signed CA; kubeadm puts the CN in the CA's DNS SANs.
func caSpec(name, desc, base, cn string, etcd bool) Spec {
	return Spec{
		Name: name, Description: desc, BaseName: base, CommonName: cn, KeyUsage: caKeyUsage,
		SANs:          func(*config.Cluster, *config.Node) (AltNames, error) { return AltNames{DNSNames: []string{cn}}, nil },
		LocalEtcdOnly: etcd,
	}
}

// SpecByName finds a spec by its Name.
func SpecByName(name string) (Spec, bool) {
	specs := Specs()
	i := slices.IndexFunc(specs, func(s Spec) bool { return s.Name == name })
	if i < 0 {
		return Spec{}, false
	}
	return specs[i], true
}

// Request resolves the spec against the cluster's and this node's configuration: everything needed to issue the
// certificate or check an existing one.
func (s Spec) Request(cluster *config.Cluster, node *config.Node) (Request, error) {
	r := Request{
		CommonName:   s.CommonName,
		Organization: slices.Clone(s.Organization),
		KeyUsage:     s.KeyUsage,
		ExtKeyUsage:  slices.Clone(s.ExtKeyUsage),
		IsCA:         s.IsCA(),
		Algorithm:    cluster.EncryptionAlgorithm,
		Validity:     durationOr(cluster.CertificateValidityPeriod, DefaultValidity),
	}
	if s.IsCA() {
		r.Validity = durationOr(cluster.CACertificateValidityPeriod, DefaultCAValidity)
	}
	if s.NodeNameCN {
		r.CommonName = node.Registration.Name
	}
	if s.SANs != nil {
		alt, err := s.SANs(cluster, node)
		if err != nil {
			return Request{}, fmt.Errorf("%s certificate: %w", s.Name, err)
		}
		if s.IsCA() {
			r.DNSNames, r.IPs = alt.DNSNames, alt.IPs
		} else {
			// Like kubeadm: DNS names sorted and unique, IPs unique in their original order.
			r.DNSNames, r.IPs = dedupDNS(alt.DNSNames), dedupIPs(alt.IPs)
		}
	}
	return r, nil
}

// ClientRequest is a client certificate as kubeadm issues them for kubeconfig files: clientAuth only, the
// configured key algorithm and leaf validity, valid from the CA's own NotBefore.
func ClientRequest(cluster *config.Cluster, ca CA, commonName string, organization []string) Request {
	return Request{
		CommonName:   commonName,
		Organization: slices.Clone(organization),
		KeyUsage:     leafKeyUsage,
		ExtKeyUsage:  slices.Clone(clientAuth),
		Algorithm:    cluster.EncryptionAlgorithm,
		NotBefore:    ca.Cert.NotBefore,
		Validity:     durationOr(cluster.CertificateValidityPeriod, DefaultValidity),
	}
}

// APIServerSANs are the names of the API server's serving certificate: the node name, the in-cluster names of
// the kubernetes Service, its ClusterIP, the advertise address, the controlPlaneEndpoint host and certSANs.
func APIServerSANs(cluster *config.Cluster, node *config.Node) (AltNames, error) {
	adv, err := advertiseIP(node)
	if err != nil {
		return AltNames{}, err
	}
	svcIP, err := KubernetesServiceIP(cluster.Networking.ServiceSubnet)
	if err != nil {
		return AltNames{}, err
	}
	var alt AltNames
	if n := node.Registration.Name; n != "" {
		alt.DNSNames = append(alt.DNSNames, n)
	}
	alt.DNSNames = append(alt.DNSNames, "kubernetes", "kubernetes.default", "kubernetes.default.svc")
	if d := cluster.Networking.DNSDomain; d != "" {
		alt.DNSNames = append(alt.DNSNames, "kubernetes.default.svc."+d)
	}
	alt.IPs = []net.IP{svcIP, adv}
	if ep := cluster.ControlPlaneEndpoint; ep != "" {
		host, _, err := SplitHostPort(ep)
		if err != nil {
			return AltNames{}, fmt.Errorf("controlPlaneEndpoint: %w", err)
		}
		if ip := net.ParseIP(host); ip != nil {
			alt.IPs = append(alt.IPs, ip)
		} else {
			alt.DNSNames = append(alt.DNSNames, host)
		}
	}
	if err := appendSANs(&alt, cluster.APIServer.CertSANs, "apiServer.certSANs"); err != nil {
		return AltNames{}, err
	}
	return alt, nil
}

// EtcdServerSANs are the names of etcd's client-facing serving certificate.
func EtcdServerSANs(cluster *config.Cluster, node *config.Node) (AltNames, error) {
	var extra []string
	if cluster.Etcd.Local != nil {
		extra = cluster.Etcd.Local.ServerCertSANs
	}
	return etcdSANs(node, extra, "etcd.local.serverCertSANs")
}

// EtcdPeerSANs are the names of etcd's peer certificate.
func EtcdPeerSANs(cluster *config.Cluster, node *config.Node) (AltNames, error) {
	var extra []string
	if cluster.Etcd.Local != nil {
		extra = cluster.Etcd.Local.PeerCertSANs
	}
	return etcdSANs(node, extra, "etcd.local.peerCertSANs")
}

func etcdSANs(node *config.Node, extra []string, field string) (AltNames, error) {
	adv, err := advertiseIP(node)
	if err != nil {
		return AltNames{}, err
	}
	var alt AltNames
	if n := node.Registration.Name; n != "" {
		alt.DNSNames = append(alt.DNSNames, n)
	}
	alt.DNSNames = append(alt.DNSNames, "localhost")
	alt.IPs = []net.IP{adv, net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if err := appendSANs(&alt, extra, field); err != nil {
		return AltNames{}, err
	}
	return alt, nil
}

func advertiseIP(node *config.Node) (net.IP, error) {
	a := node.LocalAPIEndpoint.AdvertiseAddress
	ip := net.ParseIP(a)
	if ip == nil {
		return nil, fmt.Errorf("localAPIEndpoint.advertiseAddress %q is not an IP address", a)
	}
	return ip, nil
}

// appendSANs adds user-given names: IPs as IP SANs, DNS names (wildcards allowed) as DNS SANs.
func appendSANs(alt *AltNames, sans []string, field string) error {
	for i, s := range sans {
		switch {
		case net.ParseIP(s) != nil:
			alt.IPs = append(alt.IPs, net.ParseIP(s))
		case len(validation.IsDNS1123Subdomain(s)) == 0, len(validation.IsWildcardDNS1123Subdomain(s)) == 0:
			alt.DNSNames = append(alt.DNSNames, s)
		default:
			return fmt.Errorf("%s[%d] %q is neither an IP address nor a DNS name (RFC 1123, a leading \"*.\" allowed)", field, i, s)
		}
	}
	return nil
}

// KubernetesServiceIP is the ClusterIP of the default/kubernetes Service: the first address of the first range
// of serviceSubnet (a comma-separated list for dual-stack).
func KubernetesServiceIP(serviceSubnet string) (net.IP, error) {
	first := strings.TrimSpace(strings.Split(serviceSubnet, ",")[0])
	p, err := netip.ParsePrefix(first)
	if err != nil {
		return nil, fmt.Errorf("networking.serviceSubnet %q: %w", serviceSubnet, err)
	}
	ip := p.Masked().Addr().Next()
	if !ip.IsValid() || !p.Contains(ip) {
		return nil, fmt.Errorf("networking.serviceSubnet %q has no room for the kubernetes Service IP", serviceSubnet)
	}
	return net.IP(ip.AsSlice()), nil
}

// SplitHostPort splits a controlPlaneEndpoint ("host", "host:port", "[v6]:port") the way kubeadm reads it: the
// port may be absent; the host must be an IP address or an RFC 1123 DNS name.
func SplitHostPort(endpoint string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(endpoint)
	if err != nil {
		host, port = endpoint, ""
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", "", fmt.Errorf("%q: port %q must be a number between 1 and 65535", endpoint, port)
		}
	}
	if net.ParseIP(host) != nil || len(validation.IsDNS1123Subdomain(host)) == 0 {
		return host, port, nil
	}
	return "", "", fmt.Errorf("%q: host %q must be an IP address or a DNS name", endpoint, host)
}

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}

func dedupDNS(names []string) []string {
	out := slices.Clone(names)
	slices.Sort(out)
	return slices.Compact(out)
}

func dedupIPs(ips []net.IP) []net.IP {
	seen := map[string]bool{}
	var out []net.IP
	for _, ip := range ips {
		if !seen[ip.String()] {
			seen[ip.String()] = true
			out = append(out, ip)
		}
	}
	return out
}
