// Upstream kubeadm, built only as the lab's interop and benchmark peer.
package main

import (
	"k8s.io/kubernetes/cmd/kubeadm/app"
	kubeadmerrors "k8s.io/kubernetes/cmd/kubeadm/app/util/errors"
)

func main() { kubeadmerrors.HandleError(app.Run()) }
