package node

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ContainerdConfig is the node's /etc/containerd/config.toml (LAB-FACTS §3, §7): containerd 2 reads this
// version 2 config and migrates it at start. restrict_oom_score_adj is needed because the machine lacks
// CAP_SYS_RESOURCE: without it runc fails every sandbox. sandboxImage is the release's pause image, the one
// kubeadm of that release expects. The opt plugin's path is moved into the node's own /var/lib/containerd so that
// nothing lands in the machine's /opt. NRI is off: its socket is a machine-wide path (/var/run/nri) that the
// nodes' containerds would fight over, and the lab has no NRI plugins.
func ContainerdConfig(sandboxImage string) []byte {
	return []byte(`version = 2
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "/var/lib/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "` + sandboxImage + `"
  restrict_oom_score_adj = true

  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"

[plugins."io.containerd.nri.v1.nri"]
  disable = true
`)
}

// CrictlConfig is the node's /etc/crictl.yaml: crictl talks to the node's own containerd.
func CrictlConfig() []byte {
	return []byte("runtime-endpoint: unix://" + containerdSocketPath + "\nimage-endpoint: unix://" + containerdSocketPath + "\n")
}

// CNIConfigName is the file name of the node's CNI network config under /etc/cni/net.d.
const CNIConfigName = "10-kblab.conflist"

// CNIConfig is a bridge network over the node's own pod subnet. Pods reach other nodes' Pods through
// the routes the lab adds to every node's netns; no masquerading, so nothing is NATed anywhere.
func CNIConfig(podSubnet string) ([]byte, error) {
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       "kblab",
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      "cni0",
				"isGateway":   true,
				"ipMasq":      false,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":   "host-local",
					"ranges": []any{[]any{map[string]any{"subnet": podSubnet}}},
					"routes": []any{map[string]any{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode CNI config: %w", err)
	}
	return append(b, '\n'), nil
}

// Hosts is every node's /etc/hosts: loopback plus all lab nodes, so node names resolve without DNS.
func Hosts(nodes []Spec) []byte {
	var b strings.Builder
	b.WriteString("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n")
	for _, n := range nodes {
		fmt.Fprintf(&b, "%s %s\n", n.IP, n.Name)
	}
	return []byte(b.String())
}

// ResolvConf points the node at the lab bridge's own address, where nothing answers: queries fail
// fast instead of leaving the machine (LAB-FACTS §5).
func ResolvConf(gateway string) []byte {
	return []byte("nameserver " + gateway + "\n")
}

// Prepare creates the node's directory tree and writes its config files. all lists every node of
// the lab (the load balancer too), for /etc/hosts.
func Prepare(s Spec, all []Spec) error {
	for _, d := range []string{s.Dir, s.LogDir(), s.Home()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create node dir: %w", err)
		}
	}
	for _, d := range s.boundDirs() {
		if err := os.MkdirAll(s.HostPath(d), 0o755); err != nil {
			return fmt.Errorf("create node dir: %w", err)
		}
	}
	files := map[string][]byte{
		"/etc/resolv.conf": ResolvConf(s.Gateway),
		"/etc/hosts":       Hosts(all),
	}
	if s.Role != LoadBalancer {
		cni, err := CNIConfig(s.PodSubnet)
		if err != nil {
			return err
		}
		files["/run/xtables.lock"] = nil
		files["/etc/containerd/config.toml"] = ContainerdConfig(s.PauseImage)
		files["/etc/crictl.yaml"] = CrictlConfig()
		files["/etc/cni/net.d/"+CNIConfigName] = cni
	}
	for p, content := range files {
		dst := s.HostPath(p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("create node dir: %w", err)
		}
		if err := os.WriteFile(dst, content, 0o644); err != nil {
			return fmt.Errorf("write node file: %w", err)
		}
	}
	return WriteSpec(s)
}
