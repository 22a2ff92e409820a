// Package kubelet renders and writes what the kubelet of a kubeadm node reads at start:
// /var/lib/kubelet/config.yaml (KubeletConfiguration), /var/lib/kubelet/instance-config.yaml and
// /var/lib/kubelet/kubeadm-flags.env (KUBELET_KUBEADM_ARGS, sourced by the official packages' systemd drop-in),
// and restarts the kubelet through the node's init system.
package kubelet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"

	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
)

// InstanceConfigFile holds this node's own KubeletConfiguration fields (the CRI socket), which differ between
// nodes and so are not in the cluster-wide kube-system/kubelet-config ConfigMap.
const InstanceConfigFile = "/var/lib/kubelet/instance-config.yaml"

// Config renders /var/lib/kubelet/config.yaml for this node: the cluster's KubeletConfiguration plus the node's
// CRI socket, as kubeadm does by patching config.yaml with instance-config.yaml (NodeLocalCRISocket, GA since 1.36).
func Config(cluster *config.Cluster, node *config.Node) ([]byte, error) {
	if cluster.Kubelet == nil {
		return nil, fmt.Errorf("render %s: no KubeletConfiguration in the configuration", config.KubeletConfigFile)
	}
	kc := cluster.Kubelet.DeepCopy()
	kc.ContainerRuntimeEndpoint = node.Registration.CRISocket
	return MarshalConfig(kc)
}

// InstanceConfig renders /var/lib/kubelet/instance-config.yaml, byte for byte as kubeadm writes it.
func InstanceConfig(criSocket string) []byte {
	return fmt.Appendf(nil, "containerRuntimeEndpoint: %q\n", criSocket)
}

// MarshalConfig serializes kc as a kubelet.config.k8s.io/v1beta1 document without the noise of its Go types
// ("0s" durations, empty structs, zero logging options): a non-pointer field at its zero value is dropped, since
// the kubelet's defaulting cannot tell it from an absent one. Pointer fields are kept even when zero
// (registryPullQPS: 0 means unlimited, anonymous.enabled: false matters), so the file decodes to the same
// KubeletConfiguration the kubelet would have read from kubeadm's verbose one.
func MarshalConfig(kc *kubeletv1beta1.KubeletConfiguration) ([]byte, error) {
	c := kc.DeepCopy()
	c.APIVersion = config.KubeletGroupVer
	c.Kind = config.KindKubelet
	doc, err := toMap(c)
	if err != nil {
		return nil, fmt.Errorf("serialize KubeletConfiguration: %w", err)
	}
	zero, err := toMap(&kubeletv1beta1.KubeletConfiguration{})
	if err != nil {
		return nil, fmt.Errorf("serialize KubeletConfiguration: %w", err)
	}
	pruneZero(doc, zero)
	b, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("serialize KubeletConfiguration: %w", err)
	}
	return b, nil
}

func toMap(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // int64 fields (podPidsLimit) survive exactly
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// pruneZero removes from doc every key whose value equals the one zero holds for it. Keys zero lacks are
// omitempty fields: present in doc only because they were set, so they stay.
func pruneZero(doc, zero map[string]any) {
	for k, v := range doc {
		z, ok := zero[k]
		if !ok {
			continue
		}
		if vm, isMap := v.(map[string]any); isMap {
			if zm, zIsMap := z.(map[string]any); zIsMap {
				pruneZero(vm, zm)
				if len(vm) == 0 {
					delete(doc, k)
				}
				continue
			}
		}
		if reflect.DeepEqual(v, z) {
			delete(doc, k)
		}
	}
}
