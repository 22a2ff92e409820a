package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/reset"
	"kubeboot.dev/kubeboot/internal/snapshot"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// fakeSnapshotEtcd serves a fixed database and member list.
type fakeSnapshotEtcd struct {
	opts   etcd.Options
	closed bool
}

func (f *fakeSnapshotEtcd) Snapshot(_ context.Context, w io.Writer) (int64, string, error) {
	n, err := w.Write(bytes.Repeat([]byte("page"), 1024))
	return int64(n), "3.7.0", err
}
func (f *fakeSnapshotEtcd) MemberList(context.Context) ([]etcd.Member, error) {
	return []etcd.Member{etcdM1, etcdM2}, nil
}
func (f *fakeSnapshotEtcd) AddLearner(context.Context, string, string) (uint64, string, error) {
	return 0, "", errors.New("not in this test")
}
func (f *fakeSnapshotEtcd) Promote(context.Context, uint64) error {
	return errors.New("not in this test")
}
func (f *fakeSnapshotEtcd) LocalMemberList(context.Context) ([]etcd.Member, error) {
	return nil, errors.New("not running")
}
func (f *fakeSnapshotEtcd) Endpoints() []string { return f.opts.Endpoints }
func (f *fakeSnapshotEtcd) Close() error        { f.closed = true; return nil }

type noContainers struct{}

func (noContainers) ListContainers(context.Context, map[string]string) ([]cri.Container, error) {
	return nil, nil
}

// pkiRoot is a control-plane node's root with a kubeadm PKI.
func pkiRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	cfg := &config.Init{}
	cfg.Init.NodeRegistration.Name = "cp-1"
	cfg.Init.LocalAPIEndpoint.AdvertiseAddress = "10.0.0.1"
	cfg.Cluster.Networking.ServiceSubnet = "10.96.0.0/12"
	cfg.Cluster.CertificatesDir = config.DefaultCertificatesDir
	cfg.Cluster.Etcd.Local = &config.LocalEtcd{DataDir: "/var/lib/etcd"}
	cfg.Cluster.EncryptionAlgorithm = config.EncryptionAlgorithmECDSAP256
	if _, err := pki.EnsureAll(t.Context(), nodefs.FS{Root: root}, cfg.ClusterPart(), cfg.NodePart(), pki.SystemSource()); err != nil {
		t.Fatal(err)
	}
	return root
}

func runSnapshot(t *testing.T, api *fakeSnapshotEtcd, args ...string) (string, error) {
	t.Helper()
	var buf bytes.Buffer
	deps := snapshotDeps{
		connect: func(_ nodefs.FS, _ string, opts etcd.Options) (snapshotEtcd, error) { api.opts = opts; return api, nil },
		clusterConfig: func(context.Context, string) (*config.ClusterConfiguration, error) {
			return &config.ClusterConfiguration{ClusterName: "lab", KubernetesVersion: "v1.37.2"}, nil
		},
		kubeletConfig: func(context.Context, string) ([]byte, error) {
			return []byte("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: 42\n"), nil
		},
		runtime: func(context.Context, nodefs.FS) (snapshot.Containers, func(), error) {
			return noContainers{}, func() {}, nil
		},
		now: func() time.Time { return time.Date(2026, 12, 3, 20, 0, 0, 0, time.UTC) },
	}
	cmd := newEtcdCmdWithDeps(&buf, hostEtcdConnect, deps)
	addGlobalFlags(cmd)
	cmd.SetArgs(args)
	cmd.SetOut(&buf)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(t.Context())
	return buf.String(), err
}

func TestEtcdSnapshotSaveAndVerify(t *testing.T) {
	root := pkiRoot(t)
	dir := t.TempDir()
	api := &fakeSnapshotEtcd{}
	// The cluster's kubeconfig exists: the ClusterConfiguration is read through it.
	if err := os.MkdirAll(filepath.Join(root, "etc/kubernetes"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, config.AdminKubeconfigFile), []byte("kubeconfig"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := strings.Repeat("ab", 32)
	out, err := runSnapshot(t, api, "snapshot", "save", dir, "--rootfs", root, "--keep", "2", "--encryption-key", key)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "etcd-snapshot-20261203T200000Z.tar.gz.enc")
	if !strings.HasPrefix(out, "[snapshot] saved "+file+": ") ||
		!strings.Contains(out, ", encrypted (snapshot.db 4.0 KiB from etcd 3.7.0, 2 members) in ") ||
		!strings.HasSuffix(out, "[snapshot] keep the encryption key apart from the archive: without it the archive cannot be restored\n") {
		t.Errorf("output:\n%s", out)
	}
	if !api.closed || len(api.opts.Endpoints) != 1 || api.opts.Endpoints[0] != "https://127.0.0.1:2379" {
		t.Errorf("etcd client %+v", api)
	}

	out, err = runSnapshot(t, api, "snapshot", "verify", file, "--rootfs", root, "--encryption-key", key)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"archive:        " + file + " (verified: snapshot.db matches its SHA-256)\n",
		"taken:          2026-12-03T20:00:00Z by kubeboot ",
		"cluster:        lab, Kubernetes v1.37.2\n",
		"PKI:            ca.crt, ca.key, etcd/ca.crt, etcd/ca.key, front-proxy-ca.crt, front-proxy-ca.key, sa.key, sa.pub (from /etc/kubernetes/pki)\n",
		"configuration:  kube-system/kubeadm-config's ClusterConfiguration\n",
		"  8e9e05c52164694d  cp-1  false    https://10.0.0.1:2380  https://10.0.0.1:2379\n",
		"\nthe archive's cluster CA and etcd CA are this node's\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}

	_, err = runSnapshot(t, api, "snapshot", "verify", file, "--rootfs", root)
	if err == nil || err.Error() != file+": the archive is encrypted" || hint.Of(err) != "pass the key it was saved with: --encryption-key or --encryption-key-file" {
		t.Errorf("verify without the key: %v (hint %q)", err, hint.Of(err))
	}
	_, err = runSnapshot(t, api, "snapshot", "verify", file, "--rootfs", pkiRoot(t), "--encryption-key", key)
	if want := file + ": snapshot of another cluster: the archive's ca.crt is not this node's /etc/kubernetes/pki/ca.crt"; err == nil || err.Error() != want {
		t.Errorf("verify on another cluster's node: %v\nwant %s", err, want)
	}
	out, err = runSnapshot(t, api, "snapshot", "verify", file, "--rootfs", pkiRoot(t), "--encryption-key", key, "--force")
	if err != nil || !strings.Contains(out, "\nWARNING: snapshot of another cluster: ") {
		t.Errorf("verify --force: %v\n%s", err, out)
	}
	out, err = runSnapshot(t, api, "snapshot", "verify", file, "--rootfs", t.TempDir(), "--encryption-key", key)
	if err != nil || !strings.Contains(out, "\nthis node has no cluster CA under /etc/kubernetes/pki: the archive's was not compared\n") {
		t.Errorf("verify on a node without PKI: %v\n%s", err, out)
	}
}

func TestEtcdSnapshotFlagErrors(t *testing.T) {
	root := pkiRoot(t)
	// A worker: a kubelet.conf, no etcd manifest.
	worker := t.TempDir()
	if err := (nodefs.FS{Root: worker}).WriteFile(config.KubeletKubeconfigFile, []byte("kubeconfig"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"snapshot", "save", t.TempDir(), "--encryption-key", "abc"},
			"--encryption-key: malformed certificate key: it must be 64 hexadecimal characters (32 random bytes), got 3 characters; `kubeboot certs certificate-key` makes one"},
		{[]string{"snapshot", "save", filepath.Join(t.TempDir(), "one.tar.gz"), "--keep", "3", "--rootfs", root},
			"--keep 3 rotates the archives of a directory, and "},
		{[]string{"snapshot", "save", "--keep", "-1"}, "--keep -1: must be 0 (keep all) or more"},
		{[]string{"snapshot", "verify"}, "accepts 1 arg(s), received 0"},
		{[]string{"snapshot", "rejoin"}, "rejoin needs --endpoints: the client URL of the member restored on another node"},
		{[]string{"snapshot", "restore", "x.tar.gz", "--rootfs", worker}, "phase restore/verify: this node runs no stacked etcd member (no /etc/kubernetes/manifests/etcd.yaml) and is no empty machine (it has /etc/kubernetes/kubelet.conf or /etc/kubernetes/admin.conf)"},
		// A machine with no control plane: a rebuild, which reads the archive first.
		{[]string{"snapshot", "restore", "x.tar.gz", "--rootfs", root}, "phase rebuild/verify: refusing to restore, nothing was changed: x.tar.gz: open x.tar.gz: no such file or directory"},
	} {
		_, err := runSnapshot(t, &fakeSnapshotEtcd{}, tc.args...)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%v: error = %v\nwant      %s", tc.args, err, tc.want)
		}
	}
}

func TestEtcdSnapshotRestoreRefusesACorruptArchive(t *testing.T) {
	root := pkiRoot(t)
	manifest := filepath.Join(root, staticpod.Path(staticpod.EtcdName))
	if err := os.MkdirAll(filepath.Dir(manifest), 0o755); err != nil {
		t.Fatal(err)
	}
	etcdYAML := `apiVersion: v1
kind: Pod
metadata:
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --name=cp-1
    - --initial-advertise-peer-urls=https://10.0.0.1:2380
    - --advertise-client-urls=https://10.0.0.1:2379
    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    name: etcd
  volumes:
  - hostPath:
      path: /var/lib/etcd
    name: etcd-data
`
	if err := os.WriteFile(manifest, []byte(etcdYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.tar.gz")
	if err := os.WriteFile(bad, []byte("not an archive"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := runSnapshot(t, &fakeSnapshotEtcd{}, "snapshot", "restore", bad, "--rootfs", root)
	want := "phase restore/verify: refusing to restore, nothing was changed: " + bad + ": the archive is corrupt or truncated: not a gzip stream: gzip: invalid header"
	if err == nil || err.Error() != want || hint.Of(err) != "use another archive; this one cannot be restored" {
		t.Fatalf("error = %v (hint %q)\nwant    %s", err, hint.Of(err), want)
	}
	if b, _ := os.ReadFile(manifest); string(b) != etcdYAML {
		t.Error("the refusal changed the etcd manifest")
	}
}

func TestRejoinNode(t *testing.T) {
	cc := &config.ClusterConfiguration{CertificatesDir: "/etc/kubernetes/pki", Etcd: config.Etcd{Local: &config.LocalEtcd{DataDir: "/var/lib/etcd"}}}
	m := func(peer, dataDir string) *reset.EtcdMember {
		return &reset.EtcdMember{Name: "cp-2", PeerURLs: []string{peer}, DataDir: dataDir, TrustedCAFile: "/etc/kubernetes/pki/etcd/ca.crt"}
	}
	node, err := rejoinNode(m("https://10.0.0.2:2380", "/var/lib/etcd"), cc)
	if err != nil || node.Registration.Name != "cp-2" || node.LocalAPIEndpoint.AdvertiseAddress != "10.0.0.2" {
		t.Fatalf("rejoinNode = %+v, %v", node, err)
	}
	for _, tc := range []struct {
		m    *reset.EtcdMember
		want string
	}{
		{m("https://10.0.0.2:2390", "/var/lib/etcd"), "the etcd manifest's peer URL https://10.0.0.2:2390 is not on port 2380, which join's manifest would give the member"},
		{m("https://10.0.0.2:2380", "/data/etcd"), "the ClusterConfiguration's etcd.local.dataDir /var/lib/etcd is not the etcd manifest's data directory /data/etcd"},
	} {
		if _, err := rejoinNode(tc.m, cc); err == nil || err.Error() != tc.want {
			t.Errorf("error = %v\nwant    %s", err, tc.want)
		}
	}
}

func TestRejoinNodeOptionsFromConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "join.yaml")
	doc := `apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
etcd:
  local:
    dataDir: /var/lib/etcd
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
nodeRegistration:
  imagePullPolicy: Never
patches:
  directory: /etc/kubeboot/patches
discovery:
  bootstrapToken:
    apiServerEndpoint: 10.0.0.5:6443
    token: abcdef.0123456789abcdef
    unsafeSkipCAVerification: true
`
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cc, docs, err := clusterConfigFile(file)
	if err != nil {
		t.Fatal(err)
	}
	node, err := rejoinNode(&reset.EtcdMember{Name: "cp-2", PeerURLs: []string{"https://10.0.0.2:2380"}, DataDir: "/var/lib/etcd",
		TrustedCAFile: "/etc/kubernetes/pki/etcd/ca.crt"}, cc)
	if err != nil {
		t.Fatal(err)
	}
	nodeOptionsFrom(node, docs)
	if node.Patches == nil || node.Patches.Directory != "/etc/kubeboot/patches" || node.Registration.ImagePullPolicy != "Never" {
		t.Errorf("node = %+v", node)
	}
}

// TestRebuildConfig: a rebuild resolves the archive's ClusterConfiguration and KubeletConfiguration with this
// machine's InitConfiguration, from --config or from --node-name and --apiserver-advertise-address, never both,
// and never a second ClusterConfiguration or KubeletConfiguration.
func TestRebuildConfig(t *testing.T) {
	cluster := []byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.37.2\nclusterName: lab\n")
	kubeletDoc := []byte("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: 42\n")
	initDoc := []byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: cp9\n")
	env := config.Environment{Hostname: func() (string, error) { return "machine", nil },
		AdvertiseAddress: func() (net.IP, error) { return net.ParseIP("10.77.0.9"), nil }, Random: rand.Reader}
	tests := []struct {
		name               string
		kubelet, user      []byte
		args               []string
		wantName, wantAddr string
		wantMaxPods        int32
		wantErr, wantHint  string
	}{
		{name: "the machine's defaults", kubelet: kubeletDoc, wantName: "machine", wantAddr: "10.77.0.9", wantMaxPods: 42},
		{name: "flags", kubelet: kubeletDoc, args: []string{"--node-name", "cp1", "--apiserver-advertise-address", "10.77.0.10"}, wantName: "cp1", wantAddr: "10.77.0.10", wantMaxPods: 42},
		{name: "--config", kubelet: kubeletDoc, user: initDoc, wantName: "cp9", wantAddr: "10.77.0.9", wantMaxPods: 42},
		{name: "--config's kubelet configuration when the archive has none", user: append(append(initDoc, "---\n"...), kubeletDoc...), wantName: "cp9", wantAddr: "10.77.0.9", wantMaxPods: 42},
		{name: "--config and a node flag", user: initDoc, args: []string{"--node-name", "cp1"}, wantErr: "cannot mix --config with --node-name", wantHint: "nodeRegistration.name"},
		{name: "--config with a ClusterConfiguration", user: append(append(initDoc, "---\n"...), cluster...), wantErr: "holds a ClusterConfiguration, which a rebuild takes from the archive"},
		{name: "--config with a second KubeletConfiguration", kubelet: kubeletDoc, user: append(append(initDoc, "---\n"...), kubeletDoc...), wantErr: "holds a KubeletConfiguration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &rebuildOptions{env: func() config.Environment { return env }}
			fs := pflag.NewFlagSet("restore", pflag.ContinueOnError)
			o.register(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			var configFile string
			if tt.user != nil {
				configFile = filepath.Join(t.TempDir(), "init.yaml")
				if err := os.WriteFile(configFile, tt.user, 0o600); err != nil {
					t.Fatal(err)
				}
				o.configFile = configFile
			}
			var out bytes.Buffer
			d, err := o.initFunc(nodefs.FS{Root: t.TempDir()}, &out, fs)(&snapshot.Contents{Config: cluster, Kubelet: tt.kubelet})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(hint.Of(err), tt.wantHint) {
					t.Fatalf("err = %v (hint %q), want %q (hint %q)", err, hint.Of(err), tt.wantErr, tt.wantHint)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := d.Cfg
			if c.Init.NodeRegistration.Name != tt.wantName || c.Init.LocalAPIEndpoint.AdvertiseAddress != tt.wantAddr ||
				c.Cluster.ClusterName != "lab" || c.Cluster.KubernetesVersion != "v1.37.2" || c.Kubelet == nil || c.Kubelet.MaxPods != tt.wantMaxPods {
				t.Errorf("node %s at %s, cluster %s %s, kubelet %+v; want %s at %s, lab v1.37.2, maxPods %d", c.Init.NodeRegistration.Name,
					c.Init.LocalAPIEndpoint.AdvertiseAddress, c.Cluster.ClusterName, c.Cluster.KubernetesVersion, c.Kubelet, tt.wantName, tt.wantAddr, tt.wantMaxPods)
			}
		})
	}
}
