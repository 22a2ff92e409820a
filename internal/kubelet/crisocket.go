package kubelet

import (
	"regexp"

	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
)

// runtimeEndpointFlag finds --container-runtime-endpoint in kubeadm-flags.env (kubeadm before NodeLocalCRISocket).
var runtimeEndpointFlag = regexp.MustCompile(`--container-runtime-endpoint=("[^"]*"|[^\s"]+)`)

// CRISocket returns the CRI socket the kubelet of this node was configured with by init or join
// (instance-config.yaml, config.yaml, then kubeadm-flags.env), or "" if none says. kubeadm asks the cluster for
// the Node's annotation instead; the node's own files answer without a cluster, which reset and certs renew
// --restart may not have.
func CRISocket(fsys nodefs.FS) string {
	for _, f := range []string{InstanceConfigFile, config.KubeletConfigFile} {
		data, err := fsys.ReadFile(f)
		if err != nil {
			continue
		}
		var kc struct {
			ContainerRuntimeEndpoint string `json:"containerRuntimeEndpoint"`
		}
		if yaml.Unmarshal(data, &kc) == nil && kc.ContainerRuntimeEndpoint != "" {
			return kc.ContainerRuntimeEndpoint
		}
	}
	if data, err := fsys.ReadFile(config.KubeletFlagsEnvFile); err == nil {
		if m := runtimeEndpointFlag.FindSubmatch(data); m != nil {
			s := string(m[1])
			if len(s) >= 2 && s[0] == '"' {
				s = s[1 : len(s)-1]
			}
			return s
		}
	}
	return ""
}
