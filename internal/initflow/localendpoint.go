package initflow

import (
	"context"
	"fmt"
	"net"
	"path"
	"strconv"

	"k8s.io/client-go/kubernetes"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/localendpoint"
	"kubeboot.dev/kubeboot/internal/nodeenv"
	"kubeboot.dev/kubeboot/internal/uploadconfig"
)

// localEndpoint reports the port of the node-local API endpoint and whether it is on
// (KubebootConfiguration.nodeLocalAPIEndpoint; off without the document).
func (d *Data) localEndpoint() (int32, bool) {
	return d.Cfg.Kubeboot.NodeLocalAPIEndpointPort()
}

// nodePart is d.Cfg.NodePart with the server of kubelet.conf: the node-local API endpoint when it is on.
func (d *Data) nodePart() *config.Node {
	n := d.Cfg.NodePart()
	if port, ok := d.localEndpoint(); ok {
		n.KubeletServer = localendpoint.LocalServer(port)
	}
	return n
}

// executable is the running kubeboot, which the node-local API endpoint runs (Data.Executable in tests).
func (d *Data) executable() (string, error) {
	if d.Executable != nil {
		return d.Executable()
	}
	return nodeenv.Executable()
}

// runLocalEndpoint installs the running kubeboot on the node and writes the static Pod of the node-local API
// endpoint, with this node's API server as its first backend; it learns the others from the cluster.
func runLocalEndpoint(_ context.Context, d *Data) error {
	port, _ := d.localEndpoint()
	image, err := d.Cfg.Cluster.PauseImage()
	if err != nil {
		return err
	}
	ep := d.Cfg.Init.LocalAPIEndpoint
	pod, err := localendpoint.Manifest(localendpoint.Options{
		Image:    image,
		Port:     port,
		Backends: []string{net.JoinHostPort(ep.AdvertiseAddress, strconv.Itoa(int(ep.BindPort)))},
		CAFile:   path.Join(d.Cfg.Cluster.CertificatesDir, "ca.crt"),
	})
	if err != nil {
		return err
	}
	src, err := d.executable()
	if err != nil {
		return fmt.Errorf("find the running kubeboot to install for the node-local API endpoint: %w", err)
	}
	if err := localendpoint.Install(d.FS, d.Out, src, pod); err != nil {
		return err
	}
	fmt.Fprintf(d.Out, "  %s listens on %s\n", localendpoint.Name, localendpoint.LocalServer(port))
	return nil
}

// runUploadKubeboot stores the KubebootConfiguration in kube-system/kubeboot-config, where joining nodes find
// it, and lets nodes and bootstrap tokens read the list of API servers the node-local API endpoint follows.
func runUploadKubeboot(ctx context.Context, d *Data, c kubernetes.Interface) error {
	if err := uploadconfig.UploadKubebootConfig(ctx, c, d.Cfg.Kubeboot); err != nil {
		return err
	}
	if err := localendpoint.Apply(ctx, c); err != nil {
		return err
	}
	fmt.Fprintf(d.Out, "  uploaded kube-system/%s and the ClusterRole and ClusterRoleBinding %s\n", uploadconfig.KubebootConfigMap, localendpoint.RBACName)
	return nil
}
