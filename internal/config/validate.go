package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/util/version"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"

	"kubeboot.dev/kubeboot/internal/release"
)

// Limits taken from kubeadm.
const (
	// maxServiceSubnetHostBits caps the Service range: the apiserver's allocator bitmap must stay small.
	maxServiceSubnetHostBits  = 20
	minServiceSubnetAddresses = 10
	minPodSubnetAddresses     = 14
	// maxPodSubnetNodeMaskDiff bounds the number of node CIDRs (2^16) the controller-manager allocates.
	maxPodSubnetNodeMaskDiff = 16
	certificateKeyBytes      = 32
)

var knownEncryptionAlgorithms = []EncryptionAlgorithmType{
	EncryptionAlgorithmECDSAP256, EncryptionAlgorithmECDSAP384,
	EncryptionAlgorithmRSA2048, EncryptionAlgorithmRSA3072, EncryptionAlgorithmRSA4096,
}

// ValidateInit checks a defaulted Init and returns every problem at once (errors.Join); each error names the
// document kind, the field path and the offending value.
func ValidateInit(cfg *Init) error {
	var errs []error
	for _, e := range validateInitConfiguration(&cfg.Init) {
		errs = append(errs, fmt.Errorf("%s: %w", KindInit, e))
	}
	errs = append(errs, clusterErrors(cfg.ClusterPart())...)
	return errors.Join(append(errs, ValidateKubeboot(cfg.Kubeboot, cfg.Init.LocalAPIEndpoint.BindPort))...)
}

// ValidateCluster checks the configuration a cluster's nodes share, as ValidateInit does; a joining control-plane
// node checks what it read from the cluster with it before it renders anything.
func ValidateCluster(c *Cluster) error {
	return errors.Join(clusterErrors(c)...)
}

func clusterErrors(c *Cluster) []error {
	var errs []error
	add := func(kind string, list field.ErrorList) {
		for _, e := range list {
			errs = append(errs, fmt.Errorf("%s: %w", kind, e))
		}
	}
	add(KindCluster, validateClusterConfiguration(&c.ClusterConfiguration))
	if c.Kubelet != nil {
		var l field.ErrorList
		if d := c.Kubelet.CgroupDriver; d != "" && d != "systemd" && d != "cgroupfs" {
			l = append(l, field.NotSupported(field.NewPath("cgroupDriver"), d, []string{"cgroupfs", "systemd"}))
		}
		for i, ip := range c.Kubelet.ClusterDNS {
			if net.ParseIP(ip) == nil {
				l = append(l, field.Invalid(field.NewPath("clusterDNS").Index(i), ip, "not an IP address"))
			}
		}
		add(KindKubelet, l)
	}
	if c.KubeProxy != nil && c.KubeProxy.ClusterCIDR != "" {
		var l field.ErrorList
		if _, err := parseSubnets(c.KubeProxy.ClusterCIDR); err != nil {
			l = append(l, field.Invalid(field.NewPath("clusterCIDR"), c.KubeProxy.ClusterCIDR, err.Error()))
		}
		add(KindProxy, l)
	}
	return errs
}

// ValidateJoin checks a defaulted Join the same way.
func ValidateJoin(cfg *Join) error {
	var errs []error
	for _, e := range validateJoinConfiguration(&cfg.Join) {
		errs = append(errs, fmt.Errorf("%s: %w", KindJoin, e))
	}
	apiServerPort := int32(0) // a worker runs no API server
	if cp := cfg.Join.ControlPlane; cp != nil {
		apiServerPort = cp.LocalAPIEndpoint.BindPort
	}
	return errors.Join(append(errs, ValidateKubeboot(cfg.Kubeboot, apiServerPort))...)
}

// ValidateReset checks a defaulted ResetConfiguration.
func ValidateReset(cfg *ResetConfiguration) error {
	var l field.ErrorList
	l = append(l, validateCRISocket(cfg.CRISocket, field.NewPath("criSocket"))...)
	l = append(l, validateAbsolutePath(cfg.CertificatesDir, field.NewPath("certificatesDir"))...)
	known := []string{"MNT_DETACH", "MNT_EXPIRE", "MNT_FORCE", "UMOUNT_NOFOLLOW"}
	for i, f := range cfg.UnmountFlags {
		if !slices.Contains(known, f) {
			l = append(l, field.NotSupported(field.NewPath("unmountFlags").Index(i), f, known))
		}
	}
	l = append(l, validateIgnorePreflightErrors(cfg.IgnorePreflightErrors, field.NewPath("ignorePreflightErrors"))...)
	l = append(l, validateTimeouts(cfg.Timeouts, field.NewPath("timeouts"))...)
	var errs []error
	for _, e := range l {
		errs = append(errs, fmt.Errorf("%s: %w", KindReset, e))
	}
	return errors.Join(errs...)
}

func validateInitConfiguration(c *InitConfiguration) field.ErrorList {
	var l field.ErrorList
	l = append(l, validateNodeRegistration(&c.NodeRegistration, field.NewPath("nodeRegistration"))...)
	l = append(l, validateBootstrapTokens(c.BootstrapTokens, field.NewPath("bootstrapTokens"))...)
	l = append(l, validateAPIEndpoint(&c.LocalAPIEndpoint, field.NewPath("localAPIEndpoint"))...)
	l = append(l, validateCertificateKey(c.CertificateKey, field.NewPath("certificateKey"))...)
	l = append(l, validatePatches(c.Patches, field.NewPath("patches"))...)
	l = append(l, validateTimeouts(c.Timeouts, field.NewPath("timeouts"))...)
	return l
}

func validateClusterConfiguration(c *ClusterConfiguration) field.ErrorList {
	var l field.ErrorList
	l = append(l, validateKubernetesVersion(c.KubernetesVersion, field.NewPath("kubernetesVersion"))...)
	l = append(l, validateNetworking(c, field.NewPath("networking"))...)
	l = append(l, validateHostPort(c.ControlPlaneEndpoint, field.NewPath("controlPlaneEndpoint"))...)
	l = append(l, validateCertSANs(c.APIServer.CertSANs, field.NewPath("apiServer", "certSANs"))...)
	l = append(l, validateExtraArgs(c.APIServer.ExtraArgs, field.NewPath("apiServer", "extraArgs"))...)
	l = append(l, validateExtraArgs(c.ControllerManager.ExtraArgs, field.NewPath("controllerManager", "extraArgs"))...)
	l = append(l, validateExtraArgs(c.Scheduler.ExtraArgs, field.NewPath("scheduler", "extraArgs"))...)
	l = append(l, validateAbsolutePath(c.CertificatesDir, field.NewPath("certificatesDir"))...)
	l = append(l, validateImageRepository(c.ImageRepository, field.NewPath("imageRepository"))...)
	if c.DNS.ImageRepository != "" {
		l = append(l, validateImageRepository(c.DNS.ImageRepository, field.NewPath("dns", "imageRepository"))...)
	}
	l = append(l, validateEtcd(&c.Etcd, field.NewPath("etcd"))...)
	if !slices.Contains(knownEncryptionAlgorithms, c.EncryptionAlgorithm) {
		l = append(l, field.NotSupported(field.NewPath("encryptionAlgorithm"), c.EncryptionAlgorithm, knownEncryptionAlgorithms))
	}
	l = append(l, validateFeatureGates(c, field.NewPath("featureGates"))...)
	l = append(l, validatePositive(c.CertificateValidityPeriod, field.NewPath("certificateValidityPeriod"))...)
	l = append(l, validatePositive(c.CACertificateValidityPeriod, field.NewPath("caCertificateValidityPeriod"))...)
	if c.CertificateValidityPeriod != nil && c.CACertificateValidityPeriod != nil &&
		c.CertificateValidityPeriod.Duration > c.CACertificateValidityPeriod.Duration {
		l = append(l, field.Invalid(field.NewPath("certificateValidityPeriod"), c.CertificateValidityPeriod.Duration.String(),
			fmt.Sprintf("longer than caCertificateValidityPeriod (%s): certificates cannot outlive their CA",
				c.CACertificateValidityPeriod.Duration)))
	}
	return l
}

func validateJoinConfiguration(c *JoinConfiguration) field.ErrorList {
	var l field.ErrorList
	l = append(l, validateDiscovery(&c.Discovery, field.NewPath("discovery"))...)
	l = append(l, validateNodeRegistration(&c.NodeRegistration, field.NewPath("nodeRegistration"))...)
	if cp := c.ControlPlane; cp != nil {
		p := field.NewPath("controlPlane")
		l = append(l, validateAPIEndpoint(&cp.LocalAPIEndpoint, p.Child("localAPIEndpoint"))...)
		l = append(l, validateCertificateKey(cp.CertificateKey, p.Child("certificateKey"))...)
	}
	if !filepath.IsAbs(c.CACertPath) || !strings.HasSuffix(c.CACertPath, ".crt") {
		l = append(l, field.Invalid(field.NewPath("caCertPath"), c.CACertPath, "must be an absolute path ending in .crt"))
	}
	l = append(l, validatePatches(c.Patches, field.NewPath("patches"))...)
	l = append(l, validateTimeouts(c.Timeouts, field.NewPath("timeouts"))...)
	return l
}

func validateNodeRegistration(nr *NodeRegistrationOptions, p *field.Path) field.ErrorList {
	var l field.ErrorList
	if nr.Name == "" {
		l = append(l, field.Required(p.Child("name"), "set it or pass --node-name"))
	} else {
		for _, msg := range validation.IsDNS1123Subdomain(nr.Name) {
			l = append(l, field.Invalid(p.Child("name"), nr.Name, msg))
		}
	}
	l = append(l, validateCRISocket(nr.CRISocket, p.Child("criSocket"))...)
	l = append(l, validateExtraArgs(nr.KubeletExtraArgs, p.Child("kubeletExtraArgs"))...)
	switch nr.ImagePullPolicy {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		l = append(l, field.NotSupported(p.Child("imagePullPolicy"), nr.ImagePullPolicy,
			[]corev1.PullPolicy{corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever}))
	}
	effects := []corev1.TaintEffect{corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute}
	for i, t := range nr.Taints {
		tp := p.Child("taints").Index(i)
		for _, msg := range validation.IsQualifiedName(t.Key) {
			l = append(l, field.Invalid(tp.Child("key"), t.Key, msg))
		}
		if t.Value != "" {
			for _, msg := range validation.IsValidLabelValue(t.Value) {
				l = append(l, field.Invalid(tp.Child("value"), t.Value, msg))
			}
		}
		if !slices.Contains(effects, t.Effect) {
			l = append(l, field.NotSupported(tp.Child("effect"), t.Effect, effects))
		}
	}
	l = append(l, validateIgnorePreflightErrors(nr.IgnorePreflightErrors, p.Child("ignorePreflightErrors"))...)
	return l
}

func validateIgnorePreflightErrors(list []string, p *field.Path) field.ErrorList {
	all := slices.ContainsFunc(list, func(s string) bool { return strings.EqualFold(s, "all") })
	if all && len(list) > 1 {
		return field.ErrorList{field.Invalid(p, strings.Join(list, ","), `"all" ignores every check; do not list individual checks with it`)}
	}
	return nil
}

func validateCRISocket(socket string, p *field.Path) field.ErrorList {
	if socket == "" {
		return field.ErrorList{field.Required(p, "the CRI socket URL, e.g. "+DefaultCRISocket)}
	}
	u, err := url.Parse(socket)
	if err != nil {
		return field.ErrorList{field.Invalid(p, socket, fmt.Sprintf("not a URL: %v", err))}
	}
	if u.Scheme != "unix" {
		return field.ErrorList{field.Invalid(p, socket, fmt.Sprintf(`only the "unix" URL scheme is supported, got %q`, u.Scheme))}
	}
	return nil
}

func validateExtraArgs(args []Arg, p *field.Path) field.ErrorList {
	var l field.ErrorList
	for i, a := range args {
		if a.Name == "" {
			l = append(l, field.Required(p.Index(i).Child("name"), "an argument needs a name"))
		} else if strings.HasPrefix(a.Name, "-") {
			l = append(l, field.Invalid(p.Index(i).Child("name"), a.Name, `write the flag name without leading "-"`))
		}
	}
	return l
}

func validateBootstrapTokens(tokens []BootstrapToken, p *field.Path) field.ErrorList {
	var l field.ErrorList
	for i, t := range tokens {
		tp := p.Index(i)
		if !bootstraputil.IsValidBootstrapToken(t.Token) {
			l = append(l, field.Invalid(tp.Child("token"), redactToken(t.Token),
				`a bootstrap token has the form "[a-z0-9]{6}.[a-z0-9]{16}"`))
		}
		if err := bootstraputil.ValidateUsages(t.Usages); err != nil {
			l = append(l, field.Invalid(tp.Child("usages"), t.Usages, err.Error()))
		}
		if len(t.Groups) > 0 && !slices.Contains(t.Usages, "authentication") {
			l = append(l, field.Invalid(tp.Child("groups"), t.Groups, `groups need the "authentication" usage`))
		}
		for j, g := range t.Groups {
			if err := bootstraputil.ValidateBootstrapGroupName(g); err != nil {
				l = append(l, field.Invalid(tp.Child("groups").Index(j), g, err.Error()))
			}
		}
		if t.TTL != nil && t.Expires != nil {
			l = append(l, field.Invalid(tp.Child("expires"), t.Expires.UTC().Format("2006-01-02T15:04:05Z07:00"),
				"ttl and expires are mutually exclusive; set one"))
		}
		if t.TTL != nil && t.TTL.Duration < 0 {
			l = append(l, field.Invalid(tp.Child("ttl"), t.TTL.Duration.String(), "must not be negative (0 means never expires)"))
		}
	}
	return l
}

// redactToken keeps the public token id and hides the secret half, so errors never print a usable token.
func redactToken(tok string) string {
	if id, _, ok := strings.Cut(tok, "."); ok && len(id) == 6 {
		return id + ".<redacted>"
	}
	if len(tok) > 6 {
		return tok[:6] + "<redacted>"
	}
	return tok
}

func validateAPIEndpoint(ep *APIEndpoint, p *field.Path) field.ErrorList {
	var l field.ErrorList
	ip := net.ParseIP(ep.AdvertiseAddress)
	switch {
	case ip == nil:
		l = append(l, field.Invalid(p.Child("advertiseAddress"), ep.AdvertiseAddress, "not an IP address"))
	case !ip.IsLoopback() && !ip.IsGlobalUnicast():
		l = append(l, field.Invalid(p.Child("advertiseAddress"), ep.AdvertiseAddress,
			"the API server cannot advertise this address; use a unicast address of this node"))
	}
	if ep.BindPort < 1 || ep.BindPort > 65535 {
		l = append(l, field.Invalid(p.Child("bindPort"), ep.BindPort, "must be between 1 and 65535"))
	}
	return l
}

func validateCertificateKey(key string, p *field.Path) field.ErrorList {
	if key == "" {
		return nil
	}
	b, err := hex.DecodeString(key)
	if err != nil || len(b) != certificateKeyBytes {
		// The key is a secret: say what is wrong with it, not what it is.
		return field.ErrorList{field.Invalid(p, "<redacted>",
			fmt.Sprintf("must be %d hex characters (a %d-byte AES key)", 2*certificateKeyBytes, certificateKeyBytes))}
	}
	return nil
}

func validatePatches(pt *Patches, p *field.Path) field.ErrorList {
	if pt == nil || pt.Directory == "" {
		return nil
	}
	return validateAbsolutePath(pt.Directory, p.Child("directory"))
}

func validateTimeouts(t *Timeouts, p *field.Path) field.ErrorList {
	if t == nil {
		return nil
	}
	var l field.ErrorList
	for _, f := range []struct {
		name string
		d    *metav1.Duration
	}{
		{"controlPlaneComponentHealthCheck", t.ControlPlaneComponentHealthCheck},
		{"kubeletHealthCheck", t.KubeletHealthCheck},
		{"kubernetesAPICall", t.KubernetesAPICall},
		{"etcdAPICall", t.EtcdAPICall},
		{"tlsBootstrap", t.TLSBootstrap},
		{"discovery", t.Discovery},
		{"upgradeManifests", t.UpgradeManifests},
	} {
		if f.d != nil && f.d.Duration < 0 {
			l = append(l, field.Invalid(p.Child(f.name), f.d.Duration.String(), "must not be negative"))
		}
	}
	return l
}

func validatePositive(d *metav1.Duration, p *field.Path) field.ErrorList {
	if d != nil && d.Duration <= 0 {
		return field.ErrorList{field.Invalid(p, d.Duration.String(), "must be positive")}
	}
	return nil
}

func validateKubernetesVersion(v string, p *field.Path) field.ErrorList {
	example := release.DefaultVersion()
	if !strings.HasPrefix(v, "v") {
		return field.ErrorList{field.Invalid(p, v, `must be a version such as "`+example+`"`)}
	}
	if _, err := version.ParseSemantic(v); err != nil {
		return field.ErrorList{field.Invalid(p, v, `must be a version such as "`+example+`"`)}
	}
	if _, err := release.For(v); err != nil {
		return field.ErrorList{field.Invalid(p, v, err.Error())}
	}
	return nil
}

// validateFeatureGates checks ClusterConfiguration.featureGates against the gates kubeadm of the cluster's minor
// knows: an unknown gate (one kubeadm removed, for example) is an error, as in kubeadm, and so is a locked gate set
// to the value it is locked against, which kubeadm would silently ignore.
func validateFeatureGates(c *ClusterConfiguration, p *field.Path) field.ErrorList {
	r, err := release.For(c.KubernetesVersion)
	if err != nil {
		return nil // validateKubernetesVersion reports it
	}
	var l field.ErrorList
	for _, name := range sortedKeys(c.FeatureGates) {
		g, ok := r.FeatureGate(name)
		switch {
		case !ok:
			l = append(l, field.NotSupported(p.Key(name), name, r.FeatureGateNames()))
		case g.Locked && c.FeatureGates[name] != g.Default:
			l = append(l, field.Invalid(p.Key(name), c.FeatureGates[name],
				fmt.Sprintf("the gate is locked to %t in Kubernetes v1.%d: remove it", g.Default, r.Minor)))
		}
	}
	return l
}

func validateNetworking(c *ClusterConfiguration, p *field.Path) field.ErrorList {
	var l field.ErrorList
	n := &c.Networking
	for _, msg := range validation.IsDNS1123Subdomain(n.DNSDomain) {
		l = append(l, field.Invalid(p.Child("dnsDomain"), n.DNSDomain, msg))
	}
	svcPath, podPath := p.Child("serviceSubnet"), p.Child("podSubnet")
	services, err := parseSubnets(n.ServiceSubnet)
	if err != nil {
		l = append(l, field.Invalid(svcPath, n.ServiceSubnet, err.Error()))
	}
	for _, s := range services {
		if hostBits := s.Addr().BitLen() - s.Bits(); hostBits > maxServiceSubnetHostBits {
			l = append(l, field.Invalid(svcPath, s.String(), fmt.Sprintf("too large: at most %d host bits, so the "+
				"prefix must be /%d or longer", maxServiceSubnetHostBits, s.Addr().BitLen()-maxServiceSubnetHostBits)))
		} else if size := 1 << hostBits; size < minServiceSubnetAddresses {
			l = append(l, field.Invalid(svcPath, s.String(), fmt.Sprintf("too small: %d addresses, at least %d needed",
				size, minServiceSubnetAddresses)))
		}
	}
	if n.PodSubnet == "" {
		return l
	}
	pods, err := parseSubnets(n.PodSubnet)
	if err != nil {
		l = append(l, field.Invalid(podPath, n.PodSubnet, err.Error()))
	}
	allocate := true
	if v, ok := lastArg(c.ControllerManager.ExtraArgs, "allocate-node-cidrs"); ok && v == "false" {
		allocate = false
	}
	for _, s := range pods {
		hostBits := s.Addr().BitLen() - s.Bits()
		if hostBits < 63 && 1<<hostBits < minPodSubnetAddresses {
			l = append(l, field.Invalid(podPath, s.String(), fmt.Sprintf("too small: %d addresses, at least %d needed",
				1<<hostBits, minPodSubnetAddresses)))
			continue
		}
		if allocate {
			l = append(l, validateNodeMask(c, s, podPath)...)
		}
	}
	for _, ps := range pods {
		for _, ss := range services {
			if ps.Overlaps(ss) {
				l = append(l, field.Invalid(podPath, ps.String(), fmt.Sprintf("overlaps networking.serviceSubnet %s; "+
					"Pod and Service addresses must not collide", ss)))
			}
		}
	}
	return l
}

// validateNodeMask checks the per-node CIDR size the controller-manager carves out of the Pod subnet.
func validateNodeMask(c *ClusterConfiguration, s netip.Prefix, p *field.Path) field.ErrorList {
	flag, nodeMask := "node-cidr-mask-size-ipv4", 24
	if s.Addr().Is6() {
		flag, nodeMask = "node-cidr-mask-size-ipv6", 64
	}
	if v, ok := lastArg(c.ControllerManager.ExtraArgs, flag); ok {
		m, err := strconv.Atoi(v)
		if err != nil {
			return field.ErrorList{field.Invalid(field.NewPath("controllerManager", "extraArgs"), flag+"="+v, "not an integer")}
		}
		nodeMask = m
	}
	switch {
	case s.Bits() > nodeMask:
		return field.ErrorList{field.Invalid(p, s.String(), fmt.Sprintf("the prefix /%d is smaller than one node's "+
			"/%d (controller-manager %s)", s.Bits(), nodeMask, flag))}
	case nodeMask-s.Bits() > maxPodSubnetNodeMaskDiff:
		return field.ErrorList{field.Invalid(p, s.String(), fmt.Sprintf("the prefix /%d and the node size /%d differ "+
			"by more than %d bits (controller-manager %s)", s.Bits(), nodeMask, maxPodSubnetNodeMaskDiff, flag))}
	}
	return nil
}

// lastArg returns the value the component will see for a flag given several times: the last one.
func lastArg(args []Arg, name string) (string, bool) {
	for i := len(args) - 1; i >= 0; i-- {
		if args[i].Name == name {
			return args[i].Value, true
		}
	}
	return "", false
}

// parseSubnets reads one CIDR or a dual-stack pair "IPv4CIDR,IPv6CIDR".
func parseSubnets(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(part))
		if err != nil {
			return nil, errors.New("not a CIDR such as 10.96.0.0/12")
		}
		out = append(out, p.Masked())
	}
	switch {
	case len(out) > 2:
		return nil, errors.New("at most two CIDRs, one IPv4 and one IPv6")
	case len(out) == 2 && out[0].Addr().Is4() == out[1].Addr().Is4():
		return nil, errors.New("two CIDRs must be one IPv4 and one IPv6 (dual-stack)")
	}
	return out, nil
}

func validateHostPort(endpoint string, p *field.Path) field.ErrorList {
	if endpoint == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		host, port = endpoint, ""
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return field.ErrorList{field.Invalid(p, endpoint, "the port must be a number between 1 and 65535")}
		}
	}
	if net.ParseIP(host) == nil && len(validation.IsDNS1123Subdomain(host)) > 0 {
		return field.ErrorList{field.Invalid(p, endpoint, "must be host[:port] where host is an IP address or a DNS name")}
	}
	return nil
}

func validateCertSANs(sans []string, p *field.Path) field.ErrorList {
	var l field.ErrorList
	for i, san := range sans {
		if net.ParseIP(san) != nil || len(validation.IsDNS1123Subdomain(san)) == 0 ||
			len(validation.IsWildcardDNS1123Subdomain(san)) == 0 {
			continue
		}
		l = append(l, field.Invalid(p.Index(i), san, "not an IP address, a DNS name or a wildcard DNS name"))
	}
	return l
}

func validateAbsolutePath(path string, p *field.Path) field.ErrorList {
	if !filepath.IsAbs(path) {
		return field.ErrorList{field.Invalid(p, path, "must be an absolute path")}
	}
	return nil
}

// imageRepositoryRE is the docker reference grammar for "[domain[:port]/]path" (domain components may contain
// upper case and dots, path components are lower case with . _ __ - separators).
var imageRepositoryRE = regexp.MustCompile(`^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)

func validateImageRepository(repo string, p *field.Path) field.ErrorList {
	// kubeadm checks "<repo>/name:tag" against the reference grammar; "<repo>/name" is the same test here.
	if !imageRepositoryRE.MatchString(repo + "/name") {
		return field.ErrorList{field.Invalid(p, repo, "not an image repository such as registry.k8s.io or host:5000/path")}
	}
	return nil
}

func validateEtcd(e *Etcd, p *field.Path) field.ErrorList {
	local, external := p.Child("local"), p.Child("external")
	switch {
	case e.Local == nil && e.External == nil:
		return field.ErrorList{field.Required(p, "either local or external")}
	case e.Local != nil && e.External != nil:
		return field.ErrorList{field.Forbidden(external, "local and external are mutually exclusive; set only one")}
	}
	var l field.ErrorList
	if lc := e.Local; lc != nil {
		l = append(l, validateAbsolutePath(lc.DataDir, local.Child("dataDir"))...)
		l = append(l, validateCertSANs(lc.ServerCertSANs, local.Child("serverCertSANs"))...)
		l = append(l, validateCertSANs(lc.PeerCertSANs, local.Child("peerCertSANs"))...)
		if lc.ImageRepository != "" {
			l = append(l, validateImageRepository(lc.ImageRepository, local.Child("imageRepository"))...)
		}
		l = append(l, validateExtraArgs(lc.ExtraArgs, local.Child("extraArgs"))...)
		return l
	}
	x := e.External
	if len(x.Endpoints) == 0 {
		l = append(l, field.Required(external.Child("endpoints"), "at least one etcd client URL, e.g. https://10.0.0.5:2379"))
	}
	tls := x.CAFile != "" || x.CertFile != "" || x.KeyFile != ""
	for i, ep := range x.Endpoints {
		u, err := url.Parse(ep)
		switch {
		case err != nil || u.Host == "":
			l = append(l, field.Invalid(external.Child("endpoints").Index(i), ep, "not a URL such as https://10.0.0.5:2379"))
		case tls && u.Scheme != "https":
			l = append(l, field.Invalid(external.Child("endpoints").Index(i), ep, "must use https when caFile, certFile or keyFile is set"))
		case u.Scheme != "https" && u.Scheme != "http":
			l = append(l, field.Invalid(external.Child("endpoints").Index(i), ep, "the scheme must be https or http"))
		}
	}
	for i, ep := range x.HTTPEndpoints {
		if u, err := url.Parse(ep); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			l = append(l, field.Invalid(external.Child("httpEndpoints").Index(i), ep, "not an http or https URL such as https://10.0.0.5:2379"))
		}
	}
	if (x.CertFile == "") != (x.KeyFile == "") {
		l = append(l, field.Invalid(external, "", "certFile and keyFile must be set together"))
	}
	if x.CertFile != "" && x.CAFile == "" {
		l = append(l, field.Required(external.Child("caFile"), "certFile and keyFile need the CA that signed etcd's serving certificate"))
	}
	for _, f := range []struct{ name, path string }{{"caFile", x.CAFile}, {"certFile", x.CertFile}, {"keyFile", x.KeyFile}} {
		if f.path != "" {
			l = append(l, validateAbsolutePath(f.path, external.Child(f.name))...)
		}
	}
	return l
}

// caCertHashRE is the only pin format kubeadm writes and reads.
var caCertHashRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

func validateDiscovery(d *Discovery, p *field.Path) field.ErrorList {
	var l field.ErrorList
	switch {
	case d.BootstrapToken == nil && d.File == nil:
		return field.ErrorList{field.Required(p, "bootstrapToken or file; pass an API server endpoint with --token "+
			"and --discovery-token-ca-cert-hash, or --discovery-file")}
	case d.BootstrapToken != nil && d.File != nil:
		return field.ErrorList{field.Forbidden(p.Child("file"), "bootstrapToken and file are mutually exclusive; set only one")}
	}
	if bt := d.BootstrapToken; bt != nil {
		bp := p.Child("bootstrapToken")
		if !bootstraputil.IsValidBootstrapToken(bt.Token) {
			l = append(l, field.Invalid(bp.Child("token"), redactToken(bt.Token), `a bootstrap token has the form "[a-z0-9]{6}.[a-z0-9]{16}"`))
		}
		if bt.APIServerEndpoint == "" {
			l = append(l, field.Required(bp.Child("apiServerEndpoint"), "the control plane's host:port"))
		} else if _, _, err := net.SplitHostPort(bt.APIServerEndpoint); err != nil {
			l = append(l, field.Invalid(bp.Child("apiServerEndpoint"), bt.APIServerEndpoint, "must be host:port"))
		}
		if len(bt.CACertHashes) == 0 && !bt.UnsafeSkipCAVerification {
			l = append(l, field.Required(bp.Child("caCertHashes"), "without a CA pin the cluster cannot be authenticated; "+
				"pass --discovery-token-ca-cert-hash sha256:<hex> (or, unsafely, --discovery-token-unsafe-skip-ca-verification)"))
		}
		for i, h := range bt.CACertHashes {
			if !caCertHashRE.MatchString(h) {
				l = append(l, field.Invalid(bp.Child("caCertHashes").Index(i), h, `must be "sha256:" followed by 64 lower-case hex characters`))
			}
		}
	}
	if f := d.File; f != nil {
		fp := p.Child("file", "kubeConfigPath")
		if f.KubeConfigPath == "" {
			l = append(l, field.Required(fp, "a kubeconfig file path or an https URL"))
		} else if u, err := url.Parse(f.KubeConfigPath); err != nil {
			l = append(l, field.Invalid(fp, f.KubeConfigPath, "not a file path or an https URL"))
		} else if u.Scheme != "" && u.Scheme != "https" {
			l = append(l, field.Invalid(fp, f.KubeConfigPath, "a URL must use https"))
		}
	}
	if d.BootstrapToken != nil || d.TLSBootstrapToken != "" {
		if !bootstraputil.IsValidBootstrapToken(d.TLSBootstrapToken) {
			l = append(l, field.Invalid(p.Child("tlsBootstrapToken"), redactToken(d.TLSBootstrapToken),
				`a bootstrap token has the form "[a-z0-9]{6}.[a-z0-9]{16}"`))
		}
	}
	return l
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
