package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"k8s.io/utils/ptr"

	"kubeboot.dev/kubeboot/internal/release"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// kubeadm's default values that bundle.go does not already name.
const (
	DefaultTokenTTL                         = 24 * time.Hour
	DefaultCertificateValidityPeriod        = 365 * 24 * time.Hour
	DefaultCACertificateValidityPeriod      = 10 * 365 * 24 * time.Hour
	DefaultControlPlaneComponentHealthCheck = 4 * time.Minute
	DefaultKubeletHealthCheck               = 4 * time.Minute
	DefaultKubernetesAPICall                = 1 * time.Minute
	DefaultEtcdAPICall                      = 2 * time.Minute
	DefaultTLSBootstrap                     = 5 * time.Minute
	DefaultDiscovery                        = 5 * time.Minute
	DefaultUpgradeManifests                 = 5 * time.Minute

	DefaultEncryptionAlgorithm = EncryptionAlgorithmRSA2048
	DefaultImagePullPolicy     = corev1.PullIfNotPresent
	DefaultClusterDNSIP        = "10.96.0.10"
	DefaultTokenGroup          = "system:bootstrappers:kubeadm:default-node-token"
	ControlPlaneTaintKey       = "node-role.kubernetes.io/control-plane"

	KubeletHealthzBindAddress    = "127.0.0.1"
	KubeletHealthzPort           = 10248
	KubeletCgroupDriver          = "systemd"
	KubeletSystemdResolverConfig = "/run/systemd/resolve/resolv.conf"
	KubeProxyKubeconfig          = "/var/lib/kube-proxy/kubeconfig.conf"
)

// DefaultTokenUsages are the usages of a bootstrap token created without any.
func DefaultTokenUsages() []string { return []string{"signing", "authentication"} }

// ControlPlaneTaint keeps ordinary workloads off control-plane nodes.
func ControlPlaneTaint() corev1.Taint {
	return corev1.Taint{Key: ControlPlaneTaintKey, Effect: corev1.TaintEffectNoSchedule}
}

// Environment is what defaulting needs to know about the machine. Every field may be nil: defaulting then fails
// only if it actually needs the missing answer. Tests pass fixed functions; HostEnvironment asks the machine.
type Environment struct {
	// Hostname is the machine's hostname as the system gives it; NodeHostname makes the node's default name of it.
	Hostname func() (string, error)
	// AdvertiseAddress returns the address the API server advertises when localAPIEndpoint.advertiseAddress is
	// unset: on a real host, the IPv4 address of the interface that carries the default route.
	AdvertiseAddress func() (net.IP, error)
	// SystemdResolvedActive reports whether systemd-resolved manages DNS; the kubelet then must read its
	// upstream resolv.conf rather than the stub resolver's.
	SystemdResolvedActive func() bool
	// Random is the source of generated bootstrap tokens (crypto/rand on a real host).
	Random io.Reader
}

// NodeHostname is the machine's hostname as kubeadm and the kubelet make a node name of it (component-helpers'
// node/util.GetHostname): trimmed and lowercased; empty is an error. Init and join both use it, to default
// nodeRegistration.name and to decide whether kubeadm-flags.env needs --hostname-override, so the two agree.
func (e Environment) NodeHostname() (string, error) {
	if e.Hostname == nil {
		return "", errors.New("the hostname is unknown")
	}
	h, err := e.Hostname()
	if err != nil {
		return "", err
	}
	h = strings.ToLower(strings.TrimSpace(h))
	if h == "" {
		return "", errors.New("it is empty")
	}
	return h, nil
}

// SetInitDefaults fills every field of cfg that the user left unset, exactly as kubeadm v1beta4 would, except that
// kubernetesVersion defaults to the release table's default (release.DefaultVersion) instead of asking the internet.
func SetInitDefaults(cfg *Init, env Environment) error {
	setStaticInitDefaults(cfg)
	var errs []error
	for i := range cfg.Init.BootstrapTokens {
		t := &cfg.Init.BootstrapTokens[i]
		if t.Token != "" {
			continue
		}
		tok, err := GenerateToken(env.Random)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: bootstrapTokens[%d].token: %w", KindInit, i, err))
			continue
		}
		t.Token = tok
	}
	if err := setNodeRegistrationDefaults(&cfg.Init.NodeRegistration, KindInit, true, env); err != nil {
		errs = append(errs, err)
	}
	if err := setAdvertiseAddress(&cfg.Init.LocalAPIEndpoint, KindInit+": localAPIEndpoint.advertiseAddress",
		"--apiserver-advertise-address", env); err != nil {
		errs = append(errs, err)
	}
	if err := setClusterDynamicDefaults(&cfg.Cluster, cfg.Init.LocalAPIEndpoint.BindPort); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if cfg.Kubelet == nil {
		cfg.Kubelet = &kubeletv1beta1.KubeletConfiguration{}
	}
	setKubeletDefaults(cfg.Kubelet, &cfg.Cluster, env)
	if cfg.Proxy == nil {
		cfg.Proxy = &kubeproxyv1alpha1.KubeProxyConfiguration{}
	}
	setKubeProxyDefaults(cfg.Proxy, &cfg.Cluster, cfg.Init.LocalAPIEndpoint.AdvertiseAddress)
	SetKubebootDefaults(cfg.Kubeboot)
	return nil
}

// SetJoinDefaults fills every field of cfg that the user left unset, as kubeadm v1beta4 would.
// A joining control-plane node gets the control-plane taint and an advertise address; a worker gets neither.
func SetJoinDefaults(cfg *Join, env Environment) error {
	setStaticJoinDefaults(&cfg.Join)
	var errs []error
	controlPlane := cfg.Join.ControlPlane != nil
	if err := setNodeRegistrationDefaults(&cfg.Join.NodeRegistration, KindJoin, controlPlane, env); err != nil {
		errs = append(errs, err)
	}
	if controlPlane {
		if err := setAdvertiseAddress(&cfg.Join.ControlPlane.LocalAPIEndpoint,
			KindJoin+": controlPlane.localAPIEndpoint.advertiseAddress", "--apiserver-advertise-address", env); err != nil {
			errs = append(errs, err)
		}
	}
	SetKubebootDefaults(cfg.Kubeboot)
	return errors.Join(errs...)
}

// SetResetDefaults fills the unset fields of a ResetConfiguration.
func SetResetDefaults(cfg *ResetConfiguration) {
	cfg.TypeMeta = typeMeta(KindReset)
	if cfg.CertificatesDir == "" {
		cfg.CertificatesDir = DefaultCertificatesDir
	}
	if cfg.CRISocket == "" {
		cfg.CRISocket = DefaultCRISocket
	} else {
		cfg.CRISocket = withSocketScheme(cfg.CRISocket)
	}
	if cfg.Timeouts == nil {
		cfg.Timeouts = &Timeouts{}
	}
	setTimeoutDefaults(cfg.Timeouts)
}

// setStaticInitDefaults is kubeadm's scheme defaulting: constants only, no machine facts, no randomness.
func setStaticInitDefaults(cfg *Init) {
	ic := &cfg.Init
	ic.TypeMeta = typeMeta(KindInit)
	if len(ic.BootstrapTokens) == 0 {
		ic.BootstrapTokens = []BootstrapToken{{}}
	}
	for i := range ic.BootstrapTokens {
		t := &ic.BootstrapTokens[i]
		// kubeadm defaults the TTL even when expires is set and then rejects the pair; kubeboot honours expires.
		if t.TTL == nil && t.Expires == nil {
			t.TTL = &metav1.Duration{Duration: DefaultTokenTTL}
		}
		if len(t.Usages) == 0 {
			t.Usages = DefaultTokenUsages()
		}
		if len(t.Groups) == 0 {
			t.Groups = []string{DefaultTokenGroup}
		}
	}
	if ic.LocalAPIEndpoint.BindPort == 0 {
		ic.LocalAPIEndpoint.BindPort = DefaultAPIBindPort
	}
	setStaticNodeRegistrationDefaults(&ic.NodeRegistration)
	if ic.Timeouts == nil {
		ic.Timeouts = &Timeouts{}
	}
	setTimeoutDefaults(ic.Timeouts)

	SetClusterStaticDefaults(&cfg.Cluster)
}

// SetClusterStaticDefaults fills the unset fields of a ClusterConfiguration that kubeadm's scheme defaults
// (constants only): for one given by the user, or read back from kube-system/kubeadm-config.
func SetClusterStaticDefaults(c *ClusterConfiguration) {
	c.TypeMeta = typeMeta(KindCluster)
	if c.KubernetesVersion == "" {
		c.KubernetesVersion = release.DefaultVersion()
	}
	if c.Networking.ServiceSubnet == "" {
		c.Networking.ServiceSubnet = DefaultServiceSubnet
	}
	if c.Networking.DNSDomain == "" {
		c.Networking.DNSDomain = DefaultDNSDomain
	}
	if c.CertificatesDir == "" {
		c.CertificatesDir = DefaultCertificatesDir
	}
	if c.ImageRepository == "" {
		c.ImageRepository = DefaultImageRepository
	}
	if c.ClusterName == "" {
		c.ClusterName = DefaultClusterName
	}
	if c.EncryptionAlgorithm == "" {
		c.EncryptionAlgorithm = DefaultEncryptionAlgorithm
	}
	if c.CertificateValidityPeriod == nil {
		c.CertificateValidityPeriod = &metav1.Duration{Duration: DefaultCertificateValidityPeriod}
	}
	if c.CACertificateValidityPeriod == nil {
		c.CACertificateValidityPeriod = &metav1.Duration{Duration: DefaultCACertificateValidityPeriod}
	}
	if c.Etcd.Local == nil && c.Etcd.External == nil {
		c.Etcd.Local = &LocalEtcd{}
	}
	if c.Etcd.Local != nil && c.Etcd.Local.DataDir == "" {
		c.Etcd.Local.DataDir = DefaultEtcdDataDir
	}
	if x := c.Etcd.External; x != nil && len(x.HTTPEndpoints) == 0 {
		x.HTTPEndpoints = slices.Clone(x.Endpoints)
	}
}

func setStaticJoinDefaults(jc *JoinConfiguration) {
	jc.TypeMeta = typeMeta(KindJoin)
	if jc.CACertPath == "" {
		jc.CACertPath = DefaultCACertPath
	}
	if jc.ControlPlane != nil && jc.ControlPlane.LocalAPIEndpoint.BindPort == 0 {
		jc.ControlPlane.LocalAPIEndpoint.BindPort = DefaultAPIBindPort
	}
	d := &jc.Discovery
	if d.TLSBootstrapToken == "" && d.BootstrapToken != nil {
		d.TLSBootstrapToken = d.BootstrapToken.Token
	}
	if d.File != nil {
		if u, err := url.Parse(d.File.KubeConfigPath); err == nil && u.Scheme == "file" {
			d.File.KubeConfigPath = u.Path
		}
	}
	setStaticNodeRegistrationDefaults(&jc.NodeRegistration)
	if jc.Timeouts == nil {
		jc.Timeouts = &Timeouts{}
	}
	setTimeoutDefaults(jc.Timeouts)
}

func setStaticNodeRegistrationDefaults(nr *NodeRegistrationOptions) {
	if nr.ImagePullPolicy == "" {
		nr.ImagePullPolicy = DefaultImagePullPolicy
	}
	if nr.ImagePullSerial == nil {
		nr.ImagePullSerial = ptr.To(true)
	}
}

func setTimeoutDefaults(t *Timeouts) {
	for _, f := range []struct {
		d   **metav1.Duration
		def time.Duration
	}{
		{&t.ControlPlaneComponentHealthCheck, DefaultControlPlaneComponentHealthCheck},
		{&t.KubeletHealthCheck, DefaultKubeletHealthCheck},
		{&t.KubernetesAPICall, DefaultKubernetesAPICall},
		{&t.EtcdAPICall, DefaultEtcdAPICall},
		{&t.TLSBootstrap, DefaultTLSBootstrap},
		{&t.Discovery, DefaultDiscovery},
		{&t.UpgradeManifests, DefaultUpgradeManifests},
	} {
		if *f.d == nil {
			*f.d = &metav1.Duration{Duration: f.def}
		}
	}
}

func setNodeRegistrationDefaults(nr *NodeRegistrationOptions, kind string, controlPlane bool, env Environment) error {
	name := nr.Name
	if strings.TrimSpace(name) == "" {
		if env.Hostname == nil {
			return fmt.Errorf("%s: nodeRegistration.name is unset and the hostname is unknown; set it or pass --node-name", kind)
		}
		h, err := env.NodeHostname()
		if err != nil {
			return fmt.Errorf("%s: nodeRegistration.name is unset and the hostname could not be read (%w); "+
				"set it or pass --node-name", kind, err)
		}
		name = h
	}
	// Node names are lowercase DNS names; kubeadm lowercases the hostname and an explicit name alike.
	nr.Name = strings.ToLower(strings.TrimSpace(name))
	if nr.CRISocket == "" {
		nr.CRISocket = DefaultCRISocket
	} else {
		nr.CRISocket = withSocketScheme(nr.CRISocket)
	}
	// nil means "not set"; an explicit empty list keeps the control-plane node schedulable.
	if controlPlane && nr.Taints == nil {
		nr.Taints = []corev1.Taint{ControlPlaneTaint()}
	}
	setStaticNodeRegistrationDefaults(nr)
	return nil
}

// withSocketScheme prepends unix:// to a bare socket path, as kubeadm does (the kubelet wants a URL).
func withSocketScheme(socket string) string {
	if strings.HasPrefix(socket, "/") {
		return "unix://" + socket
	}
	return socket
}

func setAdvertiseAddress(ep *APIEndpoint, field, flag string, env Environment) error {
	if ep.AdvertiseAddress != "" {
		ip := net.ParseIP(ep.AdvertiseAddress)
		if ip == nil || !ip.IsUnspecified() {
			return nil // an address, or garbage validation reports with its path
		}
	}
	if env.AdvertiseAddress == nil {
		return fmt.Errorf("%s is unset and no address detector is configured; set it or pass %s", field, flag)
	}
	ip, err := env.AdvertiseAddress()
	if err != nil {
		return fmt.Errorf("%s is unset and could not be detected: %w; set it or pass %s", field, err, flag)
	}
	ep.AdvertiseAddress = ip.String()
	return nil
}

// releaseLabels are kubeadm's version labels that need an internet lookup.
var releaseLabels = []string{"stable", "latest", "ci/", "ci-cross/"}

func setClusterDynamicDefaults(c *ClusterConfiguration, bindPort int32) error {
	v := c.KubernetesVersion
	for _, l := range releaseLabels {
		if strings.HasPrefix(v, l) {
			return fmt.Errorf("%s: kubernetesVersion %q is a release label that needs an internet lookup, which "+
				"kubeboot never does; pin a version such as %s", KindCluster, v, release.DefaultVersion())
		}
	}
	// kubeadm accepts "1.37.2" and means "v1.37.2".
	if v != "" && v[0] >= '0' && v[0] <= '9' {
		c.KubernetesVersion = "v" + v
	}
	// An endpoint without a port gets the API server's bind port, as in kubeadm.
	if ep := c.ControlPlaneEndpoint; ep != "" {
		if _, _, err := net.SplitHostPort(ep); err != nil {
			host := strings.TrimSuffix(strings.TrimPrefix(ep, "["), "]")
			// Anything else is left for validation to report with its path.
			if net.ParseIP(host) != nil || len(validation.IsDNS1123Subdomain(host)) == 0 {
				c.ControlPlaneEndpoint = net.JoinHostPort(host, strconv.Itoa(int(bindPort)))
			}
		}
	}
	for i, san := range c.APIServer.CertSANs {
		c.APIServer.CertSANs[i] = strings.ToLower(san)
	}
	return nil
}

// setKubeletDefaults sets what kubeadm writes into /var/lib/kubelet/config.yaml; values in the user's
// KubeletConfiguration win, except rotateCertificates, which kubeadm always turns on.
func setKubeletDefaults(k *kubeletv1beta1.KubeletConfiguration, c *ClusterConfiguration, env Environment) {
	k.APIVersion, k.Kind = KubeletGroupVer, KindKubelet
	if k.FeatureGates == nil {
		k.FeatureGates = map[string]bool{}
	}
	if k.StaticPodPath == "" {
		k.StaticPodPath = staticpod.Dir
	}
	if k.ClusterDNS == nil {
		dns := DefaultClusterDNSIP
		if ip, err := ServiceIP(c.Networking.ServiceSubnet, 10); err == nil {
			dns = ip.String()
		}
		k.ClusterDNS = []string{dns}
	}
	if k.ClusterDomain == "" {
		k.ClusterDomain = c.Networking.DNSDomain
	}
	if k.Authentication.X509.ClientCAFile == "" {
		k.Authentication.X509.ClientCAFile = filepath.Join(c.CertificatesDir, "ca.crt")
	}
	if k.Authentication.Anonymous.Enabled == nil {
		k.Authentication.Anonymous.Enabled = ptr.To(false)
	}
	if k.Authentication.Webhook.Enabled == nil {
		k.Authentication.Webhook.Enabled = ptr.To(true)
	}
	if k.Authorization.Mode == "" {
		k.Authorization.Mode = kubeletv1beta1.KubeletAuthorizationModeWebhook
	}
	if k.HealthzBindAddress == "" {
		k.HealthzBindAddress = KubeletHealthzBindAddress
	}
	if k.HealthzPort == nil {
		k.HealthzPort = ptr.To[int32](KubeletHealthzPort)
	}
	// A bool cannot say "unset"; kubeadm forces certificate rotation on and so does kubeboot.
	k.RotateCertificates = true
	if k.CgroupDriver == "" {
		k.CgroupDriver = KubeletCgroupDriver
	}
	if k.ResolverConfig == nil && env.SystemdResolvedActive != nil && env.SystemdResolvedActive() {
		k.ResolverConfig = ptr.To(KubeletSystemdResolverConfig)
	}
}

// setKubeProxyDefaults sets what kubeadm puts into the kube-proxy ConfigMap; the user's values win.
func setKubeProxyDefaults(p *kubeproxyv1alpha1.KubeProxyConfiguration, c *ClusterConfiguration, advertise string) {
	p.APIVersion, p.Kind = ProxyGroupVer, KindProxy
	if p.FeatureGates == nil {
		p.FeatureGates = map[string]bool{}
	}
	if p.BindAddress == "" {
		p.BindAddress = "0.0.0.0"
		if ip := net.ParseIP(advertise); ip != nil && ip.To4() == nil {
			p.BindAddress = "::"
		}
	}
	if p.ClusterCIDR == "" {
		p.ClusterCIDR = c.Networking.PodSubnet
	}
	if p.ClientConnection.Kubeconfig == "" {
		p.ClientConnection.Kubeconfig = KubeProxyKubeconfig
	}
	// An unsupported version leaves the mode alone; validation reports the version.
	if r, err := c.Release(); err == nil && p.Mode == "" {
		p.Mode = kubeproxyv1alpha1.ProxyMode(r.KubeProxyDefaultMode)
	}
}

// ServiceIP returns the index-th address of the first subnet of a (possibly dual-stack, comma-separated)
// service subnet: index 1 is the kubernetes Service, index 10 the cluster DNS.
func ServiceIP(serviceSubnet string, index int) (net.IP, error) {
	first, _, _ := strings.Cut(serviceSubnet, ",")
	p, err := netip.ParsePrefix(strings.TrimSpace(first))
	if err != nil {
		return nil, fmt.Errorf("service subnet %q: %w", serviceSubnet, err)
	}
	p = p.Masked()
	a := p.Addr()
	for range index {
		a = a.Next()
	}
	if !a.IsValid() || !p.Contains(a) {
		return nil, fmt.Errorf("service subnet %q has fewer than %d addresses", serviceSubnet, index+1)
	}
	return net.IP(a.AsSlice()), nil
}

const tokenAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

// GenerateToken returns a random bootstrap token "[a-z0-9]{6}.[a-z0-9]{16}" read from r (crypto/rand.Reader on a
// real host).
func GenerateToken(r io.Reader) (string, error) {
	if r == nil {
		return "", errors.New("no source of randomness to generate a bootstrap token")
	}
	out := make([]byte, 0, 23)
	buf := make([]byte, 32)
	for len(out) < 22 {
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("generating a bootstrap token: %w", err)
		}
		for _, b := range buf {
			// 252 = 7*36: rejecting the rest keeps every character equally likely.
			if b < 252 && len(out) < 22 {
				out = append(out, tokenAlphabet[int(b)%len(tokenAlphabet)])
			}
		}
	}
	return string(out[:6]) + "." + string(out[6:]), nil
}
