package config

import (
	"bytes"
	"fmt"
	"net"
	"strconv"

	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/staticpod"
)

// PlaceholderToken stands in for secrets in printed defaults, as in kubeadm: valid in form, never a real token.
const PlaceholderToken = "abcdef.0123456789abcdef"

// Placeholders of the printed defaults, as in kubeadm.
const (
	PlaceholderAdvertiseAddress = "1.2.3.4"
	PlaceholderNodeName         = "node"
)

// PlaceholderAPIServerEndpoint is kubeadm's "kube-apiserver:6443".
var PlaceholderAPIServerEndpoint = net.JoinHostPort(staticpod.APIServerName, strconv.Itoa(staticpod.APIServerPort))

const documentSeparator = "---\n"

// DefaultInitDocuments prints what `kubeboot config print init-defaults` shows: kubeadm's static defaults for an
// InitConfiguration and a ClusterConfiguration, with placeholders for the token, the address and the node name.
// componentConfigs may name KubeletConfiguration and/or KubeProxyConfiguration to append their defaults
// (kubeadm's --component-configs).
func DefaultInitDocuments(componentConfigs ...string) ([]byte, error) {
	cfg := &Init{}
	cfg.Init.BootstrapTokens = []BootstrapToken{{Token: PlaceholderToken}}
	cfg.Init.LocalAPIEndpoint.AdvertiseAddress = PlaceholderAdvertiseAddress
	cfg.Init.NodeRegistration.Name = PlaceholderNodeName
	cfg.Init.NodeRegistration.CRISocket = DefaultCRISocket
	setStaticInitDefaults(cfg)
	docs := []any{&cfg.Init, &cfg.Cluster}
	for _, kind := range componentConfigs {
		switch kind {
		case KindKubelet:
			k := &kubeletv1beta1.KubeletConfiguration{}
			setKubeletDefaults(k, &cfg.Cluster, Environment{})
			docs = append(docs, k)
		case KindProxy:
			p := &kubeproxyv1alpha1.KubeProxyConfiguration{}
			setKubeProxyDefaults(p, &cfg.Cluster, cfg.Init.LocalAPIEndpoint.AdvertiseAddress)
			docs = append(docs, p)
		default:
			return nil, fmt.Errorf("unknown component config %q: use %s or %s", kind, KindKubelet, KindProxy)
		}
	}
	return marshalDocuments(docs...)
}

// DefaultJoinDocuments prints what `kubeboot config print join-defaults` shows. Unlike kubeadm, which puts the
// machine's hostname there, the node name is the placeholder "node", so the output is the same everywhere.
func DefaultJoinDocuments() ([]byte, error) {
	jc := &JoinConfiguration{}
	jc.Discovery.BootstrapToken = &BootstrapTokenDiscovery{
		Token:             PlaceholderToken,
		APIServerEndpoint: PlaceholderAPIServerEndpoint,
		// kubeadm sets this only so that the printed document validates; it is not a recommendation.
		UnsafeSkipCAVerification: true,
	}
	jc.NodeRegistration.Name = PlaceholderNodeName
	jc.NodeRegistration.CRISocket = DefaultCRISocket
	setStaticJoinDefaults(jc)
	return marshalDocuments(jc)
}

// DefaultResetDocuments prints what `kubeboot config print reset-defaults` shows.
func DefaultResetDocuments() ([]byte, error) {
	r := &ResetConfiguration{}
	SetResetDefaults(r)
	return marshalDocuments(r)
}

// MarshalInit writes cfg as the documents kubeboot would read back: InitConfiguration, ClusterConfiguration and,
// when set, KubeletConfiguration, KubeProxyConfiguration and KubebootConfiguration. The InitConfiguration holds
// the bootstrap tokens: treat the output as a secret.
func MarshalInit(cfg *Init) ([]byte, error) {
	ic, c := cfg.Init, cfg.Cluster
	ic.TypeMeta, c.TypeMeta = typeMeta(KindInit), typeMeta(KindCluster)
	docs := []any{&ic, &c}
	if cfg.Kubelet != nil {
		k := *cfg.Kubelet
		k.APIVersion, k.Kind = KubeletGroupVer, KindKubelet
		docs = append(docs, &k)
	}
	if cfg.Proxy != nil {
		p := *cfg.Proxy
		p.APIVersion, p.Kind = ProxyGroupVer, KindProxy
		docs = append(docs, &p)
	}
	if cfg.Kubeboot != nil {
		k := *cfg.Kubeboot
		k.TypeMeta = kubebootTypeMeta()
		docs = append(docs, &k)
	}
	return marshalDocuments(docs...)
}

// MarshalClusterConfiguration writes the ClusterConfiguration document stored in kube-system/kubeadm-config
// (key ClusterConfiguration).
func MarshalClusterConfiguration(c *ClusterConfiguration) ([]byte, error) {
	cc := *c
	cc.TypeMeta = typeMeta(KindCluster)
	return marshalDocuments(&cc)
}

// MarshalJoinConfiguration writes a JoinConfiguration document. It holds tokens: treat the output as a secret.
func MarshalJoinConfiguration(j *JoinConfiguration) ([]byte, error) {
	jc := *j
	jc.TypeMeta = typeMeta(KindJoin)
	return marshalDocuments(&jc)
}

// MarshalKubeletConfiguration writes the kubelet's configuration file (/var/lib/kubelet/config.yaml and the
// kube-system/kubelet-config ConfigMap's "kubelet" key).
func MarshalKubeletConfiguration(k *kubeletv1beta1.KubeletConfiguration) ([]byte, error) {
	kc := *k
	kc.APIVersion, kc.Kind = KubeletGroupVer, KindKubelet
	return marshalDocuments(&kc)
}

// MarshalKubeProxyConfiguration writes kube-proxy's configuration (kube-system/kube-proxy, key config.conf).
func MarshalKubeProxyConfiguration(p *kubeproxyv1alpha1.KubeProxyConfiguration) ([]byte, error) {
	pc := *p
	pc.APIVersion, pc.Kind = ProxyGroupVer, KindProxy
	return marshalDocuments(&pc)
}

// MarshalKubebootConfiguration writes kubeboot's own configuration document.
func MarshalKubebootConfiguration(k *KubebootConfiguration) ([]byte, error) {
	kc := *k
	kc.TypeMeta = kubebootTypeMeta()
	return marshalDocuments(&kc)
}

// LoadClusterConfiguration reads the ClusterConfiguration stored in the cluster (kube-system/kubeadm-config),
// with the same strict decoding as a user's file.
func LoadClusterConfiguration(data []byte) (*ClusterConfiguration, error) {
	docs, err := Load(data)
	if err != nil {
		return nil, err
	}
	if docs.Cluster == nil {
		return nil, fmt.Errorf("no %s found", KindCluster)
	}
	return docs.Cluster, nil
}

func marshalDocuments(docs ...any) ([]byte, error) {
	var out bytes.Buffer
	for i, d := range docs {
		b, err := yaml.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("marshalling %T: %w", d, err)
		}
		if i > 0 {
			out.WriteString(documentSeparator)
		}
		out.Write(b)
	}
	return out.Bytes(), nil
}
