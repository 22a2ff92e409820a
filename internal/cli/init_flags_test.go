package cli

import (
	"bytes"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	certutil "k8s.io/client-go/util/cert"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/initflow"
	"kubeboot.dev/kubeboot/internal/kubelet"
	"kubeboot.dev/kubeboot/internal/workflow"
)

func TestInitSkipTokenAndCertificateKeyPrint(t *testing.T) {
	root := t.TempDir()
	base := []string{"--rootfs", root, "--apiserver-advertise-address", "10.0.0.1", "--node-name", "n1",
		"--token", "abcdef.0123456789abcdef", "--control-plane-endpoint", "cp.lab:6443"}
	if code, _, errs := run(t, append([]string{"init", "phase", "certs", "ca"}, base...)...); code != 0 {
		t.Fatalf("certs ca: %s", errs)
	}
	key := strings.Repeat("ab", 32)
	code, out, errs := run(t, append([]string{"init", "phase", "show-join-command", "--upload-certs", "--certificate-key", key}, base...)...)
	if code != 0 || !strings.Contains(out, "--token abcdef.0123456789abcdef") || !strings.Contains(out, "--certificate-key "+key) {
		t.Fatalf("without the skip flags: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = run(t, append([]string{"init", "phase", "show-join-command", "--upload-certs", "--certificate-key", key,
		"--skip-token-print", "--skip-certificate-key-print"}, base...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if strings.Contains(out, "0123456789abcdef") || strings.Contains(out, key) {
		t.Errorf("printed a secret it was asked to withhold:\n%s", out)
	}
	if strings.Count(out, "--token <value withheld>") != 2 || !strings.Contains(out, "--certificate-key <value withheld>") {
		t.Errorf("output:\n%s", out)
	}
}

func TestInitPhaseAddonPrintManifest(t *testing.T) {
	code, out, errs := run(t, "init", "phase", "addon", "all", "--print-manifest", "--rootfs", t.TempDir(),
		"--apiserver-advertise-address", "10.0.0.1", "--node-name", "n1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"kind: Deployment\n", "name: coredns\n", "kind: DaemonSet\n", "name: kube-proxy\n", "kind: ConfigMap\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// Only the addon phases have it, as in kubeadm.
	if code, _, errs := run(t, "init", "--print-manifest"); code != 1 || !strings.Contains(errs, "unknown flag: --print-manifest") {
		t.Errorf("init --print-manifest: exit %d, %s", code, errs)
	}
}

func TestInitFeatureGatesAndSANsReachTheCertificates(t *testing.T) {
	root := t.TempDir()
	code, _, errs := run(t, "init", "phase", "certs", "all", "--rootfs", root, "--apiserver-advertise-address", "10.0.0.1",
		"--node-name", "n1", "--apiserver-cert-extra-sans", "api.lab,10.0.0.100", "--feature-gates", "RootlessControlPlane=false")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	cert := readCert(t, root+"/etc/kubernetes/pki/apiserver.crt")
	if !slices.Contains(cert.DNSNames, "api.lab") || !containsIP(cert.IPAddresses, "10.0.0.100") {
		t.Errorf("apiserver.crt SANs: %v %v", cert.DNSNames, cert.IPAddresses)
	}
	code, _, errs = run(t, "init", "--rootfs", t.TempDir(), "--feature-gates", "NoSuchGate=true")
	if code != 1 || !strings.Contains(errs, "--feature-gates: unrecognized feature-gate key: NoSuchGate") {
		t.Errorf("exit %d: %s", code, errs)
	}
}

func TestInitKubeconfigDir(t *testing.T) {
	root := t.TempDir()
	args := []string{"--rootfs", root, "--apiserver-advertise-address", "10.0.0.1", "--node-name", "n1"}
	if code, _, errs := run(t, append([]string{"init", "phase", "certs", "ca"}, args...)...); code != 0 {
		t.Fatalf("certs ca: %s", errs)
	}
	code, _, errs := run(t, append([]string{"init", "phase", "kubeconfig", "admin", "--kubeconfig-dir", "/srv/kubeconfigs"}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if _, err := os.Stat(root + "/srv/kubeconfigs/admin.conf"); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(root + "/etc/kubernetes/admin.conf"); !os.IsNotExist(err) {
		t.Errorf("admin.conf written to /etc/kubernetes too: %v", err)
	}
	// Only the kubeconfig phases have it, as in kubeadm.
	if code, _, errs := run(t, "init", "phase", "certs", "ca", "--kubeconfig-dir", "/srv"); code != 1 || !strings.Contains(errs, "unknown flag: --kubeconfig-dir") {
		t.Errorf("certs ca --kubeconfig-dir: exit %d, %s", code, errs)
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := certutil.ParseCertsPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

func containsIP(ips []net.IP, want string) bool {
	return slices.ContainsFunc(ips, func(ip net.IP) bool { return ip.Equal(net.ParseIP(want)) })
}

// On a host with a mixed-case name init names the node, and compares that name with the hostname, as kubeadm does:
// both lowercased, so kubeadm-flags.env carries no --hostname-override.
func TestInitMixedCaseHostname(t *testing.T) {
	root := t.TempDir()
	o := &initOptions{env: func() config.Environment {
		return config.Environment{
			Hostname:              func() (string, error) { return "CP-1.Lab", nil },
			AdvertiseAddress:      func() (net.IP, error) { return net.ParseIP("10.0.0.10"), nil },
			SystemdResolvedActive: func() bool { return false },
			Random:                bytes.NewReader(bytes.Repeat([]byte{7}, 64)),
		}
	}}
	o.register(pflag.NewFlagSet("init", pflag.ContinueOnError), "kubelet-start")
	o.rootfs = root
	var out bytes.Buffer
	d, err := o.data(&out)
	if err != nil {
		t.Fatal(err)
	}
	if name := d.Cfg.Init.NodeRegistration.Name; name != "cp-1.lab" {
		t.Errorf("node name %q, want cp-1.lab", name)
	}
	d.InitSystem = kubelet.None{}
	r := workflow.Runner[*initflow.Data]{Phases: initflow.Phases(), Out: &out}
	if err := r.Run(t.Context(), d, workflow.Options{Only: "kubelet-start"}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	flags, err := os.ReadFile(filepath.Join(root, config.KubeletFlagsEnvFile))
	if err != nil {
		t.Fatal(err)
	}
	if want := "KUBELET_KUBEADM_ARGS=\"\"\n"; string(flags) != want {
		t.Errorf("kubeadm-flags.env:\n%s\nwant:\n%s", flags, want)
	}
}
