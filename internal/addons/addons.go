// Package addons renders and installs the two addons kubeadm v1.34 installs in every cluster: CoreDNS and
// kube-proxy. Rendering (config → typed API objects) is pure and tested with golden files; installing goes
// through package apply.
package addons

import (
	"bytes"
	"fmt"
	"regexp"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
)

const systemNamespace = "kube-system"

// CoreDNSDisabled reports whether the configuration turns the CoreDNS addon off (dns.disabled).
func CoreDNSDisabled(cfg *config.Init) bool { return cfg.Cluster.DNS.Disabled }

// KubeProxyDisabled reports whether the configuration turns the kube-proxy addon off (proxy.disabled).
func KubeProxyDisabled(cfg *config.Init) bool { return cfg.Cluster.Proxy.Disabled }

// CoreDNSImage is the CoreDNS image kubeadm would run for this cluster. Like kubeadm, the default registry keeps
// CoreDNS under a "coredns/" sub-path while a custom registry is expected to hold it at its top level.
func CoreDNSImage(cluster *config.ClusterConfiguration) string {
	repo := cluster.ImageRepository
	if cluster.DNS.ImageRepository != "" {
		repo = cluster.DNS.ImageRepository
	}
	if repo == config.DefaultImageRepository {
		repo += "/coredns"
	}
	tag := config.DefaultCoreDNSVersion
	if cluster.DNS.ImageTag != "" {
		tag = cluster.DNS.ImageTag
	}
	return repo + "/coredns:" + tag
}

// notTagChars are the characters a Kubernetes version may hold but an image tag may not ("+" in builds' versions).
var notTagChars = regexp.MustCompile(`[^-\w.]`)

// KubeProxyImage is the kube-proxy image kubeadm would run for this cluster.
func KubeProxyImage(cluster *config.ClusterConfiguration) string {
	return cluster.ImageRepository + "/kube-proxy:" + notTagChars.ReplaceAllString(cluster.KubernetesVersion, "_")
}

// MarshalYAML renders objects as one multi-document YAML stream, in order; it is what `--print-manifest`
// style output and the golden files show.
func MarshalYAML(objs ...runtime.Object) ([]byte, error) {
	var out bytes.Buffer
	for i, obj := range objs {
		b, err := yaml.Marshal(obj)
		if err != nil {
			return nil, fmt.Errorf("marshal %T: %w", obj, err)
		}
		if i > 0 {
			out.WriteString("---\n")
		}
		out.Write(b)
	}
	return out.Bytes(), nil
}
