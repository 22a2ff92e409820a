package config

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kubeboot.dev/kubeboot/internal/release"
)

// InitFlags are kubeadm's `init` flags. A nil pointer (or nil slice) means the user did not set the flag; the CLI
// sets a field only when cobra reports the flag as changed.
type InitFlags struct {
	APIServerAdvertiseAddress *string        // --apiserver-advertise-address
	APIServerBindPort         *int32         // --apiserver-bind-port
	ControlPlaneEndpoint      *string        // --control-plane-endpoint
	PodNetworkCIDR            *string        // --pod-network-cidr
	ServiceCIDR               *string        // --service-cidr
	ServiceDNSDomain          *string        // --service-dns-domain
	KubernetesVersion         *string        // --kubernetes-version
	NodeName                  *string        // --node-name
	CertDir                   *string        // --cert-dir
	CRISocket                 *string        // --cri-socket
	SkipPhases                []string       // --skip-phases
	IgnorePreflightErrors     []string       // --ignore-preflight-errors
	ImageRepository           *string        // --image-repository
	Token                     *string        // --token
	TokenTTL                  *time.Duration // --token-ttl
	FeatureGates              *string        // --feature-gates, "Name=true,Other=false"
	APIServerCertSANs         []string       // --apiserver-cert-extra-sans
	Patches                   *string        // --patches
	// UploadCerts is not part of the configuration API: the init workflow reads it from here.
	UploadCerts    *bool   // --upload-certs
	CertificateKey *string // --certificate-key
	DryRun         *bool   // --dry-run
}

// JoinFlags are kubeadm's `join` flags, with the same "nil means not set" rule as InitFlags.
type JoinFlags struct {
	// APIServerEndpoint is the command's first argument ("host:port"), "" when there is none.
	APIServerEndpoint                      string
	Token                                  *string  // --token
	DiscoveryToken                         *string  // --discovery-token
	DiscoveryTokenCACertHashes             []string // --discovery-token-ca-cert-hash (repeatable)
	DiscoveryTokenUnsafeSkipCAVerification *bool    // --discovery-token-unsafe-skip-ca-verification
	DiscoveryFile                          *string  // --discovery-file
	TLSBootstrapToken                      *string  // --tls-bootstrap-token
	ControlPlane                           *bool    // --control-plane
	CertificateKey                         *string  // --certificate-key
	APIServerAdvertiseAddress              *string  // --apiserver-advertise-address
	APIServerBindPort                      *int32   // --apiserver-bind-port
	NodeName                               *string  // --node-name
	CRISocket                              *string  // --cri-socket
	IgnorePreflightErrors                  []string // --ignore-preflight-errors
	SkipPhases                             []string // --skip-phases
	DryRun                                 *bool    // --dry-run
	Patches                                *string  // --patches
}

// ApplyInitFlags overlays the flags the user set on cfg, following kubeadm:
//
//   - Without a configuration file, cfg starts empty and every flag fills its field; --token and --token-ttl
//     describe the one bootstrap token init creates; --feature-gates, --apiserver-cert-extra-sans and --patches
//     fill featureGates, apiServer.certSANs and patches.directory.
//   - With --config, only --node-name, --ignore-preflight-errors, --dry-run, --upload-certs and --skip-phases may
//     be added (kubeadm's list); any other flag is an error naming it, because the file is the source of truth.
//
// In both cases --node-name and --dry-run override the file, a non-empty --skip-phases replaces the file's list,
// and --ignore-preflight-errors is merged with the file's list (lowercased, sorted, without duplicates).
func ApplyInitFlags(cfg *Init, f InitFlags, withConfigFile bool) error {
	if withConfigFile {
		if err := refuseMixing(map[string]bool{
			"--apiserver-advertise-address": f.APIServerAdvertiseAddress != nil,
			"--apiserver-bind-port":         f.APIServerBindPort != nil,
			"--control-plane-endpoint":      f.ControlPlaneEndpoint != nil,
			"--pod-network-cidr":            f.PodNetworkCIDR != nil,
			"--service-cidr":                f.ServiceCIDR != nil,
			"--service-dns-domain":          f.ServiceDNSDomain != nil,
			"--kubernetes-version":          f.KubernetesVersion != nil,
			"--cert-dir":                    f.CertDir != nil,
			"--cri-socket":                  f.CRISocket != nil,
			"--image-repository":            f.ImageRepository != nil,
			"--token":                       f.Token != nil,
			"--token-ttl":                   f.TokenTTL != nil,
			"--certificate-key":             f.CertificateKey != nil,
			"--feature-gates":               f.FeatureGates != nil,
			"--apiserver-cert-extra-sans":   f.APIServerCertSANs != nil,
			"--patches":                     f.Patches != nil,
		}); err != nil {
			return err
		}
	} else {
		ic, c := &cfg.Init, &cfg.Cluster
		setString(&ic.LocalAPIEndpoint.AdvertiseAddress, f.APIServerAdvertiseAddress)
		if f.APIServerBindPort != nil {
			ic.LocalAPIEndpoint.BindPort = *f.APIServerBindPort
		}
		setString(&c.ControlPlaneEndpoint, f.ControlPlaneEndpoint)
		setString(&c.Networking.PodSubnet, f.PodNetworkCIDR)
		setString(&c.Networking.ServiceSubnet, f.ServiceCIDR)
		setString(&c.Networking.DNSDomain, f.ServiceDNSDomain)
		setString(&c.KubernetesVersion, f.KubernetesVersion)
		setString(&c.CertificatesDir, f.CertDir)
		setString(&ic.NodeRegistration.CRISocket, f.CRISocket)
		setString(&c.ImageRepository, f.ImageRepository)
		setString(&ic.CertificateKey, f.CertificateKey)
		if f.FeatureGates != nil {
			gates, err := ParseFeatureGates(*f.FeatureGates)
			if err != nil {
				return err
			}
			c.FeatureGates = gates
		}
		if f.APIServerCertSANs != nil {
			c.APIServer.CertSANs = slices.Clone(f.APIServerCertSANs)
		}
		setPatches(&ic.Patches, f.Patches)
		if f.Token != nil || f.TokenTTL != nil {
			var t BootstrapToken
			setString(&t.Token, f.Token)
			if f.TokenTTL != nil {
				t.TTL = &metav1.Duration{Duration: *f.TokenTTL}
			}
			ic.BootstrapTokens = []BootstrapToken{t}
		}
	}
	setString(&cfg.Init.NodeRegistration.Name, f.NodeName)
	if f.DryRun != nil {
		cfg.Init.DryRun = *f.DryRun
	}
	if len(f.SkipPhases) > 0 {
		cfg.Init.SkipPhases = slices.Clone(f.SkipPhases)
	}
	cfg.Init.NodeRegistration.IgnorePreflightErrors =
		mergePreflightErrors(cfg.Init.NodeRegistration.IgnorePreflightErrors, f.IgnorePreflightErrors)
	return nil
}

// ApplyJoinFlags overlays the flags the user set on cfg, following kubeadm:
//
//   - Without a configuration file: the endpoint argument enables token discovery (--discovery-token, else
//     --token, plus the CA hashes and the unsafe switch); --discovery-file enables file discovery;
//     --tls-bootstrap-token, else --token, is the TLS bootstrap token; --control-plane adds the controlPlane
//     section with --certificate-key and --apiserver-advertise-address/--apiserver-bind-port. Those three without
//     --control-plane are ignored with a warning, and discovery flags without an endpoint argument are dropped, as
//     in kubeadm (validation then asks for a discovery method).
//   - With --config, only --node-name, --ignore-preflight-errors, --dry-run and --skip-phases may be added; any
//     other flag is an error. An endpoint argument is ignored with a warning, as kubeadm ignores it.
//
// It returns warnings for the caller to print.
func ApplyJoinFlags(cfg *Join, f JoinFlags, withConfigFile bool) ([]string, error) {
	var warnings []string
	jc := &cfg.Join
	if withConfigFile {
		if err := refuseMixing(map[string]bool{
			"--token":                        f.Token != nil,
			"--discovery-token":              f.DiscoveryToken != nil,
			"--discovery-token-ca-cert-hash": f.DiscoveryTokenCACertHashes != nil,
			"--discovery-token-unsafe-skip-ca-verification": f.DiscoveryTokenUnsafeSkipCAVerification != nil,
			"--discovery-file":              f.DiscoveryFile != nil,
			"--tls-bootstrap-token":         f.TLSBootstrapToken != nil,
			"--control-plane":               f.ControlPlane != nil,
			"--certificate-key":             f.CertificateKey != nil,
			"--apiserver-advertise-address": f.APIServerAdvertiseAddress != nil,
			"--apiserver-bind-port":         f.APIServerBindPort != nil,
			"--cri-socket":                  f.CRISocket != nil,
			"--patches":                     f.Patches != nil,
		}); err != nil {
			return nil, err
		}
		if f.APIServerEndpoint != "" {
			warnings = append(warnings, fmt.Sprintf("the API server endpoint argument %q is ignored: "+
				"--config is set, so discovery.bootstrapToken.apiServerEndpoint in the file is used", f.APIServerEndpoint))
		}
	} else {
		token := ""
		setString(&token, f.Token)
		if f.APIServerEndpoint != "" {
			bt := &BootstrapTokenDiscovery{
				APIServerEndpoint:        f.APIServerEndpoint,
				Token:                    token,
				CACertHashes:             slices.Clone(f.DiscoveryTokenCACertHashes),
				UnsafeSkipCAVerification: f.DiscoveryTokenUnsafeSkipCAVerification != nil && *f.DiscoveryTokenUnsafeSkipCAVerification,
			}
			setString(&bt.Token, f.DiscoveryToken)
			jc.Discovery.BootstrapToken = bt
		}
		if f.DiscoveryFile != nil && *f.DiscoveryFile != "" {
			jc.Discovery.File = &FileDiscovery{KubeConfigPath: *f.DiscoveryFile}
		}
		jc.Discovery.TLSBootstrapToken = token
		setString(&jc.Discovery.TLSBootstrapToken, f.TLSBootstrapToken)
		setString(&jc.NodeRegistration.CRISocket, f.CRISocket)
		setPatches(&jc.Patches, f.Patches)

		if f.ControlPlane != nil && *f.ControlPlane {
			cp := &JoinControlPlane{}
			setString(&cp.CertificateKey, f.CertificateKey)
			setString(&cp.LocalAPIEndpoint.AdvertiseAddress, f.APIServerAdvertiseAddress)
			if f.APIServerBindPort != nil {
				cp.LocalAPIEndpoint.BindPort = *f.APIServerBindPort
			}
			jc.ControlPlane = cp
		} else if f.CertificateKey != nil || f.APIServerAdvertiseAddress != nil || f.APIServerBindPort != nil {
			warnings = append(warnings, "--certificate-key, --apiserver-advertise-address and --apiserver-bind-port "+
				"are ignored without --control-plane")
		}
	}
	setString(&jc.NodeRegistration.Name, f.NodeName)
	if f.DryRun != nil {
		jc.DryRun = *f.DryRun
	}
	if len(f.SkipPhases) > 0 {
		jc.SkipPhases = slices.Clone(f.SkipPhases)
	}
	jc.NodeRegistration.IgnorePreflightErrors =
		mergePreflightErrors(jc.NodeRegistration.IgnorePreflightErrors, f.IgnorePreflightErrors)
	return warnings, nil
}

// setPatches points patches.directory at dir (--patches); an empty dir means none.
func setPatches(dst **Patches, dir *string) {
	if dir == nil {
		return
	}
	if *dir == "" {
		*dst = nil
		return
	}
	*dst = &Patches{Directory: *dir}
}

// ParseFeatureGates reads --feature-gates ("Name=true,Other=false") as kubeadm does: names are kubeadm's own
// feature gates (those of kubeboot's default release, as kubeadm v1.37 knows its own), values true or false.
// Validation checks them again against the release of the configured kubernetesVersion.
func ParseFeatureGates(s string) (map[string]bool, error) {
	gates := map[string]bool{}
	for _, kv := range strings.Split(s, ",") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("--feature-gates: missing bool value for feature-gate key:%s (write %s=true or %s=false)", kv, kv, kv)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if known := FeatureGateNames(); !slices.Contains(known, k) {
			return nil, fmt.Errorf("--feature-gates: unrecognized feature-gate key: %s (known: %s)", k, strings.Join(known, ", "))
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("--feature-gates: invalid value %s for feature-gate key: %s, use true|false instead", v, k)
		}
		gates[k] = b
	}
	return gates, nil
}

// FeatureGateNames are the names --feature-gates and ClusterConfiguration.featureGates accept.
func FeatureGateNames() []string { return release.Default().FeatureGateNames() }

func setString(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}

func refuseMixing(set map[string]bool) error {
	var names []string
	for name, isSet := range set {
		if isSet {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	sort.Strings(names)
	return fmt.Errorf("cannot mix --config with %s: set the corresponding fields in the configuration file instead",
		strings.Join(names, ", "))
}

// mergePreflightErrors is kubeadm's union of the file's and the flag's check names; names are case-insensitive.
func mergePreflightErrors(fromFile, fromFlags []string) []string {
	if len(fromFile) == 0 && len(fromFlags) == 0 {
		return fromFile
	}
	var out []string
	for _, s := range append(slices.Clone(fromFile), fromFlags...) {
		out = append(out, strings.ToLower(s))
	}
	sort.Strings(out)
	return slices.Compact(out)
}
