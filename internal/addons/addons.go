// Package addons renders and installs the two addons kubeadm installs in every cluster: CoreDNS and
// kube-proxy. Rendering (config → typed API objects) is pure and tested with golden files; installing goes
// through package apply.
package addons

import (
	"bytes"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
)

const systemNamespace = "kube-system"

// CoreDNSDisabled reports whether the configuration turns the CoreDNS addon off (dns.disabled).
func CoreDNSDisabled(cluster *config.Cluster) bool { return cluster.DNS.Disabled }

// KubeProxyDisabled reports whether the configuration turns the kube-proxy addon off (proxy.disabled).
func KubeProxyDisabled(cluster *config.Cluster) bool { return cluster.Proxy.Disabled }

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
