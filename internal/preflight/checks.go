package preflight

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/http/httpproxy"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/version"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/release"
)

// Requirements of a control-plane node, as kubeadm's.
const (
	minControlPlaneCPUs  = 2
	minControlPlaneMemMB = 1700
)

// Time limits of the checks that wait on another program.
const (
	runtimeTimeout = 10 * time.Second
	execTimeout    = 10 * time.Second
)

// pathName turns a node path into the suffix of kubeadm's check names: "/var/lib/etcd" -> "-var-lib-etcd".
func pathName(p string) string { return strings.ReplaceAll(p, "/", "-") }

// privilegedUser requires root: kubeboot writes /etc/kubernetes and talks to the container runtime.
type privilegedUser struct{ env Env }

// IsPrivilegedUser is the check commands run before anything else (reset runs only this one).
func IsPrivilegedUser(env Env) Check { return privilegedUser{env} }

func (privilegedUser) Name() string { return "IsPrivilegedUser" }

func (c privilegedUser) Check(context.Context) (warnings, errs []error) {
	if c.env.Geteuid() != 0 {
		return nil, []error{errors.New("user is not running as root, run kubeboot as root (e.g. with sudo)")}
	}
	return nil, nil
}

type numCPU struct {
	env Env
	min int
}

func (numCPU) Name() string { return "NumCPU" }

func (c numCPU) Check(context.Context) (warnings, errs []error) {
	if n := c.env.NumCPU(); n < c.min {
		return nil, []error{fmt.Errorf("the number of available CPUs %d is less than the required %d, give the machine at least %d CPUs", n, c.min, c.min)}
	}
	return nil, nil
}

type memory struct {
	env   Env
	minMB uint64
}

func (memory) Name() string { return "Mem" }

func (c memory) Check(context.Context) (warnings, errs []error) {
	mb, err := c.env.MemoryMB()
	if err != nil {
		return nil, []error{fmt.Errorf("cannot read the amount of memory: %w, check that the sysinfo system call is allowed", err)}
	}
	if mb < c.minMB {
		return nil, []error{fmt.Errorf("the system RAM (%d MB) is less than the minimum %d MB, give the machine at least %d MB", mb, c.minMB, c.minMB)}
	}
	return nil, nil
}

// port checks that the port is free on every address its component will bind, by binding it: that is the
// only test that agrees with what the component will experience (wildcard vs. specific addresses, v4/v6).
type port struct {
	env   Env
	port  int
	hosts []string // "0.0.0.0" for all addresses
}

func (c port) Name() string { return fmt.Sprintf("Port-%d", c.port) }

func (c port) Check(context.Context) (warnings, errs []error) {
	for _, host := range c.hosts {
		addr := net.JoinHostPort(host, fmt.Sprint(c.port))
		ln, err := c.env.Listen("tcp", addr)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				errs = append(errs, fmt.Errorf("port %d is in use on %s, stop what listens there (ss -ltnp 'sport = :%d') or run 'kubeboot reset' if it is a previous cluster", c.port, host, c.port))
			} else {
				errs = append(errs, fmt.Errorf("cannot listen on %s: %w, check that %s is an address of this machine", addr, err, host))
			}
			continue
		}
		if err := ln.Close(); err != nil {
			warnings = append(warnings, fmt.Errorf("when closing port %d, encountered %w", c.port, err))
		}
	}
	return warnings, errs
}

// dirAvailable requires a directory to be missing or empty.
type dirAvailable struct {
	env  Env
	path string
}

func (c dirAvailable) Name() string { return "DirAvailable-" + pathName(c.path) }

func (c dirAvailable) Check(context.Context) (warnings, errs []error) {
	f, err := os.Open(c.env.FS.Path(c.path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []error{fmt.Errorf("cannot check whether %s is empty: %w, fix its permissions or remove it", c.path, err)}
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, []error{fmt.Errorf("cannot check whether %s is empty: %w, fix its permissions or remove it", c.path, err)}
		}
		return nil, []error{fmt.Errorf("%s is not empty, run 'kubeboot reset' or empty it", c.path)}
	}
	return nil, nil
}

// fileAvailable requires that a file kubeboot is about to write does not exist yet.
type fileAvailable struct {
	env  Env
	path string
}

func (c fileAvailable) Name() string { return "FileAvailable-" + pathName(c.path) }

func (c fileAvailable) Check(context.Context) (warnings, errs []error) {
	if c.env.FS.Exists(c.path) {
		return nil, []error{fmt.Errorf("%s already exists, run 'kubeboot reset' or remove it", c.path)}
	}
	return nil, nil
}

// fileExisting requires a file the user provides (external etcd certificates).
type fileExisting struct {
	env   Env
	path  string
	label string
}

func (c fileExisting) Name() string {
	if c.label != "" {
		return c.label
	}
	return "FileExisting-" + pathName(c.path)
}

func (c fileExisting) Check(context.Context) (warnings, errs []error) {
	if !c.env.FS.Exists(c.path) {
		return nil, []error{fmt.Errorf("%s doesn't exist, create it or fix the path in the configuration", c.path)}
	}
	return nil, nil
}

// forwarding requires a /proc/sys switch to be on; without IP forwarding, Pod traffic leaving the node is dropped.
type forwarding struct {
	env    Env
	path   string // /proc/sys/net/ipv4/ip_forward
	sysctl string // net.ipv4.ip_forward
}

func (c forwarding) Name() string { return "FileContent-" + pathName(c.path) }

func (c forwarding) Check(context.Context) (warnings, errs []error) {
	fix := fmt.Sprintf("enable it with 'sysctl -w %s=1' and persist it in /etc/sysctl.d/", c.sysctl)
	b, err := c.env.FS.ReadFile(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, []error{fmt.Errorf("%s does not exist, %s", c.path, fix)}
	}
	if err != nil {
		return nil, []error{fmt.Errorf("%s could not be read: %w, %s", c.path, err, fix)}
	}
	if !bytes.HasPrefix(b, []byte("1")) {
		return nil, []error{fmt.Errorf("%s contents are not set to 1, %s", c.path, fix)}
	}
	return nil, nil
}

// swap warns when swap is on and the kubelet is configured to refuse to start with swap.
type swap struct {
	env        Env
	failSwapOn bool
}

func (swap) Name() string { return "Swap" }

func (c swap) Check(context.Context) (warnings, errs []error) {
	if !c.failSwapOn {
		return nil, nil
	}
	b, err := c.env.FS.ReadFile("/proc/swaps")
	if err != nil {
		return nil, nil // no /proc/swaps: no swap to worry about
	}
	// The first line is the header; any other line is an active swap device or file.
	lines := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			lines++
		}
	}
	if lines > 1 {
		return []error{errors.New("swap is enabled and the kubelet's failSwapOn is true, so the kubelet will not start, " +
			"disable swap ('swapoff -a' and remove it from /etc/fstab) or set failSwapOn: false in the KubeletConfiguration")}, nil
	}
	return nil, nil
}

// inPath requires (or, when optional, recommends) an executable the kubelet or kube-proxy runs.
type inPath struct {
	env      Env
	exe      string
	pkg      string // Debian package that provides it
	optional bool
}

func (c inPath) Name() string { return "FileExisting-" + pathName(c.exe) }

func (c inPath) Check(context.Context) (warnings, errs []error) {
	if _, err := c.env.LookPath(c.exe); err != nil {
		err := fmt.Errorf("%s not found in system path, install it (Debian/Ubuntu package %s)", c.exe, c.pkg)
		if c.optional {
			return []error{err}, nil
		}
		return nil, []error{err}
	}
	return nil, nil
}

// requiredExecutables are what the kubelet and kube-proxy call on the host; the optional ones only matter
// for some features (port-forward, ebtables-based CNI, traffic shaping).
var requiredExecutables = []inPath{
	{exe: "conntrack", pkg: "conntrack"},
	{exe: "ip", pkg: "iproute2"},
	{exe: "iptables", pkg: "iptables"},
	{exe: "mount", pkg: "mount"},
	{exe: "nsenter", pkg: "util-linux"},
	{exe: "ebtables", pkg: "ebtables", optional: true},
	{exe: "ethtool", pkg: "ethtool", optional: true},
	{exe: "socat", pkg: "socat", optional: true},
	{exe: "tc", pkg: "iproute2", optional: true},
	{exe: "touch", pkg: "coreutils"},
}

// hostname warns when the node name is not a valid Node name or does not resolve: the kubelet registers under
// it and the API server reaches the kubelet through it.
type hostname struct {
	env  Env
	name string
}

func (hostname) Name() string { return "Hostname" }

func (c hostname) Check(ctx context.Context) (warnings, errs []error) {
	for _, msg := range validation.IsDNS1123Subdomain(c.name) {
		warnings = append(warnings, fmt.Errorf("invalid node name format %q: %s, set nodeRegistration.name (--node-name) to a valid name", c.name, msg))
	}
	addrs, err := c.env.LookupHost(ctx, c.name)
	if err != nil || len(addrs) == 0 {
		reason := "no addresses"
		if err != nil {
			reason = err.Error()
		}
		warnings = append(warnings, fmt.Errorf("hostname %q could not be reached (%s), add it to /etc/hosts or DNS", c.name, reason))
	}
	return warnings, nil
}

var kubeletVersionOutput = regexp.MustCompile(`^\s*Kubernetes (v\d+\.\d+\.\d+\S*)\s*$`)

// kubeletVersion checks the installed kubelet against kubeboot's supported range and the control plane's version:
// a kubelet may be older than the control plane (within the skew kubeboot supports) but never newer.
type kubeletVersion struct {
	env          Env
	controlPlane string // "" on join: the cluster's version is not known yet
}

func (kubeletVersion) Name() string { return "KubeletVersion" }

// minKubeletVersion is kubeadm v1.37's MinimumKubeletVersion: three minors below the newest release kubeboot
// deploys, whatever the control plane's own version.
func minKubeletVersion() *version.Version {
	return version.MajorMinor(1, uint(release.Default().MinKubeletMinor))
}

// installedKubelet runs `kubelet --version` and parses what it prints, once for all the checks that share env's
// probe (see Env.shareKubelet).
func installedKubelet(ctx context.Context, env Env) (*version.Version, error) {
	if p := env.kubelet; p != nil {
		p.once.Do(func() { p.version, p.err = runKubeletVersion(ctx, env) })
		return p.version, p.err
	}
	return runKubeletVersion(ctx, env)
}

func runKubeletVersion(ctx context.Context, env Env) (*version.Version, error) {
	ctx, cancel := context.WithTimeout(ctx, execTimeout)
	defer cancel()
	out, err := env.Output(ctx, "kubelet", "--version")
	if err != nil {
		return nil, fmt.Errorf("cannot execute 'kubelet --version': %w, install the kubelet and make sure it is on PATH", err)
	}
	m := kubeletVersionOutput.FindStringSubmatch(string(out))
	var kubelet *version.Version
	if m != nil {
		kubelet, err = version.ParseSemantic(m[1])
	}
	if m == nil || err != nil {
		return nil, fmt.Errorf("cannot parse the output of 'kubelet --version': %q, install a released kubelet", strings.TrimSpace(string(out)))
	}
	return kubelet, nil
}

func (c kubeletVersion) Check(ctx context.Context) (warnings, errs []error) {
	kubelet, err := installedKubelet(ctx, c.env)
	if err != nil {
		return nil, []error{err}
	}
	if min := minKubeletVersion(); kubelet.LessThan(min) {
		return nil, []error{fmt.Errorf("Kubelet version %q is lower than kubeboot can support (v%s). Please upgrade kubelet", kubelet, min)}
	}
	if c.controlPlane == "" {
		return nil, nil
	}
	cp, err := version.ParseSemantic(c.controlPlane)
	if err != nil {
		return nil, []error{fmt.Errorf("cannot parse the Kubernetes version %q: %w, set kubernetesVersion to a version like %s", c.controlPlane, err, release.DefaultVersion())}
	}
	if kubelet.Major() > cp.Major() || (kubelet.Major() == cp.Major() && kubelet.Minor() > cp.Minor()) {
		return nil, []error{fmt.Errorf("the kubelet version is higher than the control plane version. This is not a supported version skew and may lead to a malfunctional cluster. Kubelet version: %q Control plane version: %q (install a kubelet of v%d.%d or older)",
			kubelet, cp, cp.Major(), cp.Minor())}
	}
	return nil, nil
}

// cgroupV2Controllers exists only where the unified cgroup v2 hierarchy is mounted at /sys/fs/cgroup.
const cgroupV2Controllers = "/sys/fs/cgroup/cgroup.controllers"

// cgroups is the cgroup part of kubeadm's SystemVerification: from kubelet 1.35 on, cgroup v1 is an error,
// because the kubelet refuses to start there unless its KubeletConfiguration sets failCgroupV1: false. Ignoring the
// check is enough for kubeadm; kubeboot also requires failCgroupV1: false when it knows the KubeletConfiguration
// (init), since a kubelet that refuses to start only fails the init minutes later.
type cgroups struct {
	env     Env
	kubelet *kubeletv1beta1.KubeletConfiguration // nil on join: the cluster's configuration is not known yet
}

func (cgroups) Name() string { return "SystemVerification" }

func (c cgroups) Check(ctx context.Context) (warnings, errs []error) {
	if c.env.FS.Exists(cgroupV2Controllers) {
		return nil, nil
	}
	kubelet, err := installedKubelet(ctx, c.env)
	if err != nil {
		return nil, nil // KubeletVersion reports it
	}
	if kubelet.Minor() < release.CgroupV1FatalKubeletMinor {
		return []error{fmt.Errorf("the machine runs cgroup v1, which kubelet %s still supports but later kubelets refuse; move to cgroup v2", kubelet)}, nil
	}
	optedOut := c.kubelet != nil && c.kubelet.FailCgroupV1 != nil && !*c.kubelet.FailCgroupV1
	msg := fmt.Sprintf("the machine runs cgroup v1 and kubelet %s (1.%d and newer) only starts there when its KubeletConfiguration sets failCgroupV1: false",
		kubelet, release.CgroupV1FatalKubeletMinor)
	if c.kubelet != nil && !optedOut {
		return nil, []error{MustFix(fmt.Errorf("%s, and this configuration does not: move the machine to cgroup v2, or set failCgroupV1: false in the KubeletConfiguration document and ignore SystemVerification", msg))}
	}
	return nil, []error{fmt.Errorf("%s: move the machine to cgroup v2, or keep cgroup v1 by ignoring SystemVerification (--ignore-preflight-errors=SystemVerification) with failCgroupV1: false in the cluster's KubeletConfiguration", msg)}
}

// serviceKubelet warns when systemd runs the machine and the kubelet unit is not enabled: the kubelet would not
// come back after a reboot. Without systemd whatever supervises the kubelet is the user's business.
type serviceKubelet struct{ env Env }

func (serviceKubelet) Name() string { return "Service-Kubelet" }

// enabledUnitStates are the `systemctl is-enabled` answers that mean the unit starts at boot.
var enabledUnitStates = map[string]bool{
	"enabled": true, "enabled-runtime": true, "static": true, "alias": true, "indirect": true, "generated": true,
}

func (c serviceKubelet) Check(ctx context.Context) (warnings, errs []error) {
	// /run/systemd/system exists exactly when systemd is the init system (sd_booted(3)).
	if !c.env.FS.Exists("/run/systemd/system") {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, execTimeout)
	defer cancel()
	// is-enabled exits non-zero for disabled units: its answer is on stdout either way.
	out, _ := c.env.Output(ctx, "systemctl", "is-enabled", "kubelet.service")
	state := strings.TrimSpace(string(out))
	switch {
	case enabledUnitStates[state]:
		return nil, nil
	case state == "" || state == "not-found":
		return []error{errors.New("kubelet service does not exist, install the kubelet package")}, nil
	}
	return []error{fmt.Errorf("kubelet service is not enabled (%s), please run 'systemctl enable kubelet.service'", state)}, nil
}

// runtimeReady requires the container runtime to answer on its socket and report RuntimeReady.
type runtimeReady struct {
	env    Env
	socket string
}

func (runtimeReady) Name() string { return "CRI" }

func (c runtimeReady) Check(ctx context.Context) (warnings, errs []error) {
	ctx, cancel := context.WithTimeout(ctx, runtimeTimeout)
	defer cancel()
	rt, err := c.env.DialRuntime(ctx, c.socket)
	if err != nil {
		return nil, []error{err}
	}
	defer rt.Close()
	st, err := rt.Status(ctx)
	if err != nil {
		return nil, []error{fmt.Errorf("container runtime is not running: %w, check the container runtime's logs", err)}
	}
	if !st.RuntimeReady {
		return nil, []error{fmt.Errorf("container runtime condition %q is not true (reason: %s, message: %s), check the container runtime's logs",
			"RuntimeReady", st.Reason, st.Message)}
	}
	return nil, nil
}

// runtimeVersion requires CRI v1 and warns when the runtime cannot report its cgroup driver (containerd < 2.0):
// the kubelet then falls back to its own cgroupDriver setting, which must match the runtime's.
type runtimeVersion struct {
	env    Env
	socket string
}

func (runtimeVersion) Name() string { return "ContainerRuntimeVersion" }

func (c runtimeVersion) Check(ctx context.Context) (warnings, errs []error) {
	ctx, cancel := context.WithTimeout(ctx, runtimeTimeout)
	defer cancel()
	rt, err := c.env.DialRuntime(ctx, c.socket)
	if err != nil {
		return nil, nil // the CRI check reports an unreachable runtime; once is enough
	}
	defer rt.Close()
	v, err := rt.Version(ctx)
	if err != nil {
		return nil, []error{fmt.Errorf("container runtime does not answer the CRI v1 Version call: %w, use a runtime that serves CRI v1 (e.g. containerd 1.6 or newer)", err)}
	}
	if v.RuntimeAPIVersion != "v1" {
		return nil, []error{fmt.Errorf("container runtime %s %s serves CRI %q, use a runtime that serves CRI v1 (e.g. containerd 2.0 or newer)", v.RuntimeName, v.RuntimeVersion, v.RuntimeAPIVersion)}
	}
	if v.RuntimeName == "containerd" {
		if cv, err := version.ParseGeneric(strings.TrimPrefix(v.RuntimeVersion, "v")); err == nil && cv.Major() < 2 {
			if kubelet, err := installedKubelet(ctx, c.env); err == nil && kubelet.Minor() >= release.Containerd2KubeletMinor {
				return nil, []error{fmt.Errorf("containerd %s is not supported by kubelet %s: kubelets 1.%d and newer need containerd 2.0 or newer, upgrade containerd",
					v.RuntimeVersion, kubelet, release.Containerd2KubeletMinor)}
			}
		}
	}
	if _, err := rt.RuntimeConfig(ctx); err != nil {
		if errors.Is(err, cri.ErrUnimplemented) {
			return []error{fmt.Errorf("%s %s does not implement the CRI RuntimeConfig call, so the kubelet uses the cgroupDriver of its own configuration, make sure it matches the runtime's (or upgrade to a runtime that implements RuntimeConfig, e.g. containerd 2.0)", v.RuntimeName, v.RuntimeVersion)}, nil
		}
		return []error{fmt.Errorf("cannot read the container runtime's configuration: %w, make sure the kubelet's cgroupDriver matches the runtime's", err)}, nil
	}
	return nil, nil
}

// imagesPresent requires every image to be in the runtime when the pull policy forbids pulling.
type imagesPresent struct {
	env     Env
	socket  string
	policy  corev1.PullPolicy
	cluster config.ClusterConfiguration
}

func (imagesPresent) Name() string { return "ImagePull" }

func (c imagesPresent) Check(ctx context.Context) (warnings, errs []error) {
	if c.policy != corev1.PullNever {
		return nil, nil
	}
	images, err := c.cluster.Images()
	if err != nil {
		return nil, []error{err}
	}
	ctx, cancel := context.WithTimeout(ctx, runtimeTimeout)
	defer cancel()
	rt, err := c.env.DialRuntime(ctx, c.socket)
	if err != nil {
		return nil, []error{fmt.Errorf("cannot check the images: %w", err)}
	}
	defer rt.Close()
	for _, ref := range images {
		img, err := rt.ImageStatus(ctx, ref)
		if err != nil {
			errs = append(errs, fmt.Errorf("cannot check image %s: %w, check the container runtime's logs", ref, err))
			continue
		}
		if !img.Present {
			errs = append(errs, fmt.Errorf("image %s is not present in the container runtime and imagePullPolicy is Never, import it (ctr -n k8s.io images import FILE.tar) or set nodeRegistration.imagePullPolicy to IfNotPresent", ref))
		}
	}
	return nil, errs
}

// proxyFor returns the proxy kubeboot's environment selects for u, the way Go's HTTP transport does.
func proxyFor(env Env, u *url.URL) (*url.URL, error) {
	get := func(keys ...string) string {
		for _, k := range keys {
			if v := env.Getenv(k); v != "" {
				return v
			}
		}
		return ""
	}
	cfg := httpproxy.Config{
		HTTPProxy:  get("HTTP_PROXY", "http_proxy"),
		HTTPSProxy: get("HTTPS_PROXY", "https_proxy"),
		NoProxy:    get("NO_PROXY", "no_proxy"),
		CGI:        env.Getenv("REQUEST_METHOD") != "",
	}
	return cfg.ProxyFunc()(u)
}

// httpProxy warns when talking to the API server would go through an HTTP proxy.
type httpProxy struct {
	env  Env
	host string
}

func (httpProxy) Name() string { return "HTTPProxy" }

func (c httpProxy) Check(context.Context) (warnings, errs []error) {
	u := &url.URL{Scheme: "https", Host: c.host}
	if ip, err := netip.ParseAddr(c.host); err == nil && ip.Is6() {
		u.Host = net.JoinHostPort(c.host, "1234")
	}
	proxy, err := proxyFor(c.env, u)
	if err != nil {
		return []error{fmt.Errorf("cannot read the proxy settings: %w, fix HTTPS_PROXY/NO_PROXY", err)}, nil
	}
	if proxy != nil {
		return []error{fmt.Errorf("connection to %q uses proxy %q, add %s to NO_PROXY if that is not intended", u, proxy, c.host)}, nil
	}
	return nil, nil
}

// httpProxyCIDR warns when the API server's traffic to Pods or Services would go through an HTTP proxy.
type httpProxyCIDR struct {
	env  Env
	cidr string
}

func (httpProxyCIDR) Name() string { return "HTTPProxyCIDR" }

func (c httpProxyCIDR) Check(context.Context) (warnings, errs []error) {
	prefix, err := netip.ParsePrefix(c.cidr)
	if err != nil {
		return nil, []error{fmt.Errorf("cannot parse CIDR %q: %w, fix networking.serviceSubnet / networking.podSubnet", c.cidr, err)}
	}
	// The first address after the network address, as a stand-in for every address of the range.
	probe := prefix.Masked().Addr().Next()
	u := &url.URL{Scheme: "https", Host: net.JoinHostPort(probe.String(), "1234"), Path: "/"}
	proxy, err := proxyFor(c.env, u)
	if err != nil {
		return []error{fmt.Errorf("cannot read the proxy settings: %w, fix HTTPS_PROXY/NO_PROXY", err)}, nil
	}
	if proxy != nil {
		return []error{fmt.Errorf("connection to %q uses proxy %q, add %s to NO_PROXY so that Pod and Service addresses are reached directly", c.cidr, proxy, c.cidr)}, nil
	}
	return nil, nil
}
