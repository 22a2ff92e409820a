package manifests

import (
	"path"

	corev1 "k8s.io/api/core/v1"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// ControllerManager renders the kube-controller-manager static Pod. Since 1.36 kubeadm no longer mounts a
// FlexVolume driver directory into it (FlexVolume support was removed).
func ControllerManager(cluster *config.Cluster, node *config.Node, host Host) *corev1.Pod {
	extra := cluster.ControllerManager.ExtraArgs
	hp := newHostPaths()
	hp.add("k8s-certs", cluster.CertificatesDir, cluster.CertificatesDir, true, corev1.HostPathDirectoryOrCreate)
	hp.addCACerts(host)
	hp.add("kubeconfig", config.ControllerManagerConfig, config.ControllerManagerConfig, true, corev1.HostPathFileOrCreate)
	hp.addExtra(cluster.ControllerManager.ExtraVolumes)

	probe := "127.0.0.1"
	if addr, ok := argValue(extra, "bind-address"); ok {
		probe = probeHost(addr)
	}
	timeout := healthCheckTimeout(node)
	d := staticpod.ControllerManager
	c := corev1.Container{
		Name:            d.Name,
		Image:           cluster.KubernetesImage(d.Name),
		ImagePullPolicy: pullPolicy,
		Command:         commandLine(d.Name, controllerManagerArgs(cluster, host), extra),
		VolumeMounts:    hp.volumeMounts(),
		LivenessProbe:   livenessProbe(probe, d.LivenessPath, d.Scheme),
		StartupProbe:    startupProbe(probe, d.StartupPath, d.Scheme, timeout),
		Resources:       cpuRequest("200m"),
		Env:             mergeEnv(host.ProxyEnv, extraEnv(cluster.ControllerManager.ExtraEnvs)),
		Ports:           probePort(d.Port),
	}
	return componentPod(c, hp.volumes, nil)
}

func controllerManagerArgs(cluster *config.Cluster, host Host) []config.Arg {
	pki := cluster.CertificatesDir
	kubeconfig := config.ControllerManagerConfig
	caFile := path.Join(pki, "ca.crt")
	args := []config.Arg{
		{Name: "bind-address", Value: "127.0.0.1"},
		{Name: "leader-elect", Value: "true"},
		{Name: "kubeconfig", Value: kubeconfig},
		{Name: "authentication-kubeconfig", Value: kubeconfig},
		{Name: "authorization-kubeconfig", Value: kubeconfig},
		{Name: "client-ca-file", Value: caFile},
		{Name: "requestheader-client-ca-file", Value: path.Join(pki, "front-proxy-ca.crt")},
		{Name: "root-ca-file", Value: caFile},
		{Name: "service-account-private-key-file", Value: path.Join(pki, "sa.key")},
		{Name: "cluster-signing-cert-file", Value: caFile},
		{Name: "cluster-signing-key-file", Value: path.Join(pki, "ca.key")},
		{Name: "use-service-account-credentials", Value: "true"},
		// bootstrapsigner signs cluster-info for discovery and tokencleaner removes expired tokens: without
		// them no node can join.
		{Name: "controllers", Value: "*,bootstrapsigner,tokencleaner"},
	}
	if host.ExternalCA {
		// Without the CA key the csrsigning controller must not start rather than fail on a missing file.
		args = setArg(args, "cluster-signing-key-file", "")
		args = setArg(args, "cluster-signing-cert-file", "")
	}
	if n := cluster.Networking; n.PodSubnet != "" {
		args = setArg(args, "allocate-node-cidrs", "true")
		args = setArg(args, "cluster-cidr", n.PodSubnet)
		if n.ServiceSubnet != "" {
			args = setArg(args, "service-cluster-ip-range", n.ServiceSubnet)
		}
	}
	if cluster.ClusterName != "" {
		args = setArg(args, "cluster-name", cluster.ClusterName)
	}
	return args
}
