package node

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// ParseEnvFile reads a systemd EnvironmentFile such as /var/lib/kubelet/kubeadm-flags.env: KEY=VALUE
// lines, values optionally in single or double quotes, # and ; comments.
func ParseEnvFile(b []byte) (map[string]string, error) {
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			return nil, fmt.Errorf("line %d: want KEY=VALUE, got %q", n, line)
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') {
			if value[len(value)-1] != value[0] {
				return nil, fmt.Errorf("line %d: unterminated quote in %q", n, line)
			}
			value = value[1 : len(value)-1]
		}
		env[key] = value
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return env, nil
}

// KubeletArgs is the kubelet command line of the official packages' systemd drop-in, with
// $KUBELET_KUBEADM_ARGS split on whitespace as systemd does for an unbraced variable.
func KubeletArgs(env map[string]string) []string {
	args := []string{
		"--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
		"--kubeconfig=/etc/kubernetes/kubelet.conf",
		"--config=/var/lib/kubelet/config.yaml",
	}
	return append(args, strings.Fields(env["KUBELET_KUBEADM_ARGS"])...)
}
