package cli

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

const joinHash = "sha256:0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a"

func TestJoinRefusesBeforeTouchingAnything(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantStderr string
	}{
		{
			name: "control plane with a malformed certificate key",
			args: []string{"join", "10.0.0.10:6443", "--token", "abcdef.0123456789abcdef", "--discovery-token-ca-cert-hash", joinHash,
				"--control-plane", "--certificate-key", "abc", "--node-name", "cp-2", "--apiserver-advertise-address", "10.0.0.12"},
			wantStderr: "error: invalid configuration in the flags: JoinConfiguration: controlPlane.certificateKey: Invalid value: \"<redacted>\": " +
				"must be 64 hex characters (a 32-byte AES key)\nhint: fix the fields named above; nothing was written\n",
		},
		{
			name: "no discovery",
			args: []string{"join", "--node-name", "w1"},
			wantStderr: "error: invalid configuration in the flags: JoinConfiguration: discovery: Required value: bootstrapToken or file; " +
				"pass an API server endpoint with --token and --discovery-token-ca-cert-hash, or --discovery-file\n" +
				"hint: fix the fields named above; nothing was written\n",
		},
		{
			name: "no pin",
			args: []string{"join", "10.0.0.10:6443", "--token", "abcdef.0123456789abcdef", "--node-name", "w1"},
			wantStderr: "error: invalid configuration in the flags: JoinConfiguration: discovery.bootstrapToken.caCertHashes: Required value: " +
				"without a CA pin the cluster cannot be authenticated; pass --discovery-token-ca-cert-hash sha256:<hex> (or, unsafely, " +
				"--discovery-token-unsafe-skip-ca-verification)\nhint: fix the fields named above; nothing was written\n",
		},
		{
			name:       "two endpoints",
			args:       []string{"join", "10.0.0.10:6443", "10.0.0.11:6443"},
			wantStderr: "error: accepts at most 1 arg(s), received 2\n",
		},
		{
			name: "unknown phase",
			args: []string{"join", "10.0.0.10:6443", "--token", "abcdef.0123456789abcdef", "--discovery-token-ca-cert-hash", joinHash,
				"--node-name", "w1", "--skip-phases", "kubelet"},
			wantStderr: `error: --skip-phases: unknown phase "kubelet": known phases are check-etcd, control-plane-join, ` +
				"control-plane-join/mark-control-plane, control-plane-prepare, control-plane-prepare/certs, control-plane-prepare/control-plane, " +
				"control-plane-prepare/download-certs, control-plane-prepare/kubeconfig, etcd-join, kubelet-start, kubelet-wait-bootstrap, " +
				"preflight, wait-control-plane\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			var stdout, stderr bytes.Buffer
			code := Main(t.Context(), append(tt.args, "--rootfs", root), &stdout, &stderr)
			if code != 1 || stderr.String() != tt.wantStderr {
				t.Fatalf("exit %d, stderr\n%s\nwant\n%s", code, stderr.String(), tt.wantStderr)
			}
			if entries, err := os.ReadDir(root); err != nil || len(entries) != 0 {
				t.Fatalf("--rootfs holds %v (%v)", entries, err)
			}
		})
	}
}

func TestJoinPhaseCommands(t *testing.T) {
	cmd := newJoinCmd(&bytes.Buffer{})
	var phase *cobra.Command
	for _, c := range cmd.Commands() {
		if c.Name() == "phase" {
			phase = c
		}
	}
	if phase == nil {
		t.Fatal("no `join phase`")
	}
	var names []string
	var walk func(prefix string, cmds []*cobra.Command)
	walk = func(prefix string, cmds []*cobra.Command) {
		for _, c := range cmds {
			names = append(names, prefix+c.Name())
			if c.Flags().Lookup("token") == nil || c.Flags().Lookup("skip-phases") != nil {
				t.Errorf("phase %s: want join's flags without --skip-phases", prefix+c.Name())
			}
			walk(prefix+c.Name()+"/", c.Commands())
		}
	}
	walk("", phase.Commands())
	// check-etcd is hidden, as in kubeadm: it runs as part of join only. kubelet-wait-bootstrap is visible since 1.35.
	want := "control-plane-join,control-plane-join/all,control-plane-join/mark-control-plane," +
		"control-plane-prepare,control-plane-prepare/all,control-plane-prepare/certs,control-plane-prepare/control-plane," +
		"control-plane-prepare/download-certs,control-plane-prepare/kubeconfig,etcd-join,kubelet-start,kubelet-wait-bootstrap,preflight,wait-control-plane"
	if got := strings.Join(names, ","); got != want {
		t.Fatalf("phase commands\n%s\nwant\n%s", got, want)
	}
}

func TestJoinFlagsToConfiguration(t *testing.T) {
	o := &joinOptions{}
	cmd := &cobra.Command{Use: "join"}
	o.register(cmd.Flags(), true)
	if err := cmd.Flags().Parse([]string{"--token", "abcdef.0123456789abcdef", "--tls-bootstrap-token", "zzzzzz.0123456789abcdef",
		"--discovery-token-ca-cert-hash", joinHash, "--discovery-token-ca-cert-hash", joinHash, "--node-name", "w1",
		"--cri-socket", "/run/containerd/containerd.sock", "--ignore-preflight-errors", "Swap,NumCPU", "--skip-phases", "preflight"}); err != nil {
		t.Fatal(err)
	}
	f := o.resolved("10.0.0.10:6443")
	if f.APIServerEndpoint != "10.0.0.10:6443" || *f.Token != "abcdef.0123456789abcdef" || *f.TLSBootstrapToken != "zzzzzz.0123456789abcdef" ||
		len(f.DiscoveryTokenCACertHashes) != 2 || *f.NodeName != "w1" || *f.CRISocket != "/run/containerd/containerd.sock" ||
		strings.Join(f.IgnorePreflightErrors, ",") != "Swap,NumCPU" || strings.Join(f.SkipPhases, ",") != "preflight" {
		t.Fatalf("flags %+v", f)
	}
	// Flags the user did not set stay unset, so a --config file is not contradicted.
	if f.DiscoveryToken != nil || f.DiscoveryFile != nil || f.ControlPlane != nil || f.DryRun != nil || f.APIServerBindPort != nil ||
		f.DiscoveryTokenUnsafeSkipCAVerification != nil || f.CertificateKey != nil || f.APIServerAdvertiseAddress != nil {
		t.Fatalf("unset flags were set: %+v", f)
	}
}
