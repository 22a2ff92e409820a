package manifests

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"kubeboot.dev/kubeboot/internal/config"
)

// hostPaths collects one component's hostPath volumes and their mounts, keyed by name: a later volume with the same
// name replaces an earlier one, which is how a user's extraVolumes override kubeadm's defaults.
type hostPaths struct {
	volumes map[string]corev1.Volume
	mounts  map[string]corev1.VolumeMount
}

func newHostPaths() *hostPaths {
	return &hostPaths{volumes: map[string]corev1.Volume{}, mounts: map[string]corev1.VolumeMount{}}
}

func (h *hostPaths) add(name, hostPath, mountPath string, readOnly bool, t corev1.HostPathType) {
	h.volumes[name] = hostPathVolume(name, hostPath, t)
	h.mounts[name] = corev1.VolumeMount{Name: name, MountPath: mountPath, ReadOnly: readOnly}
}

func (h *hostPaths) addExtra(extra []config.HostPathMount) {
	for _, v := range extra {
		h.add(v.Name, v.HostPath, v.MountPath, v.ReadOnly, v.PathType)
	}
}

// addCACerts mounts the machine's trusted CAs read-only.
func (h *hostPaths) addCACerts(host Host) {
	h.add("ca-certs", caCertsDir, caCertsDir, true, corev1.HostPathDirectoryOrCreate)
	for _, dir := range host.CACertDirs {
		// "/etc/pki/ca-trust" becomes "etc-pki-ca-trust".
		name := strings.ReplaceAll(dir, "/", "-")[1:]
		h.add(name, dir, dir, true, corev1.HostPathDirectoryOrCreate)
	}
}

func (h *hostPaths) volumeMounts() []corev1.VolumeMount {
	out := make([]corev1.VolumeMount, 0, len(h.mounts))
	for _, m := range h.mounts {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b corev1.VolumeMount) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func sortedVolumes(vols map[string]corev1.Volume) []corev1.Volume {
	out := make([]corev1.Volume, 0, len(vols))
	for _, v := range vols {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b corev1.Volume) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func hostPathVolume(name, hostPath string, t corev1.HostPathType) corev1.Volume {
	return corev1.Volume{
		Name:         name,
		VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostPath, Type: &t}},
	}
}

// externalEtcdCertDirs returns the directories holding an external etcd's CA, certificate and key that are not
// already mounted (certificatesDir, /etc/ssl/certs and the CA directories), parents absorbing their children.
// The comparison is on path strings, as kubeadm's, so manifests stay identical to kubeadm's.
func externalEtcdCertDirs(ext *config.ExternalEtcd, certificatesDir string) []string {
	var dirs []string
	for _, file := range []string{ext.CAFile, ext.CertFile, ext.KeyFile} {
		dir := filepath.ToSlash(filepath.Dir(file))
		if dir == "." || strings.HasPrefix(dir, caCertsDir) || strings.HasPrefix(dir, certificatesDir) ||
			slices.ContainsFunc(caCertsExtraDirs, func(p string) bool { return strings.HasPrefix(dir, p) }) {
			continue
		}
		covered := false
		for _, existing := range slices.Clone(dirs) {
			switch {
			case strings.HasPrefix(existing, dir):
				dirs = slices.DeleteFunc(dirs, func(d string) bool { return d == existing })
			case strings.HasPrefix(dir, existing):
				covered = true
			}
		}
		if !covered && !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
	}
	slices.Sort(dirs)
	return dirs
}

func (h *hostPaths) addExternalEtcdCerts(ext *config.ExternalEtcd, certificatesDir string) {
	for i, dir := range externalEtcdCertDirs(ext, certificatesDir) {
		h.add(fmt.Sprintf("etcd-certs-%d", i), dir, dir, true, corev1.HostPathDirectoryOrCreate)
	}
}
