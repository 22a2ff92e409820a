// Package kubeconfig renders and writes the kubeconfig files of a control-plane node exactly as kubeadm names
// them (admin.conf, super-admin.conf, kubelet.conf, controller-manager.conf, scheduler.conf), builds token
// kubeconfigs for TLS bootstrap, and reads kubeconfigs back.
//
// Rendering (Build, Render) is pure given a CA and a pki.Source; Ensure and EnsureAll write through a
// nodefs.FS and keep an existing file only if it trusts the same CA and points at the same server.
package kubeconfig

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
)

// KubeletPhase is the name of the kubelet.conf phase (and Spec).
const KubeletPhase = "kubelet"

// Well-known identities.
const (
	AdminUser             = "kubernetes-admin"
	SuperAdminUser        = "kubernetes-super-admin"
	ControllerManagerUser = "system:kube-controller-manager"
	SchedulerUser         = "system:kube-scheduler"
	NodeUserPrefix        = "system:node:"
	NodesGroup            = "system:nodes"
	MastersGroup          = "system:masters"
	// BootstrapUser is the user name kubeadm gives the token in bootstrap-kubelet.conf.
	BootstrapUser = "tls-bootstrap-token-user"
	// BootstrapClusterName is the cluster name of bootstrap-kubelet.conf, whatever the cluster is called.
	BootstrapClusterName = "kubernetes"

	// FileMode of every kubeconfig file: they hold private keys or tokens.
	FileMode = 0o600
)

// Phase names and describes one `kubeconfig/<name>` phase.
type Phase struct {
	Name  string
	Short string
}

// Phases lists the kubeconfig phases in kubeadm's order.
func Phases() []Phase {
	return []Phase{
		{"admin", "Generate a kubeconfig file for the admin to use and for kubeadm itself"},
		{"super-admin", "Generate a kubeconfig file for the super-admin"},
		{"kubelet", "Generate a kubeconfig file for the kubelet to use *only* for cluster bootstrapping purposes"},
		{"controller-manager", "Generate a kubeconfig file for the controller manager to use"},
		{"scheduler", "Generate a kubeconfig file for the scheduler to use"},
	}
}

// Spec describes one kubeconfig file of a control-plane node.
type Spec struct {
	// Name is the phase name: "admin", "controller-manager".
	Name string
	// File is the node path: /etc/kubernetes/admin.conf.
	File         string
	User         string
	Organization []string
	// Server is the API server URL the file points at.
	Server string
}

// Specs resolves every kubeconfig file of a control-plane node against the cluster's and the node's
// configuration, in phase order.
func Specs(cluster *config.Cluster, node *config.Node) ([]Spec, error) {
	cpe, err := ControlPlaneURL(cluster, node)
	if err != nil {
		return nil, err
	}
	local, err := LocalURL(node)
	if err != nil {
		return nil, err
	}
	kubelet := local
	if node.KubeletServer != "" {
		kubelet = node.KubeletServer
	}
	return []Spec{
		{Name: "admin", File: config.AdminKubeconfigFile, User: AdminUser, Organization: []string{pki.ClusterAdminsGroup}, Server: cpe},
		{Name: "super-admin", File: config.SuperAdminKubeconfig, User: SuperAdminUser, Organization: []string{MastersGroup}, Server: cpe},
		{Name: KubeletPhase, File: config.KubeletKubeconfigFile, User: NodeUserPrefix + node.Registration.Name, Organization: []string{NodesGroup}, Server: kubelet},
		// The kubelet (ControlPlaneKubeletLocalMode, GA since 1.35; unless the node-local API endpoint is on), the
		// controller-manager and the scheduler talk to the API server next to them; a load balancer in between would
		// only add a failure point.
		{Name: "controller-manager", File: config.ControllerManagerConfig, User: ControllerManagerUser, Server: local},
		{Name: "scheduler", File: config.SchedulerConfig, User: SchedulerUser, Server: local},
	}, nil
}

// LocalURL is this node's API server: https://<advertiseAddress>:<bindPort>.
func LocalURL(node *config.Node) (string, error) {
	ep := node.LocalAPIEndpoint
	ip := net.ParseIP(ep.AdvertiseAddress)
	if ip == nil {
		return "", fmt.Errorf("localAPIEndpoint.advertiseAddress %q is not an IP address", ep.AdvertiseAddress)
	}
	if ep.BindPort < 1 || ep.BindPort > 65535 {
		return "", fmt.Errorf("localAPIEndpoint.bindPort %d must be between 1 and 65535", ep.BindPort)
	}
	return "https://" + net.JoinHostPort(ip.String(), strconv.Itoa(int(ep.BindPort))), nil
}

// ControlPlaneURL is the cluster's API endpoint: controlPlaneEndpoint (its port defaulting to bindPort) when
// set, else LocalURL.
func ControlPlaneURL(cluster *config.Cluster, node *config.Node) (string, error) {
	local, err := LocalURL(node)
	if err != nil || cluster.ControlPlaneEndpoint == "" {
		return local, err
	}
	host, port, err := pki.SplitHostPort(cluster.ControlPlaneEndpoint)
	if err != nil {
		return "", fmt.Errorf("controlPlaneEndpoint: %w", err)
	}
	if port == "" {
		port = strconv.Itoa(int(node.LocalAPIEndpoint.BindPort))
	}
	return "https://" + net.JoinHostPort(host, port), nil
}

// Build makes the kubeconfig of spec with a new client certificate signed by ca. It touches nothing but src.
func Build(cluster *config.Cluster, spec Spec, ca pki.CA, src pki.Source) (*clientcmdapi.Config, error) {
	kp, err := pki.NewSignedCert(src, ca, pki.ClientRequest(cluster, ca, spec.User, spec.Organization))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec.File, err)
	}
	return WithCerts(spec.Server, cluster.ClusterName, spec.User, pki.EncodeCertPEM(ca.Cert.Raw), kp.Cert, kp.Key), nil
}

// Render is Build serialized.
func Render(cluster *config.Cluster, spec Spec, ca pki.CA, src pki.Source) ([]byte, error) {
	kc, err := Build(cluster, spec, ca, src)
	if err != nil {
		return nil, err
	}
	return clientcmd.Write(*kc)
}

// Basic is a kubeconfig with one cluster and a current context "<user>@<cluster>", but no credentials yet.
func Basic(server, cluster, user string, caPEM []byte) *clientcmdapi.Config {
	ctx := user + "@" + cluster
	kc := clientcmdapi.NewConfig()
	kc.Clusters[cluster] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	kc.Contexts[ctx] = &clientcmdapi.Context{Cluster: cluster, AuthInfo: user}
	kc.CurrentContext = ctx
	return kc
}

// WithCerts is a kubeconfig authenticating with an embedded client certificate and key.
func WithCerts(server, cluster, user string, caPEM, certPEM, keyPEM []byte) *clientcmdapi.Config {
	kc := Basic(server, cluster, user, caPEM)
	kc.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	return kc
}

// WithToken is a kubeconfig authenticating with a bearer token.
func WithToken(server, cluster, user string, caPEM []byte, token string) *clientcmdapi.Config {
	kc := Basic(server, cluster, user, caPEM)
	kc.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	return kc
}

// Bootstrap is the kubelet's TLS-bootstrap kubeconfig (bootstrap-kubelet.conf) as kubeadm join writes it.
func Bootstrap(server string, caPEM []byte, token string) *clientcmdapi.Config {
	return WithToken(server, BootstrapClusterName, BootstrapUser, caPEM, token)
}

// The names the kubelet gives the cluster, user and context of the kubelet.conf it writes after its TLS bootstrap.
const (
	KubeletClusterName = "default-cluster"
	KubeletUserName    = "default-auth"
	KubeletContextName = "default-context"
)

// KubeletAfterBootstrap is kubelet.conf as the kubelet writes it once its TLS bootstrap has stored a client
// certificate: the client certificate and key are both pemPath (the certificate store's kubelet-client-current.pem,
// which rotation replaces), and the context's namespace is "default".
func KubeletAfterBootstrap(server string, caPEM []byte, pemPath string) *clientcmdapi.Config {
	kc := clientcmdapi.NewConfig()
	kc.Clusters[KubeletClusterName] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	kc.AuthInfos[KubeletUserName] = &clientcmdapi.AuthInfo{ClientCertificate: pemPath, ClientKey: pemPath}
	kc.Contexts[KubeletContextName] = &clientcmdapi.Context{Cluster: KubeletClusterName, AuthInfo: KubeletUserName, Namespace: "default"}
	kc.CurrentContext = KubeletContextName
	return kc
}

// Write serializes kc to the node path p with mode 0600.
func Write(fsys nodefs.FS, p string, kc *clientcmdapi.Config) error {
	data, err := clientcmd.Write(*kc)
	if err != nil {
		return fmt.Errorf("serialize %s: %w", p, err)
	}
	return fsys.WriteFile(p, data, FileMode)
}

// Read loads the kubeconfig at the node path p.
func Read(fsys nodefs.FS, p string) (*clientcmdapi.Config, error) {
	data, err := fsys.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read kubeconfig: %w", err)
	}
	kc, err := clientcmd.Load(data)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", p, err)
	}
	return kc, nil
}

// ErrNoCurrentCluster is returned by Current when the current context does not lead to a cluster.
var ErrNoCurrentCluster = errors.New("no current context with a cluster")

// Current returns the cluster and the credentials of kc's current context; the credentials may be nil.
func Current(kc *clientcmdapi.Config) (*clientcmdapi.Cluster, *clientcmdapi.AuthInfo, error) {
	ctx := kc.Contexts[kc.CurrentContext]
	if ctx == nil || kc.Clusters[ctx.Cluster] == nil {
		return nil, nil, ErrNoCurrentCluster
	}
	return kc.Clusters[ctx.Cluster], kc.AuthInfos[ctx.AuthInfo], nil
}
