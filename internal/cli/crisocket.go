package cli

import (
	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/nodefs"
)

// nodeCRISocket is the container runtime's socket of the node at fsys: the kubelet's (kubeadm-flags.env or its
// configuration), or kubeadm's default when the node says none.
func nodeCRISocket(fsys nodefs.FS) string {
	if socket := kubelet.CRISocket(fsys); socket != "" {
		return socket
	}
	return config.DefaultCRISocket
}
