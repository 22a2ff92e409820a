package joinflow

import (
	"context"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"

	"kubeboot.dev/kubeboot/internal/apply"
	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/discovery"
	"kubeboot.dev/kubeboot/internal/kubeclient"
	"kubeboot.dev/kubeboot/internal/kubeconfig"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/nodebootstrap"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/token"
	"kubeboot.dev/kubeboot/internal/uploadconfig"
)

// Cluster is what a joining node learns before it writes anything.
type Cluster struct {
	// Bootstrap is the discovered API server and CA with the TLS bootstrap credentials (what kubeadm writes as
	// bootstrap-kubelet.conf; kubeboot only builds Client from it).
	Bootstrap *clientcmdapi.Config
	// Server is the API server the kubelet will use (cluster-info's, not necessarily the endpoint joined through).
	Server string
	// CAPEM is the cluster CA, written to caCertPath.
	CAPEM []byte
	// Config is the ClusterConfiguration from kube-system/kubeadm-config.
	Config config.ClusterConfiguration
	// Kubelet is the KubeletConfiguration from kube-system/kubelet-config.
	Kubelet *kubeletv1beta1.KubeletConfiguration
	// Client acts with the TLS bootstrap credentials.
	Client kubernetes.Interface
	// Kubeboot is the KubebootConfiguration from kube-system/kubeboot-config; nil when the cluster has none.
	Kubeboot *config.KubebootConfiguration
}

// Cluster discovers the cluster and reads its configuration with the TLS bootstrap credentials, once; later
// phases reuse the answer.
func (d *Data) Cluster(ctx context.Context) (*Cluster, error) {
	if d.cluster != nil {
		return d.cluster, nil
	}
	jc := &d.Cfg.Join
	discover := d.Discover
	if discover == nil {
		discover = Discover
	}
	discovered, err := discover(ctx, jc, d.Out)
	if err != nil {
		return nil, err
	}
	boot, server, caPEM, err := bootstrapConfig(discovered, jc.Discovery.TLSBootstrapToken)
	if err != nil {
		return nil, err
	}
	cas, err := certutil.ParseCertsPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("the discovered CA: %w", err)
	}
	fmt.Fprintf(d.Out, "  trusting the cluster at %s (CA %s)\n", server, pki.DiscoveryHash(cas[0]))

	newClient := d.NewClient
	if newClient == nil {
		newClient = bootstrapClient
	}
	client, err := newClient(boot)
	if err != nil {
		return nil, fmt.Errorf("build a client with the TLS bootstrap credentials: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, jc.Timeouts.KubernetesAPICall.Duration)
	defer cancel()
	who := credentials(jc)
	cc, err := readConfigMap(ctx, client, uploadconfig.KubeadmConfigMap, uploadconfig.KubeadmConfigKey, uploadconfig.KubeadmConfigRBAC, server, who)
	if err != nil {
		return nil, err
	}
	cluster, err := uploadconfig.ParseClusterConfiguration(cc, d.Out)
	if err != nil {
		return nil, err
	}
	kc, err := readConfigMap(ctx, client, uploadconfig.KubeletConfigMap, uploadconfig.KubeletConfigKey, uploadconfig.KubeletConfigRBAC, server, who)
	if err != nil {
		return nil, err
	}
	kubeletCfg, err := kubelet.ConfigFromCluster([]byte(kc))
	if err != nil {
		return nil, fmt.Errorf("kube-system/%s: %w", uploadconfig.KubeletConfigMap, err)
	}
	renameCluster(boot, cluster.ClusterName)
	fmt.Fprintf(d.Out, "  read kube-system/%s and kube-system/%s: cluster %q, Kubernetes %s\n",
		uploadconfig.KubeadmConfigMap, uploadconfig.KubeletConfigMap, cluster.ClusterName, cluster.KubernetesVersion)
	cl := &Cluster{Bootstrap: boot, Server: server, CAPEM: caPEM, Config: cluster, Kubelet: kubeletCfg, Client: client}
	if cl.Kubeboot, err = readKubeboot(ctx, cl, who); err != nil {
		return nil, err
	}
	if _, ok := cl.Kubeboot.NodeLocalAPIEndpointPort(); ok {
		fmt.Fprintf(d.Out, "  read kube-system/%s: the cluster's nodes run the node-local API endpoint\n", uploadconfig.KubebootConfigMap)
	}
	d.cluster = cl
	return d.cluster, nil
}

// Discover runs the discovery the JoinConfiguration asks for: a discovery file, or cluster-info with a token.
func Discover(ctx context.Context, jc *config.JoinConfiguration, out io.Writer) (*clientcmdapi.Config, error) {
	timeout := jc.Timeouts.Discovery.Duration
	opts := discovery.Options{Out: out}
	if f := jc.Discovery.File; f != nil {
		return discovery.FetchFile(ctx, f.KubeConfigPath, timeout, opts)
	}
	bt := jc.Discovery.BootstrapToken
	if bt == nil {
		return nil, errors.New("no discovery method: pass an API server endpoint with --token and --discovery-token-ca-cert-hash, or --discovery-file")
	}
	tok, err := token.Parse(bt.Token)
	if err != nil {
		return nil, fmt.Errorf("discovery token: %w", err)
	}
	return discovery.FetchClusterInfo(ctx, bt.APIServerEndpoint, tok, bt.CACertHashes, bt.UnsafeSkipCAVerification, timeout, opts)
}

// bootstrapConfig builds bootstrap-kubelet.conf from the discovered kubeconfig: with the TLS bootstrap token when
// there is one, else with the credentials of a discovery file.
func bootstrapConfig(discovered *clientcmdapi.Config, tlsBootstrapToken string) (*clientcmdapi.Config, string, []byte, error) {
	if len(discovered.Clusters) != 1 {
		return nil, "", nil, fmt.Errorf("the discovered kubeconfig holds %d clusters, want exactly one", len(discovered.Clusters))
	}
	var cluster *clientcmdapi.Cluster
	for _, c := range discovered.Clusters {
		cluster = c
	}
	if len(cluster.CertificateAuthorityData) == 0 {
		return nil, "", nil, errors.New("the discovered kubeconfig has no certificate-authority-data")
	}
	if tlsBootstrapToken != "" {
		if _, err := token.Parse(tlsBootstrapToken); err != nil {
			return nil, "", nil, fmt.Errorf("TLS bootstrap token: %w", err)
		}
		return kubeconfig.Bootstrap(cluster.Server, cluster.CertificateAuthorityData, tlsBootstrapToken), cluster.Server, cluster.CertificateAuthorityData, nil
	}
	// A discovery file may carry its own credentials (a token or a client certificate), kubeadm's other way in.
	own := discovered.DeepCopy()
	c, user, err := kubeconfig.Current(own)
	if err == nil && user != nil && (user.Token != "" || len(user.ClientCertificateData) > 0 && len(user.ClientKeyData) > 0) {
		return own, c.Server, c.CertificateAuthorityData, nil
	}
	return nil, "", nil, errors.New("no credentials for the kubelet's TLS bootstrap: pass --tls-bootstrap-token (or --token), " +
		"or a discovery file whose current context has a token or a client certificate")
}

// renameCluster names the cluster of kc's current context after the cluster, as kubeadm names it in
// bootstrap-kubelet.conf.
func renameCluster(kc *clientcmdapi.Config, name string) {
	ctx := kc.Contexts[kc.CurrentContext]
	if ctx == nil || name == "" || ctx.Cluster == name {
		return
	}
	c := kc.Clusters[ctx.Cluster]
	delete(kc.Clusters, ctx.Cluster)
	kc.Clusters[name] = c
	ctx.Cluster = name
}

// bootstrapClient is a client-go client acting with bootstrap-kubelet.conf's credentials (or admin.conf's).
func bootstrapClient(kc *clientcmdapi.Config) (kubernetes.Interface, error) {
	return kubeclient.FromKubeconfig(kc, kubeclient.Bootstrap)
}

// credentials names the TLS bootstrap credentials in messages: the token's public ID, never its secret.
func credentials(jc *config.JoinConfiguration) string {
	if t, err := token.Parse(jc.Discovery.TLSBootstrapToken); err == nil {
		return fmt.Sprintf("the bootstrap token %q", t.ID)
	}
	return "the discovery file's credentials"
}

// readConfigMap reads key of kube-system/name, retrying while the API server is unavailable.
func readConfigMap(ctx context.Context, c kubernetes.Interface, name, key, rbac, server, who string) (string, error) {
	var cm *corev1.ConfigMap
	err := apply.Retry(ctx, func(ctx context.Context) error {
		var err error
		cm, err = c.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, name, metav1.GetOptions{})
		return err
	})
	object := "kube-system/" + name
	switch {
	case apierrors.IsNotFound(err):
		return "", fmt.Errorf("%s does not exist: the control plane has not finished init (its upload-config phase writes it)", object)
	case err != nil:
		return "", explainAPIError(err, "read "+object, server, who, rbac)
	}
	v, ok := cm.Data[key]
	if !ok || v == "" {
		return "", fmt.Errorf("%s has no %q key: re-upload it with `kubeboot init phase upload-config` on a control-plane node", object, key)
	}
	return v, nil
}

// explainAPIError says why the API server refused the TLS bootstrap credentials and what to do.
func explainAPIError(err error, action, server, who, rbac string) error {
	switch {
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s: the API server at %s does not accept %s (%w): it expired or was deleted; create a new "+
			"token with `kubeboot token create` on a control-plane node", action, server, who, err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s: %s may not (%w): the token needs the group %s, and the cluster the %s binding made by init",
			action, who, err, nodebootstrap.BootstrapTokenGroup, rbac)
	}
	return fmt.Errorf("%s at %s: %w", action, server, err)
}
