// Package version says which kubeboot this is and which Kubernetes release it bootstraps by default.
package version

import "kubeboot.dev/kubeboot/internal/release"

// Version is kubeboot's own version; release builds set it with -ldflags "-X kubeboot.dev/kubeboot/internal/version.Version=...".
var Version = "v0.1.0-dev"

// Info is what `kubeboot version` prints.
type Info struct {
	Version           string `json:"version"`
	KubernetesVersion string `json:"kubernetesVersion"`
	EtcdVersion       string `json:"etcdVersion"`
	CoreDNSVersion    string `json:"corednsVersion"`
}

// Get returns the version information of this binary.
func Get() Info {
	return Info{
		Version:           Version,
		KubernetesVersion: release.Default().Version,
		EtcdVersion:       release.Default().EtcdVersion,
		CoreDNSVersion:    release.Default().CoreDNSVersion,
	}
}
