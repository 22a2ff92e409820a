package kubelet

import (
	"fmt"
	"sort"
	"strings"

	"kubeboot.dev/kubeboot/internal/config"
)

// EnvVariable is the variable of kubeadm-flags.env that the kubelet's systemd drop-in appends to its command.
const EnvVariable = "KUBELET_KUBEADM_ARGS"

// FlagsInput is what kubeadm-flags.env depends on.
type FlagsInput struct {
	NodeRegistration config.NodeRegistrationOptions
	// Hostname is the machine's hostname as the kubelet sees it (config.Environment.NodeHostname);
	// --hostname-override is set only when the node name differs from it.
	Hostname string
	// RegisterTaints passes the node's taints with --register-with-taints: kubeadm does so only when a worker
	// joins; a control-plane node is tainted by the mark-control-plane phase instead.
	RegisterTaints bool
}

// Flags renders kubeadm-flags.env byte for byte as kubeadm does: kubeadm's flags sorted by name, every flag
// named in kubeletExtraArgs dropped from them, then kubeletExtraArgs in their order. kubeadm never sets
// --node-ip; users pass it in kubeletExtraArgs. Since 1.35 kubeadm writes neither --pod-infra-container-image (the
// kubelet removed it) nor --container-runtime-endpoint (the socket is in instance-config.yaml).
func Flags(in FlagsInput) []byte {
	nr := in.NodeRegistration
	var base []config.Arg
	if in.RegisterTaints && len(nr.Taints) > 0 {
		taints := make([]string, 0, len(nr.Taints))
		for _, t := range nr.Taints {
			taints = append(taints, t.ToString())
		}
		base = append(base, config.Arg{Name: "register-with-taints", Value: strings.Join(taints, ",")})
	}
	if name := NodeName(nr, in.Hostname); name != in.Hostname {
		base = append(base, config.Arg{Name: "hostname-override", Value: name})
	}
	return fmt.Appendf(nil, "%s=%q\n", EnvVariable, strings.Join(commandLine(base, nr.KubeletExtraArgs), " "))
}

// InitFlags renders kubeadm-flags.env for the node running init.
func InitFlags(node *config.Node, hostname string) []byte {
	return Flags(FlagsInput{
		NodeRegistration: node.Registration,
		Hostname:         hostname,
	})
}

// NodeName is the name the kubelet registers: the hostname, unless nodeRegistration.name is set, unless
// kubeletExtraArgs carries --hostname-override.
func NodeName(nr config.NodeRegistrationOptions, hostname string) string {
	name := hostname
	if nr.Name != "" {
		name = nr.Name
	}
	for i := len(nr.KubeletExtraArgs) - 1; i >= 0; i-- {
		if nr.KubeletExtraArgs[i].Name == "hostname-override" {
			return nr.KubeletExtraArgs[i].Value
		}
	}
	return name
}

// commandLine merges kubeadm's flags with the user's as kubeadm v1beta4 does (see Flags).
func commandLine(defaults, overrides []config.Arg) []string {
	base := append([]config.Arg(nil), defaults...)
	sort.SliceStable(base, func(i, j int) bool {
		if base[i].Name == base[j].Name {
			return base[i].Value < base[j].Value
		}
		return base[i].Name < base[j].Name
	})
	overridden := map[string]bool{}
	for _, a := range overrides {
		overridden[a.Name] = true
	}
	var out []string
	for _, a := range base {
		if !overridden[a.Name] {
			out = append(out, "--"+a.Name+"="+a.Value)
		}
	}
	for _, a := range overrides {
		out = append(out, "--"+a.Name+"="+a.Value)
	}
	return out
}
