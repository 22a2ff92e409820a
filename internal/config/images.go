package config

import (
	"regexp"

	"kubeboot.dev/kubeboot/internal/staticpod"
)

// Names of the Kubernetes components that run from images (the kubelet runs on the host); a control-plane
// component's image has its static Pod's name.
const (
	ImageAPIServer         = staticpod.APIServerName
	ImageControllerManager = staticpod.ControllerManagerName
	ImageScheduler         = staticpod.SchedulerName
	ImageProxy             = "kube-proxy"
)

// imageTagChars is what a container image tag may hold; kubeadm replaces anything else ("+" of CI builds) with "_".
var imageTagChars = regexp.MustCompile(`[^-\w.]`)

// repository is imageRepository, kubeadm's default when unset.
func (c *ClusterConfiguration) repository() string {
	if c.ImageRepository == "" {
		return DefaultImageRepository
	}
	return c.ImageRepository
}

// KubernetesImage is the image of a control-plane component or kube-proxy (ImageAPIServer, ...): the image
// repository, the component, and kubernetesVersion as the tag.
func (c *ClusterConfiguration) KubernetesImage(component string) string {
	return c.repository() + "/" + component + ":" + imageTagChars.ReplaceAllString(c.KubernetesVersion, "_")
}

// EtcdImage is the local etcd member's image: etcd.local's imageRepository and imageTag when set, otherwise the
// cluster's repository and the release's etcd tag.
func (c *ClusterConfiguration) EtcdImage() (string, error) {
	repo, tag := c.repository(), ""
	if l := c.Etcd.Local; l != nil {
		if l.ImageRepository != "" {
			repo = l.ImageRepository
		}
		tag = l.ImageTag
	}
	if tag == "" {
		r, err := c.Release()
		if err != nil {
			return "", err
		}
		tag = r.EtcdVersion
	}
	return repo + "/" + staticpod.EtcdName + ":" + tag, nil
}

// CoreDNSImage is the DNS addon's image. Like kubeadm, the default registry keeps CoreDNS under a "coredns/"
// sub-path while a custom registry (imageRepository or dns.imageRepository) is expected to hold it at its top level.
func (c *ClusterConfiguration) CoreDNSImage() (string, error) {
	repo := c.repository()
	if c.DNS.ImageRepository != "" {
		repo = c.DNS.ImageRepository
	}
	if repo == DefaultImageRepository {
		repo += "/coredns"
	}
	tag := c.DNS.ImageTag
	if tag == "" {
		r, err := c.Release()
		if err != nil {
			return "", err
		}
		tag = r.CoreDNSVersion
	}
	return repo + "/coredns:" + tag, nil
}

// PauseImage is the sandbox image kubeadm expects the container runtime to use.
func (c *ClusterConfiguration) PauseImage() (string, error) {
	r, err := c.Release()
	if err != nil {
		return "", err
	}
	return c.repository() + "/pause:" + r.PauseVersion, nil
}

// Images lists the images a control-plane node of this cluster runs, in kubeadm's order (`config images list`):
// the control-plane components, kube-proxy and CoreDNS unless disabled, pause, and etcd when it is local.
func (c *ClusterConfiguration) Images() ([]string, error) {
	images := []string{c.KubernetesImage(ImageAPIServer), c.KubernetesImage(ImageControllerManager), c.KubernetesImage(ImageScheduler)}
	if !c.Proxy.Disabled {
		images = append(images, c.KubernetesImage(ImageProxy))
	}
	if !c.DNS.Disabled {
		dns, err := c.CoreDNSImage()
		if err != nil {
			return nil, err
		}
		images = append(images, dns)
	}
	pause, err := c.PauseImage()
	if err != nil {
		return nil, err
	}
	images = append(images, pause)
	if c.Etcd.External == nil {
		etcd, err := c.EtcdImage()
		if err != nil {
			return nil, err
		}
		images = append(images, etcd)
	}
	return images, nil
}
