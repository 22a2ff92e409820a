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

// APIServer renders the kube-apiserver static Pod of this node, listening on cfg.Init.LocalAPIEndpoint.
func APIServer(cfg *config.Init, host Host) *corev1.Pod {
	endpoint := cfg.Init.LocalAPIEndpoint
	hp := newHostPaths()
	hp.add("k8s-certs", cfg.Cluster.CertificatesDir, cfg.Cluster.CertificatesDir, true, corev1.HostPathDirectoryOrCreate)
	hp.addCACerts(host)
	if ext := cfg.Cluster.Etcd.External; ext != nil {
		hp.addExternalEtcdCerts(ext, cfg.Cluster.CertificatesDir)
	}
	hp.addExtra(cfg.Cluster.APIServer.ExtraVolumes)

	probe := probeHost(endpoint.AdvertiseAddress)
	if endpoint.AdvertiseAddress == "" {
		probe = "127.0.0.1"
	}
	timeout := healthCheckTimeout(cfg)
	d := staticpod.APIServer
	c := corev1.Container{
		Name:            d.Name,
		Image:           kubernetesImage(cfg, d.Name),
		ImagePullPolicy: pullPolicy(cfg),
		Command:         commandLine(d.Name, apiServerArgs(cfg), cfg.Cluster.APIServer.ExtraArgs),
		VolumeMounts:    hp.volumeMounts(),
		LivenessProbe:   livenessProbe(probe, d.LivenessPath, d.Scheme),
		ReadinessProbe:  readinessProbe(probe, d.ReadinessPath, d.Scheme),
		StartupProbe:    startupProbe(probe, d.StartupPath, d.Scheme, timeout),
		Resources:       cpuRequest("250m"),
		Env:             mergeEnv(host.ProxyEnv, extraEnv(cfg.Cluster.APIServer.ExtraEnvs)),
		Ports:           probePort(endpoint.BindPort),
	}
	annotations := map[string]string{
		staticpod.APIServerAdvertiseAddressAnnotation: net.JoinHostPort(endpoint.AdvertiseAddress, strconv.Itoa(int(endpoint.BindPort))),
	}
	return componentPod(c, hp.volumes, annotations)
}

func apiServerArgs(cfg *config.Init) []config.Arg {
	pki := cfg.Cluster.CertificatesDir
	endpoint := cfg.Init.LocalAPIEndpoint
	args := []config.Arg{
		{Name: "advertise-address", Value: endpoint.AdvertiseAddress},
		{Name: "enable-admission-plugins", Value: "NodeRestriction"},
		{Name: "service-cluster-ip-range", Value: cfg.Cluster.Networking.ServiceSubnet},
		{Name: "service-account-key-file", Value: path.Join(pki, "sa.pub")},
		{Name: "service-account-signing-key-file", Value: path.Join(pki, "sa.key")},
		{Name: "service-account-issuer", Value: "https://kubernetes.default.svc." + cfg.Cluster.Networking.DNSDomain},
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

	if ext := cfg.Cluster.Etcd.External; ext != nil {
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
		if local := cfg.Cluster.Etcd.Local; local != nil {
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
	if _, structured := argValue(cfg.Cluster.APIServer.ExtraArgs, "authorization-config"); !structured {
		args = setArg(args, "authorization-mode", "Node,RBAC")
	}
	return args
}
