package preflight

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// kubeletPort is the kubelet's unless its configuration says otherwise; the control plane's are staticpod's.
const kubeletPort = 10250

// The address meaning "every address of the machine", where a component binds unless told otherwise.
const allAddresses = "0.0.0.0"

// InitChecks are the checks of `kubeboot init` for the configuration cfg.
func InitChecks(cfg config.Init, env Env) []Check {
	env = env.shareKubelet()
	nr := cfg.Init.NodeRegistration
	cluster := cfg.Cluster
	ep := cfg.Init.LocalAPIEndpoint

	checks := []Check{IsPrivilegedUser(env)}
	checks = append(checks, controlPlaneChecks(env, cluster, ep)...)
	checks = append(checks, httpProxy{env: env, host: ep.AdvertiseAddress})
	var families []string
	for _, cidr := range append(splitList(cluster.Networking.ServiceSubnet), splitList(cluster.Networking.PodSubnet)...) {
		checks = append(checks, httpProxyCIDR{env: env, cidr: cidr})
		families = append(families, cidrFamily(cidr))
	}
	checks = append(checks, nodeChecks(env, nr, cfg.Kubelet, cluster.KubernetesVersion)...)
	families = append(families, addrFamily(ep.AdvertiseAddress))
	checks = append(checks, forwardingChecks(env, families)...)

	if ext := cluster.Etcd.External; ext != nil {
		for _, f := range []string{ext.CAFile, ext.CertFile, ext.KeyFile} {
			if f != "" {
				checks = append(checks, fileExisting{env: env, path: f, label: "ExternalEtcdClientCertificates"})
			}
		}
	}
	if local := cluster.Etcd.Local; local != nil {
		checks = append(checks, localEtcdChecks(env, ep.AdvertiseAddress, local.DataDir)...)
	}
	checks = append(checks, imagesPresent{
		env:     env,
		socket:  criSocket(nr),
		policy:  nr.ImagePullPolicy,
		cluster: cluster,
	})
	return checks
}

// JoinChecks are the checks of `kubeboot join`; controlPlane adds those of a new control-plane node.
//
// A joining node does not know the cluster's configuration before discovery, so these checks assume what
// kubeadm's defaults give: a stacked etcd in /var/lib/etcd, components on their default ports and addresses.
// Images are not checked here: which ones are needed depends on the cluster's configuration.
func JoinChecks(cfg config.Join, env Env, controlPlane bool) []Check {
	env = env.shareKubelet()
	nr := cfg.Join.NodeRegistration
	checks := []Check{
		IsPrivilegedUser(env),
		fileAvailable{env: env, path: config.KubeletKubeconfigFile},
		fileAvailable{env: env, path: config.BootstrapKubeletConf},
	}
	checks = append(checks, nodeChecks(env, nr, nil, "")...)
	if !controlPlane {
		// A control-plane node may have its certificates copied in beforehand; a worker gets ca.crt from discovery.
		caPath := cfg.Join.CACertPath
		if caPath == "" {
			caPath = config.DefaultCACertPath
		}
		checks = append(checks, fileAvailable{env: env, path: caPath})
	}

	var families []string
	if bt := cfg.Join.Discovery.BootstrapToken; bt != nil {
		if host, _, err := net.SplitHostPort(bt.APIServerEndpoint); err == nil {
			checks = append(checks, httpProxy{env: env, host: host})
			families = append(families, addrFamily(host))
		}
	}
	if controlPlane {
		var ep config.APIEndpoint
		if cfg.Join.ControlPlane != nil {
			ep = cfg.Join.ControlPlane.LocalAPIEndpoint
		}
		checks = append(checks, controlPlaneChecks(env, config.ClusterConfiguration{}, ep)...)
		if ep.AdvertiseAddress != "" {
			checks = append(checks, httpProxy{env: env, host: ep.AdvertiseAddress})
			families = append(families, addrFamily(ep.AdvertiseAddress))
		}
		checks = append(checks, localEtcdChecks(env, ep.AdvertiseAddress, config.DefaultEtcdDataDir)...)
	}
	checks = append(checks, forwardingChecks(env, families)...)
	return checks
}

// controlPlaneChecks are the machine size, the control-plane ports and the static Pod manifests.
func controlPlaneChecks(env Env, cluster config.ClusterConfiguration, ep config.APIEndpoint) []Check {
	apiPort := int(ep.BindPort)
	if apiPort == 0 {
		apiPort = config.DefaultAPIBindPort
	}
	checks := []Check{
		numCPU{env: env, min: minControlPlaneCPUs},
		memory{env: env, minMB: minControlPlaneMemMB},
		port{env: env, port: apiPort, hosts: []string{argOr(cluster.APIServer.ExtraArgs, "bind-address", allAddresses)}},
		// kubeadm binds the scheduler and the controller-manager to loopback.
		port{env: env, port: argPort(cluster.Scheduler.ExtraArgs, staticpod.SchedulerPort),
			hosts: []string{argOr(cluster.Scheduler.ExtraArgs, "bind-address", "127.0.0.1")}},
		port{env: env, port: argPort(cluster.ControllerManager.ExtraArgs, staticpod.ControllerManagerPort),
			hosts: []string{argOr(cluster.ControllerManager.ExtraArgs, "bind-address", "127.0.0.1")}},
		dirAvailable{env: env, path: staticpod.Dir},
	}
	for _, component := range staticpod.Names() {
		checks = append(checks, fileAvailable{env: env, path: staticpod.Path(component)})
	}
	return checks
}

// nodeChecks are what every node needs: a ready runtime, the host tools, a usable name, a kubelet of the
// right version and its port.
func nodeChecks(env Env, nr config.NodeRegistrationOptions, kubelet *kubeletv1beta1.KubeletConfiguration, controlPlaneVersion string) []Check {
	socket := criSocket(nr)
	failSwapOn := true
	kubeletAddr, kubeletPortNum := allAddresses, kubeletPort
	if kubelet != nil {
		if kubelet.FailSwapOn != nil {
			failSwapOn = *kubelet.FailSwapOn
		}
		if kubelet.Address != "" {
			kubeletAddr = kubelet.Address
		}
		if kubelet.Port != 0 {
			kubeletPortNum = int(kubelet.Port)
		}
	}
	checks := []Check{
		runtimeReady{env: env, socket: socket},
		runtimeVersion{env: env, socket: socket},
		cgroups{env: env, kubelet: kubelet},
		swap{env: env, failSwapOn: failSwapOn},
	}
	for _, exe := range requiredExecutables {
		exe.env = env
		checks = append(checks, exe)
	}
	return append(checks,
		hostname{env: env, name: nr.Name},
		kubeletVersion{env: env, controlPlane: controlPlaneVersion},
		serviceKubelet{env: env},
		port{env: env, port: kubeletPortNum, hosts: []string{kubeletAddr}},
	)
}

// localEtcdChecks: kubeadm's etcd listens for clients on loopback and the advertise address, for peers on the
// advertise address only, and needs an empty data directory.
func localEtcdChecks(env Env, advertise, dataDir string) []Check {
	if advertise == "" {
		advertise = allAddresses
	}
	if dataDir == "" {
		dataDir = config.DefaultEtcdDataDir
	}
	clientHosts := []string{"127.0.0.1"}
	if advertise != "127.0.0.1" {
		clientHosts = append(clientHosts, advertise)
	}
	return []Check{
		port{env: env, port: staticpod.EtcdClientPort, hosts: clientHosts},
		port{env: env, port: staticpod.EtcdPeerPort, hosts: []string{advertise}},
		dirAvailable{env: env, path: dataDir},
	}
}

// forwardingChecks adds the IP forwarding check of each address family in use, once. Every node forwards Pod
// traffic, so when no address tells the family (an endpoint given by name), IPv4 is assumed.
func forwardingChecks(env Env, families []string) []Check {
	var checks []Check
	if slices.Contains(families, "ipv4") || !slices.Contains(families, "ipv6") {
		checks = append(checks, forwarding{env: env, path: "/proc/sys/net/ipv4/ip_forward", sysctl: "net.ipv4.ip_forward"})
	}
	if slices.Contains(families, "ipv6") {
		checks = append(checks, forwarding{env: env, path: "/proc/sys/net/ipv6/conf/default/forwarding", sysctl: "net.ipv6.conf.default.forwarding"})
	}
	return checks
}

func addrFamily(s string) string {
	ip, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return ""
	case ip.Unmap().Is4():
		return "ipv4"
	}
	return "ipv6"
}

func cidrFamily(s string) string {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return ""
	}
	return addrFamily(p.Addr().String())
}

// splitList splits a comma-separated dual-stack list ("10.96.0.0/12,fd00::/108"), dropping empty items.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func criSocket(nr config.NodeRegistrationOptions) string {
	if nr.CRISocket != "" {
		return nr.CRISocket
	}
	return config.DefaultCRISocket
}

// argOr returns the last value of the extra argument name (the one the component will use), or def.
func argOr(args []config.Arg, name, def string) string {
	for _, a := range slices.Backward(args) {
		if a.Name == name && a.Value != "" {
			return a.Value
		}
	}
	return def
}

// argPort returns the component's --secure-port extra argument, or def.
func argPort(args []config.Arg, def int) int {
	if p, err := strconv.Atoi(argOr(args, "secure-port", "")); err == nil && p > 0 {
		return p
	}
	return def
}
