package manifests

import (
	"net"
	"path"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// APIServer renders the kube-apiserver static Pod of this node, listening on node.LocalAPIEndpoint.
func APIServer(cluster *config.Cluster, node *config.Node, host Host) *corev1.Pod {
	endpoint := node.LocalAPIEndpoint
	hp := newHostPaths()
	hp.add("k8s-certs", cluster.CertificatesDir, cluster.CertificatesDir, true, corev1.HostPathDirectoryOrCreate)
	hp.addCACerts(host)
	if ext := cluster.Etcd.External; ext != nil {
		hp.addExternalEtcdCerts(ext, cluster.CertificatesDir)
	}
	hp.addExtra(cluster.APIServer.ExtraVolumes)

	probe := probeHost(endpoint.AdvertiseAddress)
	if endpoint.AdvertiseAddress == "" {
		probe = "127.0.0.1"
	}
	timeout := healthCheckTimeout(node)
	d := staticpod.APIServer
	c := corev1.Container{
		Name:            d.Name,
		Image:           cluster.KubernetesImage(d.Name),
		ImagePullPolicy: pullPolicy,
		Command:         commandLine(d.Name, apiServerArgs(cluster, node), cluster.APIServer.ExtraArgs),
		VolumeMounts:    hp.volumeMounts(),
		LivenessProbe:   livenessProbe(probe, d.LivenessPath, d.Scheme),
		ReadinessProbe:  readinessProbe(probe, d.ReadinessPath, d.Scheme),
		StartupProbe:    startupProbe(probe, d.StartupPath, d.Scheme, timeout),
		Resources:       cpuRequest("250m"),
		Env:             mergeEnv(host.ProxyEnv, extraEnv(cluster.APIServer.ExtraEnvs)),
		Ports:           probePort(endpoint.BindPort),
	}
	annotations := map[string]string{
		staticpod.APIServerAdvertiseAddressAnnotation: net.JoinHostPort(endpoint.AdvertiseAddress, strconv.Itoa(int(endpoint.BindPort))),
	}
	return componentPod(c, hp.volumes, annotations)
}

func apiServerArgs(cluster *config.Cluster, node *config.Node) []config.Arg {
	pki := cluster.CertificatesDir
	endpoint := node.LocalAPIEndpoint
	args := []config.Arg{
		{Name: "advertise-address", Value: endpoint.AdvertiseAddress},
		{Name: "enable-admission-plugins", Value: "NodeRestriction"},
		{Name: "service-cluster-ip-range", Value: cluster.Networking.ServiceSubnet},
		{Name: "service-account-key-file", Value: path.Join(pki, "sa.pub")},
		{Name: "service-account-signing-key-file", Value: path.Join(pki, "sa.key")},
		{Name: "service-account-issuer", Value: "https://kubernetes.default.svc." + cluster.Networking.DNSDomain},
		{Name: "client-ca-file", Value: path.Join(pki, "ca.crt")},
		{Name: "tls-cert-file", Value: path.Join(pki, "apiserver.crt")},
		{Name: "tls-private-key-file", Value: path.Join(pki, "apiserver.key")},
		{Name: "kubelet-client-certificate", Value: path.Join(pki, "apiserver-kubelet-client.crt")},
		{Name: "kubelet-client-key", Value: path.Join(pki, "apiserver-kubelet-client.key")},
		{Name: "enable-bootstrap-token-auth", Value: "true"},
		{Name: "secure-port", Value: strconv.Itoa(int(endpoint.BindPort))},
		{Name: "allow-privileged", Value: "true"},
		{Name: "kubelet-preferred-address-types", Value: "InternalIP,ExternalIP,Hostname"},
		// The front proxy (aggregated APIs) is always configured: its client certificate always exists.
		{Name: "requestheader-username-headers", Value: "X-Remote-User"},
		{Name: "requestheader-group-headers", Value: "X-Remote-Group"},
		{Name: "requestheader-extra-headers-prefix", Value: "X-Remote-Extra-"},
		{Name: "requestheader-client-ca-file", Value: path.Join(pki, "front-proxy-ca.crt")},
		{Name: "requestheader-allowed-names", Value: "front-proxy-client"},
		{Name: "proxy-client-cert-file", Value: path.Join(pki, "front-proxy-client.crt")},
		{Name: "proxy-client-key-file", Value: path.Join(pki, "front-proxy-client.key")},
	}

	if ext := cluster.Etcd.External; ext != nil {
		args = setArg(args, "etcd-servers", strings.Join(ext.Endpoints, ","))
		if ext.CAFile != "" {
			args = setArg(args, "etcd-cafile", ext.CAFile)
		}
		if ext.CertFile != "" && ext.KeyFile != "" {
			args = setArg(args, "etcd-certfile", ext.CertFile)
			args = setArg(args, "etcd-keyfile", ext.KeyFile)
		}
	} else {
		servers := staticpod.EtcdClientURL(loopback(endpoint.AdvertiseAddress))
		if local := cluster.Etcd.Local; local != nil {
			// A user who moves etcd's client URLs moves the apiserver with it.
			if v, ok := argValue(local.ExtraArgs, "advertise-client-urls"); ok {
				servers = v
			}
		}
		args = setArg(args, "etcd-servers", servers)
		args = setArg(args, "etcd-cafile", path.Join(pki, "etcd", "ca.crt"))
		args = setArg(args, "etcd-certfile", path.Join(pki, "apiserver-etcd-client.crt"))
		args = setArg(args, "etcd-keyfile", path.Join(pki, "apiserver-etcd-client.key"))
	}

	// --authorization-config and --authorization-mode are mutually exclusive in the apiserver; a user's
	// --authorization-mode replaces the default through the extraArgs override anyway.
	if _, structured := argValue(cluster.APIServer.ExtraArgs, "authorization-config"); !structured {
		args = setArg(args, "authorization-mode", "Node,RBAC")
	}
	return args
}
