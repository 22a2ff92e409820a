package manifests

import (
	"sort"

	"kubeboot.dev/kubeboot/internal/config"
)

// commandLine turns a component's default arguments and the user's extraArgs into a command, with kubeadm
// v1beta4 semantics: defaults are sorted by name (then value), every default whose name appears in the overrides
// is dropped, and the overrides follow in the user's order, repetitions kept. The same rule builds
// kubeadm-flags.env, so a manifest reads the same whichever tool wrote it.
func commandLine(binary string, defaults, overrides []config.Arg) []string {
	base := append([]config.Arg(nil), defaults...)
	sort.SliceStable(base, func(i, j int) bool {
		if base[i].Name == base[j].Name {
			return base[i].Value < base[j].Value
		}
		return base[i].Name < base[j].Name
	})
	overridden := make(map[string]bool, len(overrides))
	for _, a := range overrides {
		overridden[a.Name] = true
	}
	cmd := make([]string, 0, 1+len(base)+len(overrides))
	cmd = append(cmd, binary)
	for _, a := range base {
		if !overridden[a.Name] {
			cmd = append(cmd, "--"+a.Name+"="+a.Value)
		}
	}
	for _, a := range overrides {
		cmd = append(cmd, "--"+a.Name+"="+a.Value)
	}
	return cmd
}

// argValue returns the value of the last argument called name, as kubeadm reads extraArgs.
func argValue(args []config.Arg, name string) (string, bool) {
	for i := len(args) - 1; i >= 0; i-- {
		if args[i].Name == name {
			return args[i].Value, true
		}
	}
	return "", false
}

// setArg sets the last argument called name to value, or appends it.
func setArg(args []config.Arg, name, value string) []config.Arg {
	for i := len(args) - 1; i >= 0; i-- {
		if args[i].Name == name {
			args[i].Value = value
			return args
		}
	}
	return append(args, config.Arg{Name: name, Value: value})
}
