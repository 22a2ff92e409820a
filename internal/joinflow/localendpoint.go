package joinflow

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kubeboot.dev/kubeboot/internal/apply"
	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/loadbalancer"
	"kubeboot.dev/kubeboot/internal/localendpoint"
	"kubeboot.dev/kubeboot/internal/nodebootstrap"
	"kubeboot.dev/kubeboot/internal/nodeenv"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/uploadconfig"
	"kubeboot.dev/kubeboot/internal/waiter"
)

// kubeboot is the KubebootConfiguration this join follows: the join's own (--config) when it has one, else the
// cluster's (kube-system/kubeboot-config); nil: neither, every kubeboot setting is off.
func (d *Data) kubeboot(cl *Cluster) *config.KubebootConfiguration {
	if d.Cfg.Kubeboot != nil {
		return d.Cfg.Kubeboot
	}
	return cl.Kubeboot
}

// localEndpoint reports the port of the node-local API endpoint and whether this node runs one.
func (d *Data) localEndpoint(cl *Cluster) (int32, bool) {
	return d.kubeboot(cl).NodeLocalAPIEndpointPort()
}

// readKubeboot reads the cluster's KubebootConfiguration with the TLS bootstrap credentials; a cluster without
// kube-system/kubeboot-config, or one that does not let the token read it (made by kubeadm or an older
// kubeboot), has none.
func readKubeboot(ctx context.Context, cl *Cluster, who string) (*config.KubebootConfiguration, error) {
	var k *config.KubebootConfiguration
	err := apply.Retry(ctx, func(ctx context.Context) error {
		var err error
		k, err = uploadconfig.ReadKubebootConfig(ctx, cl.Client)
		return err
	})
	if err != nil {
		return nil, explainAPIError(err, "read kube-system/"+uploadconfig.KubebootConfigMap, cl.Server, who, uploadconfig.KubebootConfigRBAC)
	}
	return k, nil
}

// localEndpointPlan is what kubelet-start writes for the node-local API endpoint, rendered before any write.
type localEndpointPlan struct {
	port int32
	pod  *corev1.Pod
}

// planLocalEndpoint renders the endpoint's static Pod, seeded with every API server the cluster lists.
func (d *Data) planLocalEndpoint(ctx context.Context, cl *Cluster, port int32) (*localEndpointPlan, error) {
	image, err := cl.Config.PauseImage()
	if err != nil {
		return nil, err
	}
	pod, err := localendpoint.Manifest(localendpoint.Options{
		Image: image, Port: port, Backends: d.seedBackends(ctx, cl), CAFile: d.Cfg.Join.CACertPath,
	})
	if err != nil {
		return nil, err
	}
	return &localEndpointPlan{port: port, pod: pod}, nil
}

// seedBackends are the API servers the endpoint starts with: those of the EndpointSlice default/kubernetes, read
// with the TLS bootstrap credentials; else the API server discovery found and the cluster's
// controlPlaneEndpoint. The endpoint follows the EndpointSlice once it runs.
func (d *Data) seedBackends(ctx context.Context, cl *Cluster) []string {
	ctx, cancel := context.WithTimeout(ctx, d.Cfg.Join.Timeouts.KubernetesAPICall.Duration)
	defer cancel()
	servers, err := loadbalancer.APIServers(ctx, cl.Client)
	if err == nil {
		fmt.Fprintf(d.Out, "  the node-local API endpoint starts with the API servers %v\n", servers)
		return servers
	}
	var seeds []string
	add := func(hostPort string) {
		if hostPort != "" && !slices.Contains(seeds, hostPort) {
			seeds = append(seeds, hostPort)
		}
	}
	defaultPort := "6443"
	if u, err := url.Parse(cl.Server); err == nil && u.Host != "" {
		if u.Port() != "" {
			defaultPort = u.Port()
		}
		add(net.JoinHostPort(u.Hostname(), defaultPort))
	}
	if bt := d.Cfg.Join.Discovery.BootstrapToken; bt != nil {
		if _, _, err := net.SplitHostPort(bt.APIServerEndpoint); err == nil {
			add(bt.APIServerEndpoint)
		}
	}
	if ep := cl.Config.ControlPlaneEndpoint; ep != "" {
		host, port, err := pki.SplitHostPort(ep)
		if err == nil {
			if port == "" {
				port = defaultPort
			}
			add(net.JoinHostPort(host, port))
		}
	}
	fmt.Fprintf(d.Out, "  WARNING: could not list the API servers (%v): the node-local API endpoint starts with %v\n", err, seeds)
	return seeds
}

// startLocalEndpoint does the kubelet's TLS bootstrap (kubelet.conf then points at the endpoint, which cannot
// serve the bootstrap: it runs as a Pod of this kubelet), installs kubeboot and writes the endpoint's static Pod.
func (d *Data) startLocalEndpoint(ctx context.Context, cl *Cluster, name string, plan *localEndpointPlan) error {
	server := localendpoint.LocalServer(plan.port)
	if err := d.bootstrapKubelet(ctx, cl, name, server); err != nil {
		return err
	}
	src, err := d.executable()
	if err != nil {
		return fmt.Errorf("find the running kubeboot to install for the node-local API endpoint: %w", err)
	}
	if err := localendpoint.Install(d.FS, d.Out, src, plan.pod); err != nil {
		return err
	}
	fmt.Fprintf(d.Out, "  %s listens on %s\n", localendpoint.Name, server)
	return nil
}

// executable is the running kubeboot, which the node-local API endpoint runs (Data.Executable in tests).
func (d *Data) executable() (string, error) {
	if d.Executable != nil {
		return d.Executable()
	}
	return nodeenv.Executable()
}

// waitLocalBootstrap is kubelet-wait-bootstrap when kubeboot did the TLS bootstrap itself: the kubelet answers
// on its healthz port (within timeouts.kubeletHealthCheck) and has registered its Node through the node-local
// API endpoint (within timeouts.tlsBootstrap).
func waitLocalBootstrap(ctx context.Context, d *Data, cl *Cluster, addr string, port, endpointPort int32) error {
	to := d.Cfg.Join.Timeouts
	name := kubeletNodeName(d)
	fmt.Fprintf(d.Out, "  waiting for the kubelet (healthz up to %s) and its Node %s (up to %s)\n",
		to.KubeletHealthCheck.Duration, name, to.TLSBootstrap.Duration)
	w := &waiter.Waiter{Interval: d.interval(), Out: d.Out}
	if err := w.Wait(ctx, to.KubeletHealthCheck.Duration, waiter.Kubelet(addr, port)); err != nil {
		return fmt.Errorf("the kubelet did not become healthy: %w", err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, to.TLSBootstrap.Duration)
	defer cancel()
	t := time.NewTicker(d.interval())
	defer t.Stop()
	for {
		_, err := cl.Client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			fmt.Fprintf(d.Out, "  the kubelet registered the Node %s after %s\n", name, time.Since(start).Round(10*time.Millisecond))
			return nil
		}
		if !apierrors.IsNotFound(err) && !apply.IsTransient(err) {
			return explainAPIError(err, "read the Node "+name, cl.Server, credentials(&d.Cfg.Join), nodebootstrap.GetNodes)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the kubelet did not register the Node %s through the node-local API endpoint %s within %s (last: %v); "+
				"check the kubelet's log and the %s Pod's", name, localendpoint.LocalServer(endpointPort), to.TLSBootstrap.Duration, err, localendpoint.Name)
		case <-t.C:
		}
	}
}

func kubeletNodeName(d *Data) string {
	return kubelet.NodeName(d.Cfg.Join.NodeRegistration, d.Hostname)
}
