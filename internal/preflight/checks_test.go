package preflight

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"k8s.io/utils/ptr"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/cri"
)

const sock = "unix:///run/containerd/containerd.sock"

func TestChecks(t *testing.T) {
	swapOn := "Filename\tType\tSize\tUsed\tPriority\n/swapfile\tfile\t1048572\t0\t-2\n"
	cluster := config.ClusterConfiguration{KubernetesVersion: "v1.37.2", ImageRepository: config.DefaultImageRepository,
		Etcd: config.Etcd{Local: &config.LocalEtcd{}}, DNS: config.DNS{Disabled: true}, Proxy: config.Proxy{Disabled: true}}
	images := []string{"registry.k8s.io/kube-apiserver:v1.37.2", "registry.k8s.io/kube-controller-manager:v1.37.2",
		"registry.k8s.io/kube-scheduler:v1.37.2", "registry.k8s.io/pause:3.10.2", "registry.k8s.io/etcd:3.7.0-0"}

	tests := []struct {
		name         string
		setup        func(t *testing.T, m *fakeMachine)
		check        func(env Env) Check
		wantName     string
		wantWarnings []string
		wantErrs     []string
		verify       func(t *testing.T, m *fakeMachine)
	}{
		// IsPrivilegedUser
		{
			name:     "root",
			check:    IsPrivilegedUser,
			wantName: "IsPrivilegedUser",
		},
		{
			name:     "not root",
			setup:    func(_ *testing.T, m *fakeMachine) { m.uid = 1000 },
			check:    IsPrivilegedUser,
			wantName: "IsPrivilegedUser",
			wantErrs: []string{"user is not running as root, run kubeboot as root (e.g. with sudo)"},
		},

		// NumCPU, Mem
		{
			name:     "two CPUs",
			check:    func(env Env) Check { return numCPU{env: env, min: 2} },
			wantName: "NumCPU",
		},
		{
			name:     "one CPU",
			setup:    func(_ *testing.T, m *fakeMachine) { m.cpus = 1 },
			check:    func(env Env) Check { return numCPU{env: env, min: 2} },
			wantName: "NumCPU",
			wantErrs: []string{"the number of available CPUs 1 is less than the required 2, give the machine at least 2 CPUs"},
		},
		{
			name:     "exactly enough memory",
			setup:    func(_ *testing.T, m *fakeMachine) { m.memMB = 1700 },
			check:    func(env Env) Check { return memory{env: env, minMB: 1700} },
			wantName: "Mem",
		},
		{
			name:     "too little memory",
			setup:    func(_ *testing.T, m *fakeMachine) { m.memMB = 1024 },
			check:    func(env Env) Check { return memory{env: env, minMB: 1700} },
			wantName: "Mem",
			wantErrs: []string{"the system RAM (1024 MB) is less than the minimum 1700 MB, give the machine at least 1700 MB"},
		},
		{
			name:     "memory unknown",
			setup:    func(_ *testing.T, m *fakeMachine) { m.memErr = errors.New("sysinfo: operation not permitted") },
			check:    func(env Env) Check { return memory{env: env, minMB: 1700} },
			wantName: "Mem",
			wantErrs: []string{"cannot read the amount of memory: sysinfo: operation not permitted, check that the sysinfo system call is allowed"},
		},

		// Port-<n>
		{
			name:     "port free on every address",
			check:    func(env Env) Check { return port{env: env, port: 2379, hosts: []string{"127.0.0.1", "10.0.0.10"}} },
			wantName: "Port-2379",
			verify: func(t *testing.T, m *fakeMachine) {
				if want := []string{"127.0.0.1:2379", "10.0.0.10:2379"}; !reflect.DeepEqual(m.listened, want) {
					t.Errorf("listened on %v, want %v", m.listened, want)
				}
			},
		},
		{
			name:     "port in use",
			setup:    func(_ *testing.T, m *fakeMachine) { m.busy["0.0.0.0:6443"] = errInUse },
			check:    func(env Env) Check { return port{env: env, port: 6443, hosts: []string{"0.0.0.0"}} },
			wantName: "Port-6443",
			wantErrs: []string{"port 6443 is in use on 0.0.0.0, stop what listens there (ss -ltnp 'sport = :6443') or run 'kubeboot reset' if it is a previous cluster"},
		},
		{
			name:     "IPv6 advertise address in use",
			setup:    func(_ *testing.T, m *fakeMachine) { m.busy["[fd00::10]:2380"] = errInUse },
			check:    func(env Env) Check { return port{env: env, port: 2380, hosts: []string{"fd00::10"}} },
			wantName: "Port-2380",
			wantErrs: []string{"port 2380 is in use on fd00::10, stop what listens there (ss -ltnp 'sport = :2380') or run 'kubeboot reset' if it is a previous cluster"},
		},
		{
			name:     "advertise address not on this machine",
			setup:    func(_ *testing.T, m *fakeMachine) { m.busy["10.9.9.9:2380"] = errCannotAssig },
			check:    func(env Env) Check { return port{env: env, port: 2380, hosts: []string{"10.9.9.9"}} },
			wantName: "Port-2380",
			wantErrs: []string{"cannot listen on 10.9.9.9:2380: listen tcp: bind: cannot assign requested address, check that 10.9.9.9 is an address of this machine"},
		},

		// DirAvailable
		{
			name:     "dir missing",
			check:    func(env Env) Check { return dirAvailable{env: env, path: "/var/lib/etcd"} },
			wantName: "DirAvailable--var-lib-etcd",
		},
		{
			name:     "dir empty",
			setup:    func(t *testing.T, m *fakeMachine) { m.mkdir(t, "/etc/kubernetes/manifests") },
			check:    func(env Env) Check { return dirAvailable{env: env, path: "/etc/kubernetes/manifests"} },
			wantName: "DirAvailable--etc-kubernetes-manifests",
		},
		{
			name:     "dir not empty",
			setup:    func(t *testing.T, m *fakeMachine) { m.write(t, "/var/lib/etcd/member/snap/db", "x") },
			check:    func(env Env) Check { return dirAvailable{env: env, path: "/var/lib/etcd"} },
			wantName: "DirAvailable--var-lib-etcd",
			wantErrs: []string{"/var/lib/etcd is not empty, run 'kubeboot reset' or empty it"},
		},

		// FileAvailable
		{
			name:     "file absent",
			check:    func(env Env) Check { return fileAvailable{env: env, path: "/etc/kubernetes/kubelet.conf"} },
			wantName: "FileAvailable--etc-kubernetes-kubelet.conf",
		},
		{
			name:  "file present",
			setup: func(t *testing.T, m *fakeMachine) { m.write(t, "/etc/kubernetes/manifests/kube-apiserver.yaml", "x") },
			check: func(env Env) Check {
				return fileAvailable{env: env, path: "/etc/kubernetes/manifests/kube-apiserver.yaml"}
			},
			wantName: "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
			wantErrs: []string{"/etc/kubernetes/manifests/kube-apiserver.yaml already exists, run 'kubeboot reset' or remove it"},
		},

		// FileExisting (external etcd certificates)
		{
			name: "external etcd CA missing",
			check: func(env Env) Check {
				return fileExisting{env: env, path: "/etc/etcd/ca.crt", label: "ExternalEtcdClientCertificates"}
			},
			wantName: "ExternalEtcdClientCertificates",
			wantErrs: []string{"/etc/etcd/ca.crt doesn't exist, create it or fix the path in the configuration"},
		},

		// FileContent--proc-sys-net-ipv4-ip_forward
		{
			name: "ip_forward on",
			check: func(env Env) Check {
				return forwarding{env: env, path: "/proc/sys/net/ipv4/ip_forward", sysctl: "net.ipv4.ip_forward"}
			},
			wantName: "FileContent--proc-sys-net-ipv4-ip_forward",
		},
		{
			name:  "ip_forward off",
			setup: func(t *testing.T, m *fakeMachine) { m.write(t, "/proc/sys/net/ipv4/ip_forward", "0\n") },
			check: func(env Env) Check {
				return forwarding{env: env, path: "/proc/sys/net/ipv4/ip_forward", sysctl: "net.ipv4.ip_forward"}
			},
			wantName: "FileContent--proc-sys-net-ipv4-ip_forward",
			wantErrs: []string{"/proc/sys/net/ipv4/ip_forward contents are not set to 1, enable it with 'sysctl -w net.ipv4.ip_forward=1' and persist it in /etc/sysctl.d/"},
		},
		{
			name:  "ipv6 forwarding file missing",
			setup: func(t *testing.T, m *fakeMachine) { m.fs().Remove("/proc/sys/net/ipv6/conf/default/forwarding") },
			check: func(env Env) Check {
				return forwarding{env: env, path: "/proc/sys/net/ipv6/conf/default/forwarding", sysctl: "net.ipv6.conf.default.forwarding"}
			},
			wantName: "FileContent--proc-sys-net-ipv6-conf-default-forwarding",
			wantErrs: []string{"/proc/sys/net/ipv6/conf/default/forwarding does not exist, enable it with 'sysctl -w net.ipv6.conf.default.forwarding=1' and persist it in /etc/sysctl.d/"},
		},

		// Swap
		{
			name:     "no swap",
			check:    func(env Env) Check { return swap{env: env, failSwapOn: true} },
			wantName: "Swap",
		},
		{
			name:     "swap on, kubelet fails on swap",
			setup:    func(t *testing.T, m *fakeMachine) { m.write(t, "/proc/swaps", swapOn) },
			check:    func(env Env) Check { return swap{env: env, failSwapOn: true} },
			wantName: "Swap",
			wantWarnings: []string{"swap is enabled and the kubelet's failSwapOn is true, so the kubelet will not start, " +
				"disable swap ('swapoff -a' and remove it from /etc/fstab) or set failSwapOn: false in the KubeletConfiguration"},
		},
		{
			name:     "swap on, kubelet tolerates swap",
			setup:    func(t *testing.T, m *fakeMachine) { m.write(t, "/proc/swaps", swapOn) },
			check:    func(env Env) Check { return swap{env: env, failSwapOn: false} },
			wantName: "Swap",
		},
		{
			name:     "no /proc/swaps",
			setup:    func(t *testing.T, m *fakeMachine) { m.fs().Remove("/proc/swaps") },
			check:    func(env Env) Check { return swap{env: env, failSwapOn: true} },
			wantName: "Swap",
		},

		// FileExisting-<binary>
		{
			name:     "conntrack present",
			check:    func(env Env) Check { return inPath{env: env, exe: "conntrack", pkg: "conntrack"} },
			wantName: "FileExisting-conntrack",
		},
		{
			name:     "conntrack missing",
			setup:    func(_ *testing.T, m *fakeMachine) { m.missing["conntrack"] = true },
			check:    func(env Env) Check { return inPath{env: env, exe: "conntrack", pkg: "conntrack"} },
			wantName: "FileExisting-conntrack",
			wantErrs: []string{"conntrack not found in system path, install it (Debian/Ubuntu package conntrack)"},
		},
		{
			name:         "socat missing is a warning",
			setup:        func(_ *testing.T, m *fakeMachine) { m.missing["socat"] = true },
			check:        func(env Env) Check { return inPath{env: env, exe: "socat", pkg: "socat", optional: true} },
			wantName:     "FileExisting-socat",
			wantWarnings: []string{"socat not found in system path, install it (Debian/Ubuntu package socat)"},
		},

		// Hostname
		{
			name:     "hostname valid and resolvable",
			check:    func(env Env) Check { return hostname{env: env, name: "node1"} },
			wantName: "Hostname",
		},
		{
			name:     "hostname unresolvable",
			check:    func(env Env) Check { return hostname{env: env, name: "node2"} },
			wantName: "Hostname",
			wantWarnings: []string{
				`hostname "node2" could not be reached (lookup node2: no such host), add it to /etc/hosts or DNS`,
			},
		},
		{
			name:     "hostname invalid",
			setup:    func(_ *testing.T, m *fakeMachine) { m.hosts["Node_1"] = []string{"10.0.0.11"} },
			check:    func(env Env) Check { return hostname{env: env, name: "Node_1"} },
			wantName: "Hostname",
			wantWarnings: []string{
				`invalid node name format "Node_1": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*'), set nodeRegistration.name (--node-name) to a valid name`,
			},
		},

		// KubeletVersion
		{
			name:     "kubelet same version as control plane",
			check:    func(env Env) Check { return kubeletVersion{env: env, controlPlane: "v1.37.2"} },
			wantName: "KubeletVersion",
			verify: func(t *testing.T, m *fakeMachine) {
				if want := []string{"kubelet --version"}; !reflect.DeepEqual(m.ran, want) {
					t.Errorf("ran %v, want %v", m.ran, want)
				}
			},
		},
		{
			name: "kubelet three minors older",
			setup: func(_ *testing.T, m *fakeMachine) {
				m.outputs["kubelet --version"] = fakeOutput{out: "Kubernetes v1.34.0\n"}
			},
			check:    func(env Env) Check { return kubeletVersion{env: env, controlPlane: "v1.37.2"} },
			wantName: "KubeletVersion",
		},
		{
			name: "kubelet newer than control plane",
			setup: func(_ *testing.T, m *fakeMachine) {
				m.outputs["kubelet --version"] = fakeOutput{out: "Kubernetes v1.37.0\n"}
			},
			check:    func(env Env) Check { return kubeletVersion{env: env, controlPlane: "v1.36.3"} },
			wantName: "KubeletVersion",
			wantErrs: []string{`the kubelet version is higher than the control plane version. This is not a supported version skew and may lead to a malfunctional cluster. Kubelet version: "1.37.0" Control plane version: "1.36.3" (install a kubelet of v1.36 or older)`},
		},
		{
			name: "kubelet too old",
			setup: func(_ *testing.T, m *fakeMachine) {
				m.outputs["kubelet --version"] = fakeOutput{out: "Kubernetes v1.33.14\n"}
			},
			check:    func(env Env) Check { return kubeletVersion{env: env, controlPlane: "v1.37.2"} },
			wantName: "KubeletVersion",
			wantErrs: []string{`Kubelet version "1.33.14" is lower than kubeboot can support (v1.34). Please upgrade kubelet`},
		},
		{
			name: "join: newer kubelet not compared with an unknown control plane",
			setup: func(_ *testing.T, m *fakeMachine) {
				m.outputs["kubelet --version"] = fakeOutput{out: "Kubernetes v1.38.1\n"}
			},
			check:    func(env Env) Check { return kubeletVersion{env: env} },
			wantName: "KubeletVersion",
		},
		{
			name:     "kubelet not installed",
			setup:    func(_ *testing.T, m *fakeMachine) { delete(m.outputs, "kubelet --version") },
			check:    func(env Env) Check { return kubeletVersion{env: env, controlPlane: "v1.37.2"} },
			wantName: "KubeletVersion",
			wantErrs: []string{`cannot execute 'kubelet --version': exec: "kubelet": executable file not found in $PATH, install the kubelet and make sure it is on PATH`},
		},
		{
			name: "kubelet prints garbage",
			setup: func(_ *testing.T, m *fakeMachine) {
				m.outputs["kubelet --version"] = fakeOutput{out: "Kubernetes v0.0.0-master+$Format:%H$\n"}
			},
			check:    func(env Env) Check { return kubeletVersion{env: env, controlPlane: "v1.37.2"} },
			wantName: "KubeletVersion",
			wantErrs: []string{`cannot parse the output of 'kubelet --version': "Kubernetes v0.0.0-master+$Format:%H$", install a released kubelet`},
		},

		// Service-Kubelet
		{
			name:     "no systemd: skipped",
			check:    func(env Env) Check { return serviceKubelet{env: env} },
			wantName: "Service-Kubelet",
			verify: func(t *testing.T, m *fakeMachine) {
				if len(m.ran) != 0 {
					t.Errorf("ran %v without systemd, want nothing", m.ran)
				}
			},
		},
		{
			name: "systemd, kubelet enabled",
			setup: func(t *testing.T, m *fakeMachine) {
				m.mkdir(t, "/run/systemd/system")
				m.outputs["systemctl is-enabled kubelet.service"] = fakeOutput{out: "enabled\n"}
			},
			check:    func(env Env) Check { return serviceKubelet{env: env} },
			wantName: "Service-Kubelet",
		},
		{
			name: "systemd, kubelet disabled",
			setup: func(t *testing.T, m *fakeMachine) {
				m.mkdir(t, "/run/systemd/system")
				m.outputs["systemctl is-enabled kubelet.service"] = fakeOutput{out: "disabled\n", err: errors.New("exit status 1")}
			},
			check:        func(env Env) Check { return serviceKubelet{env: env} },
			wantName:     "Service-Kubelet",
			wantWarnings: []string{"kubelet service is not enabled (disabled), please run 'systemctl enable kubelet.service'"},
		},
		{
			name: "systemd, no kubelet unit",
			setup: func(t *testing.T, m *fakeMachine) {
				m.mkdir(t, "/run/systemd/system")
				m.outputs["systemctl is-enabled kubelet.service"] = fakeOutput{err: errors.New("exit status 1")}
			},
			check:        func(env Env) Check { return serviceKubelet{env: env} },
			wantName:     "Service-Kubelet",
			wantWarnings: []string{"kubelet service does not exist, install the kubelet package"},
		},

		// CRI
		{
			name:     "runtime ready",
			check:    func(env Env) Check { return runtimeReady{env: env, socket: sock} },
			wantName: "CRI",
			verify: func(t *testing.T, m *fakeMachine) {
				if m.runtime.socket != sock || m.runtime.closed != 1 {
					t.Errorf("dialled %q, closed %d times; want %q, once", m.runtime.socket, m.runtime.closed, sock)
				}
			},
		},
		{
			name: "runtime unreachable",
			setup: func(_ *testing.T, m *fakeMachine) {
				m.dialErr = errors.New("container runtime not reachable at " + sock + ": is containerd running? (dial unix /run/containerd/containerd.sock: connect: no such file or directory)")
			},
			check:    func(env Env) Check { return runtimeReady{env: env, socket: sock} },
			wantName: "CRI",
			wantErrs: []string{"container runtime not reachable at " + sock + ": is containerd running? (dial unix /run/containerd/containerd.sock: connect: no such file or directory)"},
		},
		{
			name: "runtime status fails",
			setup: func(_ *testing.T, m *fakeMachine) {
				m.runtime.statusErr = errors.New("CRI Status at x: rpc error: code = Unavailable")
			},
			check:    func(env Env) Check { return runtimeReady{env: env, socket: sock} },
			wantName: "CRI",
			wantErrs: []string{"container runtime is not running: CRI Status at x: rpc error: code = Unavailable, check the container runtime's logs"},
		},
		{
			name: "runtime not ready",
			setup: func(_ *testing.T, m *fakeMachine) {
				m.runtime.status = cri.Status{RuntimeReady: false, Reason: "InitFailed", Message: "cri plugin not initialized"}
			},
			check:    func(env Env) Check { return runtimeReady{env: env, socket: sock} },
			wantName: "CRI",
			wantErrs: []string{`container runtime condition "RuntimeReady" is not true (reason: InitFailed, message: cri plugin not initialized), check the container runtime's logs`},
		},

		// ContainerRuntimeVersion
		{
			name:     "containerd 2 implements RuntimeConfig",
			check:    func(env Env) Check { return runtimeVersion{env: env, socket: sock} },
			wantName: "ContainerRuntimeVersion",
		},
		{
			name: "containerd 1.6 with kubelet 1.37 is refused",
			setup: func(_ *testing.T, m *fakeMachine) {
				m.runtime.version = cri.Version{RuntimeName: "containerd", RuntimeVersion: "1.6.20~ds1", RuntimeAPIVersion: "v1"}
				m.runtime.configErr = fmt.Errorf("CRI RuntimeConfig at x: %w", cri.ErrUnimplemented)
			},
			check:    func(env Env) Check { return runtimeVersion{env: env, socket: sock} },
			wantName: "ContainerRuntimeVersion",
			wantErrs: []string{"containerd 1.6.20~ds1 is not supported by kubelet 1.37.2: kubelets 1.36 and newer need containerd 2.0 or newer, upgrade containerd"},
		},
		{
			name: "containerd 1.7 with kubelet 1.35: only the RuntimeConfig warning",
			setup: func(_ *testing.T, m *fakeMachine) {
				m.outputs["kubelet --version"] = fakeOutput{out: "Kubernetes v1.35.4\n"}
				m.runtime.version = cri.Version{RuntimeName: "containerd", RuntimeVersion: "v1.7.28", RuntimeAPIVersion: "v1"}
				m.runtime.configErr = fmt.Errorf("CRI RuntimeConfig at x: %w", cri.ErrUnimplemented)
			},
			check:    func(env Env) Check { return runtimeVersion{env: env, socket: sock} },
			wantName: "ContainerRuntimeVersion",
			wantWarnings: []string{"containerd v1.7.28 does not implement the CRI RuntimeConfig call, so the kubelet uses the cgroupDriver of its own configuration, " +
				"make sure it matches the runtime's (or upgrade to a runtime that implements RuntimeConfig, e.g. containerd 2.0)"},
		},

		// SystemVerification (cgroups)
		{
			name:     "cgroup v2",
			check:    func(env Env) Check { return cgroups{env: env, kubelet: &kubeletv1beta1.KubeletConfiguration{}} },
			wantName: "SystemVerification",
		},
		{
			name:     "cgroup v1 with kubelet 1.37 and failCgroupV1 unset: not ignorable",
			setup:    func(t *testing.T, m *fakeMachine) { m.remove(t, "/sys/fs/cgroup/cgroup.controllers") },
			check:    func(env Env) Check { return cgroups{env: env, kubelet: &kubeletv1beta1.KubeletConfiguration{}} },
			wantName: "SystemVerification",
			wantErrs: []string{"the machine runs cgroup v1 and kubelet 1.37.2 (1.35 and newer) only starts there when its KubeletConfiguration sets failCgroupV1: false, " +
				"and this configuration does not: move the machine to cgroup v2, or set failCgroupV1: false in the KubeletConfiguration document and ignore SystemVerification"},
			verify: func(t *testing.T, m *fakeMachine) {
				err := Run(t.Context(), []Check{cgroups{env: m.Env(), kubelet: &kubeletv1beta1.KubeletConfiguration{}}}, []string{"SystemVerification"}, io.Discard)
				if err == nil {
					t.Error("ignoring SystemVerification let a kubelet through that would refuse to start")
				}
			},
		},
		{
			name:  "cgroup v1 with failCgroupV1: false is an ordinary, ignorable error",
			setup: func(t *testing.T, m *fakeMachine) { m.remove(t, "/sys/fs/cgroup/cgroup.controllers") },
			check: func(env Env) Check {
				return cgroups{env: env, kubelet: &kubeletv1beta1.KubeletConfiguration{FailCgroupV1: ptr.To(false)}}
			},
			wantName: "SystemVerification",
			wantErrs: []string{"the machine runs cgroup v1 and kubelet 1.37.2 (1.35 and newer) only starts there when its KubeletConfiguration sets failCgroupV1: false: " +
				"move the machine to cgroup v2, or keep cgroup v1 by ignoring SystemVerification (--ignore-preflight-errors=SystemVerification) with failCgroupV1: false in the cluster's KubeletConfiguration"},
			verify: func(t *testing.T, m *fakeMachine) {
				var w bytes.Buffer
				err := Run(t.Context(), []Check{cgroups{env: m.Env(), kubelet: &kubeletv1beta1.KubeletConfiguration{FailCgroupV1: ptr.To(false)}}}, []string{"SystemVerification"}, &w)
				if err != nil || !strings.Contains(w.String(), "[WARNING SystemVerification]") {
					t.Errorf("ignored: error %v, output %q; want a warning and no error", err, w.String())
				}
			},
		},
		{
			name: "cgroup v1 with kubelet 1.34: a warning",
			setup: func(t *testing.T, m *fakeMachine) {
				m.remove(t, "/sys/fs/cgroup/cgroup.controllers")
				m.outputs["kubelet --version"] = fakeOutput{out: "Kubernetes v1.34.4\n"}
			},
			check:        func(env Env) Check { return cgroups{env: env} },
			wantName:     "SystemVerification",
			wantWarnings: []string{"the machine runs cgroup v1, which kubelet 1.34.4 still supports but later kubelets refuse; move to cgroup v2"},
		},
		{
			name: "runtime speaks an old CRI",
			setup: func(_ *testing.T, m *fakeMachine) {
				m.runtime.version = cri.Version{RuntimeName: "containerd", RuntimeVersion: "1.4.0", RuntimeAPIVersion: "v1alpha2"}
			},
			check:    func(env Env) Check { return runtimeVersion{env: env, socket: sock} },
			wantName: "ContainerRuntimeVersion",
			wantErrs: []string{`container runtime containerd 1.4.0 serves CRI "v1alpha2", use a runtime that serves CRI v1 (e.g. containerd 2.0 or newer)`},
		},
		{
			name:     "runtime unreachable is left to the CRI check",
			setup:    func(_ *testing.T, m *fakeMachine) { m.dialErr = errors.New("unreachable") },
			check:    func(env Env) Check { return runtimeVersion{env: env, socket: sock} },
			wantName: "ContainerRuntimeVersion",
		},

		// ImagePull
		{
			name: "pull policy IfNotPresent: nothing to check",
			check: func(env Env) Check {
				return imagesPresent{env: env, socket: sock, policy: corev1.PullIfNotPresent, cluster: cluster}
			},
			wantName: "ImagePull",
			verify: func(t *testing.T, m *fakeMachine) {
				if m.dialCount != 0 {
					t.Errorf("dialled the runtime %d times, want 0", m.dialCount)
				}
			},
		},
		{
			name: "pull policy Never, all images present",
			setup: func(_ *testing.T, m *fakeMachine) {
				for _, i := range images {
					m.runtime.present[i] = true
				}
			},
			check: func(env Env) Check {
				return imagesPresent{env: env, socket: sock, policy: corev1.PullNever, cluster: cluster}
			},
			wantName: "ImagePull",
			verify: func(t *testing.T, m *fakeMachine) {
				if !reflect.DeepEqual(m.runtime.queried, images) {
					t.Errorf("queried %v, want %v", m.runtime.queried, images)
				}
			},
		},
		{
			name: "pull policy Never, images missing",
			setup: func(_ *testing.T, m *fakeMachine) {
				for _, i := range images[:3] {
					m.runtime.present[i] = true
				}
				m.runtime.imageErr["registry.k8s.io/pause:3.10.2"] = errors.New("CRI ImageStatus registry.k8s.io/pause:3.10.2 at x: rpc error: code = Internal")
			},
			check: func(env Env) Check {
				return imagesPresent{env: env, socket: sock, policy: corev1.PullNever, cluster: cluster}
			},
			wantName: "ImagePull",
			wantErrs: []string{
				"cannot check image registry.k8s.io/pause:3.10.2: CRI ImageStatus registry.k8s.io/pause:3.10.2 at x: rpc error: code = Internal, check the container runtime's logs",
				"image registry.k8s.io/etcd:3.7.0-0 is not present in the container runtime and imagePullPolicy is Never, import it (ctr -n k8s.io images import FILE.tar) or set nodeRegistration.imagePullPolicy to IfNotPresent",
			},
		},
		{
			name: "pull policy Never, runtime unreachable",
			setup: func(_ *testing.T, m *fakeMachine) {
				m.dialErr = errors.New("container runtime not reachable at x: is containerd running? (boom)")
			},
			check: func(env Env) Check {
				return imagesPresent{env: env, socket: sock, policy: corev1.PullNever, cluster: cluster}
			},
			wantName: "ImagePull",
			wantErrs: []string{"cannot check the images: container runtime not reachable at x: is containerd running? (boom)"},
		},

		// HTTPProxy, HTTPProxyCIDR
		{
			name:     "no proxy configured",
			setup:    func(_ *testing.T, m *fakeMachine) { m.env["HTTP_PROXY"] = "http://proxy:3128" },
			check:    func(env Env) Check { return httpProxy{env: env, host: "10.0.0.10"} },
			wantName: "HTTPProxy",
		},
		{
			name:         "https proxy used for the API server",
			setup:        func(_ *testing.T, m *fakeMachine) { m.env["https_proxy"] = "http://proxy:3128" },
			check:        func(env Env) Check { return httpProxy{env: env, host: "10.0.0.10"} },
			wantName:     "HTTPProxy",
			wantWarnings: []string{`connection to "https://10.0.0.10" uses proxy "http://proxy:3128", add 10.0.0.10 to NO_PROXY if that is not intended`},
		},
		{
			name: "API server excluded from the proxy",
			setup: func(_ *testing.T, m *fakeMachine) {
				m.env["HTTPS_PROXY"] = "http://proxy:3128"
				m.env["NO_PROXY"] = "localhost,10.0.0.0/8"
			},
			check:    func(env Env) Check { return httpProxy{env: env, host: "10.0.0.10"} },
			wantName: "HTTPProxy",
		},
		{
			name: "proxy used for the service range",
			setup: func(_ *testing.T, m *fakeMachine) {
				m.env["HTTPS_PROXY"] = "http://proxy:3128"
				m.env["NO_PROXY"] = "10.0.0.10"
			},
			check:        func(env Env) Check { return httpProxyCIDR{env: env, cidr: "10.96.0.0/12"} },
			wantName:     "HTTPProxyCIDR",
			wantWarnings: []string{`connection to "10.96.0.0/12" uses proxy "http://proxy:3128", add 10.96.0.0/12 to NO_PROXY so that Pod and Service addresses are reached directly`},
		},
		{
			name: "service range excluded from the proxy",
			setup: func(_ *testing.T, m *fakeMachine) {
				m.env["HTTPS_PROXY"] = "http://proxy:3128"
				m.env["no_proxy"] = "10.96.0.0/12"
			},
			check:    func(env Env) Check { return httpProxyCIDR{env: env, cidr: "10.96.0.0/12"} },
			wantName: "HTTPProxyCIDR",
		},
		{
			name:     "invalid CIDR",
			check:    func(env Env) Check { return httpProxyCIDR{env: env, cidr: "10.96.0.0/40"} },
			wantName: "HTTPProxyCIDR",
			wantErrs: []string{`cannot parse CIDR "10.96.0.0/40": netip.ParsePrefix("10.96.0.0/40"): prefix length out of range, fix networking.serviceSubnet / networking.podSubnet`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newFakeMachine(t)
			if tt.setup != nil {
				tt.setup(t, m)
			}
			c := tt.check(m.Env())
			if got := c.Name(); got != tt.wantName {
				t.Errorf("Name() = %q, want %q", got, tt.wantName)
			}
			warnings, errs := c.Check(t.Context())
			if got := strs(warnings); !reflect.DeepEqual(got, tt.wantWarnings) {
				t.Errorf("warnings:\n got %q\nwant %q", got, tt.wantWarnings)
			}
			if got := strs(errs); !reflect.DeepEqual(got, tt.wantErrs) {
				t.Errorf("errors:\n got %q\nwant %q", got, tt.wantErrs)
			}
			if tt.verify != nil {
				tt.verify(t, m)
			}
		})
	}
}
