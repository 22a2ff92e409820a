package upgrade

import (
	"context"
	"fmt"
	"io"
	"path"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/renewal"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// APIMirror reads this node's mirror Pods through the API.
type APIMirror struct {
	Client   kubernetes.Interface
	NodeName string
}

// State implements Mirror.
func (m *APIMirror) State(ctx context.Context, component string) (string, bool, error) {
	pod, err := m.Client.CoreV1().Pods(metav1.NamespaceSystem).Get(ctx, component+"-"+m.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	ready := false
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	return pod.Annotations[ConfigHashAnnotation], ready, nil
}

// RuntimeMirror reads this node's static Pods from the container runtime, as the kubelet runs them. The kubelet
// labels each container with its Pod's UID, which for a static Pod is its config hash (the mirror Pod's
// kubernetes.io/config.hash), so the runtime shows the new Pod the moment its container starts. The mirror Pod
// turns Ready only after the first period of the startup probe and the kubelet's next status update (10 s and
// more per component); the component's health endpoint, which the engine probes next, says the rest.
type RuntimeMirror struct {
	Runtime cri.ContainerLister
}

// State implements Mirror: the hash is that of the newest container of component in kube-system, running or not,
// and ready means it runs. A component with no container at all is "", false, nil.
func (m *RuntimeMirror) State(ctx context.Context, component string) (string, bool, error) {
	cs, err := m.Runtime.ListContainers(ctx, map[string]string{cri.LabelPodNamespace: metav1.NamespaceSystem, cri.LabelContainerName: component})
	if err != nil {
		return "", false, err
	}
	var newest *cri.Container
	for i := range cs {
		c := &cs[i]
		// A running container wins over any exited one: while the kubelet replaces a Pod, the old one's
		// container may still be listed.
		switch {
		case newest == nil,
			c.State == cri.ContainerRunning && newest.State != cri.ContainerRunning,
			(c.State == cri.ContainerRunning) == (newest.State == cri.ContainerRunning) && c.CreatedAt.After(newest.CreatedAt):
			newest = c
		}
	}
	if newest == nil {
		return "", false, nil
	}
	return newest.Labels[cri.LabelPodUID], newest.State == cri.ContainerRunning, nil
}

// certsOf are the certificates kubeadm's upgrade renews with each component (renewCertsByComponent).
var certsOf = map[string][]string{
	staticpod.EtcdName:              {"etcd-server", "etcd-peer", "etcd-healthcheck-client"},
	staticpod.APIServerName:         {"apiserver", "apiserver-kubelet-client", "front-proxy-client", "apiserver-etcd-client"},
	staticpod.ControllerManagerName: {"controller-manager.conf"},
	staticpod.SchedulerName:         {"scheduler.conf"},
}

// CertRenewer renews with package renewal, as `certs renew` does, the certificates kubeadm's upgrade renews.
type CertRenewer struct {
	Set    *renewal.Set
	Policy renewal.Policy
	Source pki.Source
	Out    io.Writer
}

// NewCertRenewer renews the certificates of the node's files under cc's certificatesDir.
func NewCertRenewer(set *renewal.Set, cc *config.ClusterConfiguration, src pki.Source, out io.Writer) *CertRenewer {
	return &CertRenewer{Set: set, Policy: renewal.PolicyOf(cc), Source: src.Freeze(), Out: out}
}

// RenewFor implements Renewer. A certificate the set does not hold (apiserver-etcd-client with an external etcd) is
// not renewed; one under an external CA is reported, as kubeadm does.
func (r *CertRenewer) RenewFor(component string) error {
	return r.renew(certsOf[component])
}

// RenewAdmin implements Renewer: admin.conf, and super-admin.conf when it exists (the first control plane only).
func (r *CertRenewer) RenewAdmin() error {
	names := []string{path.Base(config.AdminKubeconfigFile)}
	if r.Set.FS.Exists(config.SuperAdminKubeconfig) {
		names = append(names, path.Base(config.SuperAdminKubeconfig))
	}
	return r.renew(names)
}

func (r *CertRenewer) renew(names []string) error {
	for _, name := range names {
		for _, c := range r.Set.Certs {
			if c.Name != name {
				continue
			}
			out, err := r.Set.Renew(c, r.Policy, r.Source)
			if err != nil {
				return err
			}
			switch out {
			case renewal.Renewed:
				fmt.Fprintf(r.Out, "[upgrade/staticpods] Renewing %s certificate\n", c.Name)
			case renewal.External:
				fmt.Fprintf(r.Out, "[upgrade/staticpods] External CA detected, %s certificate can't be renewed\n", c.Name)
			default:
				fmt.Fprintf(r.Out, "[upgrade/staticpods] %s\n", out.Line(c))
			}
		}
	}
	return nil
}
