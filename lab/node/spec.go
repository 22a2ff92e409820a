// Package node runs one lab node: a network, mount and UTS namespace with its own containerd and a
// supervised kubelet, its state kept in a directory of its own (LAB-FACTS §3-5).
package node

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Prefix starts the name of everything the lab creates on the machine (netns, cgroups, nodes), so a
// teardown can find leftovers even when the state file is gone.
const Prefix = "kblab-"

// Role is what a node does in the cluster.
type Role string

const (
	ControlPlane Role = "control-plane"
	Worker       Role = "worker"
	// LoadBalancer is no Kubernetes node: a netns on the lab bridge whose supervisor runs `kubeboot
	// loadbalancer` as the control-plane endpoint of a lab with several control planes.
	LoadBalancer Role = "load-balancer"
)

// Spec is everything node-run needs to know; it is written to Dir/node.json.
type Spec struct {
	Name       string `json:"name"`       // node, hostname and netns name, e.g. kblab-cp1
	Role       Role   `json:"role"`       // control-plane or worker
	IP         string `json:"ip"`         // address on the lab bridge
	PrefixLen  int    `json:"prefixLen"`  // of the lab bridge's subnet
	Gateway    string `json:"gateway"`    // the bridge's own address
	PodSubnet  string `json:"podSubnet"`  // this node's slice of the cluster pod CIDR
	Dir        string `json:"dir"`        // StateDir/nodes/NAME
	BinDir     string `json:"binDir"`     // the release's binaries: kubelet, kubeadm, kubectl, containerd, crictl...
	PauseImage string `json:"pauseImage"` // the release's sandbox image, containerd's sandbox_image
	CgroupRoot string `json:"cgroupRoot"` // the kubelet's cgroupRoot, e.g. /kblab-cp1
	HostVeth   string `json:"hostVeth"`   // the veth end attached to the bridge in the root namespace
	// KubeletBinDir, when set, holds the kubelet this node runs instead of BinDir's: another release's, installed
	// by `lab kubelet` as a package upgrade would. The supervisor reads it at every kubelet start.
	KubeletBinDir string `json:"kubeletBinDir,omitempty"`

	// LoadBalancer is set for the LoadBalancer role only.
	LoadBalancer *LoadBalancerSpec `json:"loadBalancer,omitempty"`
}

// LoadBalancerSpec is what the load balancer's supervisor runs.
type LoadBalancerSpec struct {
	Listen   string   `json:"listen"`   // ADDR:PORT, the control-plane endpoint
	Backends []string `json:"backends"` // every control plane's API server, HOST:PORT
	// CAFile is the cluster CA as the supervisor sees it (the first control plane's, through its node
	// directory). Once it exists the health checks verify the API servers' certificates with it.
	CAFile string `json:"caFile"`
}

// KubeletBinary is the kubelet the node runs.
func (s Spec) KubeletBinary() string {
	if s.KubeletBinDir != "" {
		return filepath.Join(s.KubeletBinDir, "kubelet")
	}
	return filepath.Join(s.BinDir, "kubelet")
}

// NetNSPath is the netns file `ip netns add` creates for the node.
func (s Spec) NetNSPath() string { return filepath.Join("/run/netns", s.Name) }

// RootDir holds the node's private copies of the machine paths listed in BoundDirs and BoundFiles.
func (s Spec) RootDir() string { return filepath.Join(s.Dir, "root") }

// HostPath is where the node's view of path p lives in the root namespace.
func (s Spec) HostPath(p string) string { return filepath.Join(s.RootDir(), p) }

// LogDir holds containerd.log, kubelet.log, node-run.log and the bootstrapper's output.
func (s Spec) LogDir() string { return filepath.Join(s.Dir, "logs") }

// SpecFile is read by node-run.
func (s Spec) SpecFile() string { return filepath.Join(s.Dir, "node.json") }

// PIDFile records the PID of a process node-run started (containerd, kubelet).
func (s Spec) PIDFile(name string) string { return filepath.Join(s.Dir, name+".pid") }

// ReadyFile appears once the node's containerd answers on its socket.
func (s Spec) ReadyFile() string { return filepath.Join(s.Dir, "ready") }

// ContainerdSocket is the node's containerd socket as seen from the root namespace.
func (s Spec) ContainerdSocket() string { return s.HostPath("/run/containerd/containerd.sock") }

// AdminKubeconfig is kubeadm's admin.conf of a control-plane node, as seen from the root namespace.
func (s Spec) AdminKubeconfig() string { return s.HostPath("/etc/kubernetes/admin.conf") }

// boundDirs and boundFiles are what this node binds over the machine's paths: a load balancer only needs
// its own hosts and resolv.conf.
func (s Spec) boundDirs() []string {
	if s.Role == LoadBalancer {
		return nil
	}
	return BoundDirs
}

func (s Spec) boundFiles() []string {
	if s.Role == LoadBalancer {
		return []string{"/etc/resolv.conf", "/etc/hosts"}
	}
	return BoundFiles
}

// BoundDirs are bind-mounted from RootDir over the machine's paths inside the node, so that nodes
// never share state with each other or with the machine. /run/netns is here because containerd
// creates a netns file per Pod there; /usr/libexec/kubernetes and /opt/containerd because the
// kubelet and containerd create them at start; /var/lib/kubeboot is kubeboot's own (etcd snapshots).
var BoundDirs = []string{
	"/etc/kubernetes",
	"/var/lib/kubeboot",
	"/etc/containerd",
	"/etc/cni/net.d",
	"/var/lib/kubelet",
	"/var/lib/containerd",
	"/var/lib/cni",
	"/var/lib/etcd",
	"/var/log/pods",
	"/var/log/containers",
	"/run/containerd",
	"/run/netns",
	"/usr/libexec/kubernetes",
	"/opt/containerd",
}

// BoundFiles are bind-mounted like BoundDirs. Every node resolves the other nodes through its own
// hosts file and sends DNS queries only to the lab bridge's address, where nothing answers.
// /run/xtables.lock is the lock kube-proxy's Pod and iptables create there; /etc/crictl.yaml points crictl at the
// node's containerd.
var BoundFiles = []string{
	"/etc/resolv.conf",
	"/etc/hosts",
	"/run/xtables.lock",
	"/etc/crictl.yaml",
}

// WriteSpec stores s in s.SpecFile.
func WriteSpec(s Spec) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode node spec %s: %w", s.Name, err)
	}
	if err := os.WriteFile(s.SpecFile(), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write node spec: %w", err)
	}
	return nil
}

// ReadSpec loads a spec written by WriteSpec.
func ReadSpec(path string) (Spec, error) {
	var s Spec
	b, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("read node spec: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("decode node spec %s: %w", path, err)
	}
	return s, nil
}
