package cli

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kubeboot.dev/kubeboot/internal/config"
)

// fakePuller records the images `config images pull` asks the runtime for.
type fakePuller struct {
	socket string
	pulled []string
	fail   string
	closed bool
}

func (f *fakePuller) PullImage(_ context.Context, ref string) error {
	if ref == f.fail {
		return errors.New("rpc error: not found")
	}
	f.pulled = append(f.pulled, ref)
	return nil
}
func (f *fakePuller) Close() error { f.closed = true; return nil }

func testConfigDeps(p *fakePuller) configDeps {
	return configDeps{
		env: func() config.Environment {
			return config.Environment{
				Hostname:              func() (string, error) { return "cp-1", nil },
				AdvertiseAddress:      func() (net.IP, error) { return net.ParseIP("10.0.0.10"), nil },
				SystemdResolvedActive: func() bool { return false },
				Random:                bytes.NewReader(bytes.Repeat([]byte{7}, 64)),
			}
		},
		dialer: func(_ context.Context, socket string) (imagePuller, error) { p.socket = socket; return p, nil },
	}
}

func runConfig(t *testing.T, deps configDeps, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := newConfigCmdWith(&out, deps)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(t.Context())
	return out.String(), err
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeadm.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigPrintDefaults(t *testing.T) {
	for action, docs := range map[string]func() ([]byte, error){
		"reset-defaults":   config.DefaultResetDocuments,
		"upgrade-defaults": config.DefaultUpgradeDocuments,
		"join-defaults":    config.DefaultJoinDocuments,
	} {
		out, err := runConfig(t, testConfigDeps(&fakePuller{}), "print", action)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := docs()
		if out != string(want) {
			t.Errorf("print %s:\n%s\nwant\n%s", action, out, want)
		}
	}
}

func TestConfigImagesList(t *testing.T) {
	out, err := runConfig(t, testConfigDeps(&fakePuller{}), "images", "list", "--kubernetes-version", "v1.36.1", "--image-repository", "mirror.lab")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"mirror.lab/kube-apiserver:v1.36.1", "mirror.lab/kube-controller-manager:v1.36.1", "mirror.lab/kube-scheduler:v1.36.1",
		"mirror.lab/kube-proxy:v1.36.1", "mirror.lab/coredns:v1.14.2", "mirror.lab/pause:3.10.2", "mirror.lab/etcd:3.6.8-0",
	}, "\n") + "\n"
	if out != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}

	// A file that turns kube-proxy off and uses external etcd lists neither, as kubeadm.
	file := writeFile(t, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nproxy:\n  disabled: true\n"+
		"etcd:\n  external:\n    endpoints: [https://10.0.0.5:2379]\n    caFile: /e/ca.crt\n    certFile: /e/c.crt\n    keyFile: /e/c.key\n")
	out, err = runConfig(t, testConfigDeps(&fakePuller{}), "images", "list", "--config", file, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"kind": "Images"`) || !strings.Contains(out, `"apiVersion": "output.kubeadm.k8s.io/v1alpha3"`) ||
		strings.Contains(out, "kube-proxy") || strings.Contains(out, "/etcd:") || !strings.Contains(out, "/pause:") {
		t.Fatalf("json output:\n%s", out)
	}

	if _, err := runConfig(t, testConfigDeps(&fakePuller{}), "images", "list", "-o", "go-template"); err == nil ||
		err.Error() != `--output "go-template": kubeboot prints text, json or yaml` {
		t.Fatalf("err = %v", err)
	}
}

func TestConfigImagesPull(t *testing.T) {
	p := &fakePuller{}
	out, err := runConfig(t, testConfigDeps(p), "images", "pull", "--cri-socket", "unix:///run/crio/crio.sock")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Init{}
	if err := config.SetInitDefaults(cfg, testConfigDeps(p).env()); err != nil {
		t.Fatal(err)
	}
	want, err := cfg.Cluster.Images()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.pulled, " ") != strings.Join(want, " ") || p.socket != "unix:///run/crio/crio.sock" || !p.closed {
		t.Fatalf("pulled %q from %s (closed %v), want %q", p.pulled, p.socket, p.closed, want)
	}
	if !strings.HasPrefix(out, "[config/images] Pulled "+want[0]+"\n") {
		t.Errorf("output:\n%s", out)
	}

	p = &fakePuller{fail: want[1]}
	if _, err := runConfig(t, testConfigDeps(p), "images", "pull"); err == nil || !strings.HasPrefix(err.Error(), "pull "+want[1]+": ") || len(p.pulled) != 1 {
		t.Fatalf("err = %v after %q", err, p.pulled)
	}
}

func TestConfigValidate(t *testing.T) {
	deps := testConfigDeps(&fakePuller{})
	good := writeFile(t, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\n")
	if out, err := runConfig(t, deps, "validate", "--config", good); err != nil || out != "ok\n" {
		t.Fatalf("%q, %v", out, err)
	}
	bad := writeFile(t, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ResetConfiguration\nunmountFlags: [MNT_NOPE]\n")
	if _, err := runConfig(t, deps, "validate", "--config", bad); err == nil || !strings.Contains(err.Error(), "unmountFlags[0]") {
		t.Fatalf("err = %v", err)
	}
	old := writeFile(t, "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n")
	if _, err := runConfig(t, deps, "validate", "--config", old); err == nil || !strings.Contains(err.Error(), "--allow-deprecated-api") {
		t.Fatalf("err = %v", err)
	}
	if out, err := runConfig(t, deps, "validate", "--config", old, "--allow-deprecated-api"); err != nil || !strings.HasSuffix(out, "ok\n") || !strings.Contains(out, "WARNING") {
		t.Fatalf("%q, %v", out, err)
	}
	if _, err := runConfig(t, deps, "validate"); err == nil || err.Error() != "--config is required" {
		t.Fatalf("err = %v", err)
	}
}

func TestConfigMigrate(t *testing.T) {
	deps := testConfigDeps(&fakePuller{})
	old := writeFile(t, "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ResetConfiguration\n")
	_, err := runConfig(t, deps, "migrate", "--old-config", old)
	if err == nil || !strings.Contains(err.Error(), `unsupported apiVersion "kubeadm.k8s.io/v1beta3" with kind "ResetConfiguration"`) {
		t.Fatalf("err = %v (v1beta3 has no ResetConfiguration)", err)
	}
	old = writeFile(t, "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\nbootstrapTokens:\n- token: abcdef.0123456789abcdef\n")
	newFile := filepath.Join(t.TempDir(), "new.yaml")
	if out, err := runConfig(t, deps, "migrate", "--old-config", old, "--new-config", newFile); err != nil || out != "" {
		t.Fatalf("%q, %v", out, err)
	}
	st, err := os.Stat(newFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v (it holds a token: want 0600)", newFile, st, err)
	}
	b, _ := os.ReadFile(newFile)
	want, err := config.Migrate([]byte("apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\nbootstrapTokens:\n- token: abcdef.0123456789abcdef\n"), deps.env())
	if err != nil || string(b) != string(want) {
		t.Fatalf("wrote\n%s\nwant\n%s (%v)", b, want, err)
	}
	if _, err := runConfig(t, deps, "migrate"); err == nil || err.Error() != "--old-config is required" {
		t.Fatalf("err = %v", err)
	}
}
