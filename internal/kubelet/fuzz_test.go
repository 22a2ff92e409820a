package kubelet

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/nodefs"
)

// addKubeadmRefs seeds f with the files kubeadm wrote in the comparison tests (testdata/kubeadm/*/*/name).
func addKubeadmRefs(f *testing.F, name string, add func(b []byte)) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "kubeadm", "*", "*", name))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds testdata/kubeadm/*/*/%s: %v", name, err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		add(b)
	}
}

// FuzzCRISocket feeds kubeadm-flags.env to CRISocket, the reader reset and certs renew --restart use. A socket it
// finds must be written in the file; a socket kubeboot (InstanceConfig) or an older kubeadm (kubeletExtraArgs in
// kubeadm-flags.env, rendered by Flags) wrote must be read back as it was.
func FuzzCRISocket(f *testing.F) {
	addKubeadmRefs(f, "kubeadm-flags.env.ref", func(b []byte) { f.Add(b, "unix:///run/containerd/containerd.sock") })
	for _, env := range []string{
		`KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/crio/crio.sock --node-ip=10.0.0.1"`,
		`KUBELET_KUBEADM_ARGS=--container-runtime-endpoint="unix:///run/x.sock"`,
		`KUBELET_KUBEADM_ARGS="--container-runtime-endpoint="`,
		`--container-runtime-endpoint="`,
	} {
		f.Add([]byte(env), "unix:///run/cri-dockerd.sock")
	}
	f.Fuzz(func(t *testing.T, env []byte, socket string) {
		fsys := nodefs.Memory()
		if err := fsys.WriteFile(config.KubeletFlagsEnvFile, env, 0o644); err != nil {
			t.Fatal(err)
		}
		if got := CRISocket(fsys); got != "" && !strings.Contains(string(env), "--container-runtime-endpoint="+got) &&
			!strings.Contains(string(env), `--container-runtime-endpoint="`+got+`"`) {
			t.Fatalf("CRISocket = %q, which kubeadm-flags.env does not set:\n%s", got, env)
		}
		if socket == "" || !utf8.ValidString(socket) {
			return
		}
		if err := fsys.WriteFile(InstanceConfigFile, InstanceConfig(socket), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := CRISocket(fsys); got != socket {
			t.Fatalf("InstanceConfig(%q) read back as %q:\n%s", socket, got, InstanceConfig(socket))
		}
		// A socket the kubelet's command line can carry: kubeadm-flags.env is split at white space and, as kubeadm
		// writes it, Go-quoted; systemd does not undo Go's escapes (\u070f stays six characters), so a socket that Go
		// escapes reaches the kubelet changed, and CRISocket reads what the kubelet gets.
		if strings.ContainsAny(socket, " \t\n\v\f\r\x85\u00a0") || strconv.Quote(socket) != `"`+socket+`"` {
			return
		}
		if err := fsys.Remove(InstanceConfigFile); err != nil {
			t.Fatal(err)
		}
		flags := Flags(FlagsInput{NodeRegistration: config.NodeRegistrationOptions{
			KubeletExtraArgs: []config.Arg{{Name: "node-ip", Value: "10.0.0.1"}, {Name: "container-runtime-endpoint", Value: socket}},
		}})
		if err := fsys.WriteFile(config.KubeletFlagsEnvFile, flags, 0o644); err != nil {
			t.Fatal(err)
		}
		if got := CRISocket(fsys); got != socket {
			t.Fatalf("kubeadm-flags.env with --container-runtime-endpoint=%q read back as %q:\n%s", socket, got, flags)
		}
	})
}

// FuzzConfigFromCluster feeds the kubelet-config ConfigMap's document to ConfigFromCluster: what decodes must be
// written by MarshalConfig (config.yaml) to a document that decodes to the same configuration.
func FuzzConfigFromCluster(f *testing.F) {
	addKubeadmRefs(f, "config.yaml.ref", func(b []byte) { f.Add(b) })
	f.Add([]byte("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nregistryPullQPS: 0\nauthentication:\n  anonymous:\n    enabled: false\n"))
	f.Add([]byte("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nfuture: field\n"))
	f.Add([]byte("apiVersion: kubelet.config.k8s.io/v1beta2\nkind: KubeletConfiguration\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		kc, err := ConfigFromCluster(doc)
		if err != nil {
			if kc != nil {
				t.Fatalf("ConfigFromCluster returned a configuration and the error %v", err)
			}
			return
		}
		if kc == nil {
			t.Fatal("ConfigFromCluster returned neither a configuration nor an error")
		}
		out, err := MarshalConfig(kc)
		if err != nil {
			t.Fatalf("MarshalConfig: %v", err)
		}
		again, err := ConfigFromCluster(out)
		if err != nil {
			t.Fatalf("what MarshalConfig wrote does not decode: %v\n%s", err, out)
		}
		if d := cmp.Diff(kc, again); d != "" {
			t.Fatalf("decoded, written and decoded again (-first +again):\n%s\nwritten:\n%s", d, out)
		}
	})
}
