package bootstrap

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/lab/node"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n%s", name, got)
	}
}

var (
	testCluster = Cluster{
		KubernetesVersion: "v1.37.2",
		PodSubnet:         "10.244.0.0/16",
		ServiceSubnet:     "10.96.0.0/12",
		Token:             "abcdef.0123456789abcdef",
	}
	testCP     = node.Spec{Name: "kblab-cp1", IP: "10.77.0.11", Dir: "/lab/nodes/kblab-cp1", CgroupRoot: "/kblab-cp1"}
	testWorker = node.Spec{Name: "kblab-w1", IP: "10.77.0.21", Dir: "/lab/nodes/kblab-w1", CgroupRoot: "/kblab-w1"}
	testJoin   = JoinInfo{APIServerEndpoint: "10.77.0.11:6443", CACertHashes: []string{"sha256:00ff"}}
	haJoin     = JoinInfo{APIServerEndpoint: "10.77.0.5:6443", CACertHashes: []string{"sha256:00ff"}}
)

func TestConfigs(t *testing.T) {
	ha := testCluster
	ha.ControlPlaneEndpoint = "10.77.0.5:6443"
	ha.CertificateKey = strings.Repeat("ab", 32)
	tests := []struct {
		name   string
		render func() ([]byte, error)
		kinds  []string
	}{
		{"init.yaml", func() ([]byte, error) { return InitConfig(testCluster, testCP) },
			[]string{"InitConfiguration", "ClusterConfiguration", "KubeletConfiguration", "KubeProxyConfiguration"}},
		{"init-ha.yaml", func() ([]byte, error) { return InitConfig(ha, testCP) },
			[]string{"InitConfiguration", "ClusterConfiguration", "KubeletConfiguration", "KubeProxyConfiguration"}},
		{"join-worker.yaml", func() ([]byte, error) { return JoinConfig(testCluster, testWorker, testJoin, false) },
			[]string{"JoinConfiguration"}},
		{"join-control-plane.yaml", func() ([]byte, error) { return JoinConfig(ha, testWorker, haJoin, true) },
			[]string{"JoinConfiguration"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.render()
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name, got)
			var kinds []string
			for _, doc := range strings.Split(string(got), "\n---\n") {
				var m struct{ Kind string }
				if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
					t.Fatalf("document does not parse: %v\n%s", err, doc)
				}
				kinds = append(kinds, m.Kind)
			}
			if fmt.Sprint(kinds) != fmt.Sprint(tt.kinds) {
				t.Errorf("kinds %v, want %v", kinds, tt.kinds)
			}
		})
	}
}

func TestKubeletPatch(t *testing.T) {
	if got := string(KubeletPatch(testWorker)); got != "cgroupRoot: /kblab-w1\n" {
		t.Errorf("patch %q", got)
	}
	if got := PatchesDir(testWorker); got != "/lab/nodes/kblab-w1/patches" {
		t.Errorf("patches dir %q", got)
	}
}

func TestNewToken(t *testing.T) {
	re := regexp.MustCompile(`^[a-z0-9]{6}\.[a-z0-9]{16}$`)
	seen := map[string]bool{}
	for range 20 {
		tok, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if !re.MatchString(tok) {
			t.Fatalf("token %q does not match %s", tok, re)
		}
		if seen[tok] {
			t.Fatalf("token %q repeated", tok)
		}
		seen[tok] = true
	}
}

func TestNewCertificateKey(t *testing.T) {
	k, err := NewCertificateKey()
	if err != nil {
		t.Fatal(err)
	}
	if b, err := hex.DecodeString(k); err != nil || len(b) != 32 {
		t.Errorf("certificate key %q: want 32 bytes of hex", k)
	}
}

// testCA makes a self-signed CA certificate (DER) and its key.
func testCA(t *testing.T) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, der
}

func TestCACertHash(t *testing.T) {
	key, der := testCA(t)
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(spki)
	want := "sha256:" + hex.EncodeToString(sum[:])

	dir := t.TempDir()
	good := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(good, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "bad.crt")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, file, want, wantErr string
	}{
		{"certificate", good, want, ""},
		{"not PEM", notPEM, "", "cluster CA " + notPEM + ": no PEM certificate"},
		{"missing", filepath.Join(dir, "none"), "", "cluster CA: open " + filepath.Join(dir, "none") + ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CACertHash(tt.file)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestNew(t *testing.T) {
	if _, err := New("kubeadm", "/bin"); err != nil {
		t.Error(err)
	}
	if _, err := New("kubeboot", "/bin"); err != nil {
		t.Error(err)
	}
	_, err := New("kind", "/bin")
	if err == nil || err.Error() != `unknown bootstrapper "kind": want kubeadm or kubeboot` {
		t.Errorf("error %v", err)
	}
}

// fakeTarget answers `TOOL COMMAND --help` with a canned output and exit error.
func fakeTarget(t *testing.T, helpOut string, helpErr error) (Target, *[]string) {
	var calls []string
	dir := t.TempDir()
	spec := node.Spec{Name: "kblab-cp1", IP: "10.77.0.11", Dir: dir, CgroupRoot: "/kblab-cp1"}
	if err := os.MkdirAll(spec.LogDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	return Target{Spec: spec, Run: func(_ context.Context, out io.Writer, args ...string) error {
		calls = append(calls, strings.Join(args[1:], " "))
		if len(args) == 3 && args[2] == "--help" {
			io.WriteString(out, helpOut)
			return helpErr
		}
		io.WriteString(out, "did "+args[1]+"\n")
		return errors.New("exit status 1")
	}}, &calls
}

func TestCLICommandCheck(t *testing.T) {
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "kubeboot"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &CLI{Tool: "kubeboot", BinDir: bin, CheckCommands: true}
	tests := []struct {
		name      string
		helpOut   string
		helpErr   error
		wantErr   string
		wantCalls int
	}{
		{
			name: "unknown command", helpOut: "Error: unknown command \"init\" for \"kubeboot\"\n", helpErr: errors.New("exit status 1"),
			wantErr:   bin + `/kubeboot has no working "init" command yet (` + "`kubeboot init --help`" + `: exit status 1, "Error: unknown command \"init\" for \"kubeboot\""): use --bootstrapper kubeadm until it has`,
			wantCalls: 1,
		},
		{
			name: "root usage only", helpOut: "Usage:\n  kubeboot [command]\n",
			wantErr:   bin + `/kubeboot has no working "init" command yet (` + "`kubeboot init --help`" + `: exit status 0, "Usage:"): use --bootstrapper kubeadm until it has`,
			wantCalls: 1,
		},
		{
			// The command exists, so init runs (and here fails): the error names the log.
			name: "command exists", helpOut: "Usage:\n  kubeboot init [flags]\n",
			wantErr:   "kubeboot init on kblab-cp1 failed: exit status 1; last lines of",
			wantCalls: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, calls := fakeTarget(t, tt.helpOut, tt.helpErr)
			_, err := c.Init(t.Context(), target, testCluster)
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("error %v\nwant prefix %q", err, tt.wantErr)
			}
			if len(*calls) != tt.wantCalls {
				t.Errorf("calls %q, want %d", *calls, tt.wantCalls)
			}
		})
	}
}

func TestCLIMissingBinary(t *testing.T) {
	bin := t.TempDir()
	c := &CLI{Tool: "kubeadm", BinDir: bin}
	target, calls := fakeTarget(t, "", nil)
	err := c.Join(t.Context(), target, testCluster, testJoin, false)
	want := "kubeadm join on kblab-cp1: stat " + bin + "/kubeadm: no such file or directory (was it built into " + bin + "?)"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	if len(*calls) != 0 {
		t.Errorf("ran %q without a binary", *calls)
	}
}

func TestCLIWritesConfigAndPatch(t *testing.T) {
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "kubeadm"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &CLI{Tool: "kubeadm", BinDir: bin}
	target, calls := fakeTarget(t, "", nil)
	_ = c.Join(t.Context(), target, testCluster, testJoin, false)
	cfg := filepath.Join(target.Spec.Dir, "kubeadm-join.yaml")
	if want := "join --config " + cfg; len(*calls) != 1 || (*calls)[0] != want {
		t.Errorf("calls %q, want [%q]", *calls, want)
	}
	fi, err := os.Stat(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %v, want 0600: it holds the bootstrap token", cfg, fi.Mode().Perm())
	}
	patch, err := os.ReadFile(filepath.Join(PatchesDir(target.Spec), "kubeletconfiguration+merge.yaml"))
	if err != nil || string(patch) != "cgroupRoot: /kblab-cp1\n" {
		t.Errorf("kubelet patch %q, %v", patch, err)
	}
}

// Joins must discover the cluster through the control-plane endpoint when there is one, so that they keep
// working when the first control plane is gone; without one, through the first control plane.
func TestCLIInitJoinEndpoint(t *testing.T) {
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "kubeadm"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	_, der := testCA(t)
	ha := testCluster
	ha.ControlPlaneEndpoint, ha.CertificateKey = "10.77.0.5:6443", strings.Repeat("ab", 32)
	tests := []struct {
		name     string
		cluster  Cluster
		wantArgs string
		want     string
	}{
		{"one control plane", testCluster, "init --config", "10.77.0.11:6443"},
		{"control-plane endpoint", ha, "init --upload-certs --config", "10.77.0.5:6443"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := node.Spec{Name: "kblab-cp1", IP: "10.77.0.11", Dir: t.TempDir(), CgroupRoot: "/kblab-cp1"}
			ca := spec.HostPath("/etc/kubernetes/pki/ca.crt")
			for _, d := range []string{spec.LogDir(), filepath.Dir(ca)} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
				t.Fatal(err)
			}
			var calls []string
			target := Target{Spec: spec, Run: func(_ context.Context, _ io.Writer, args ...string) error {
				calls = append(calls, strings.Join(args[1:], " "))
				return nil
			}}
			c := &CLI{Tool: "kubeadm", BinDir: bin}
			j, err := c.Init(t.Context(), target, tt.cluster)
			if err != nil {
				t.Fatal(err)
			}
			if j.APIServerEndpoint != tt.want {
				t.Errorf("join endpoint %q, want %q", j.APIServerEndpoint, tt.want)
			}
			if len(calls) != 1 || !strings.HasPrefix(calls[0], tt.wantArgs+" ") {
				t.Errorf("calls %q, want one starting %q", calls, tt.wantArgs)
			}
			if len(j.CACertHashes) != 1 || !strings.HasPrefix(j.CACertHashes[0], "sha256:") {
				t.Errorf("CA hashes %q", j.CACertHashes)
			}
		})
	}
}

func TestInitConfigCertificateValidity(t *testing.T) {
	c := testCluster
	c.CertificateValidityPeriod = 12 * time.Minute
	b, err := InitConfig(c, testCP)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\ncertificateValidityPeriod: 12m0s\n") {
		t.Errorf("the ClusterConfiguration lacks certificateValidityPeriod: 12m0s:\n%s", b)
	}
	if b, _ := InitConfig(testCluster, testCP); strings.Contains(string(b), "certificateValidityPeriod") {
		t.Errorf("certificateValidityPeriod set without being asked for:\n%s", b)
	}
}

// The UpgradeConfiguration decodes strictly as kubeboot reads it, with both commands' pull policy and patches.
func TestUpgradeConfig(t *testing.T) {
	docs, err := config.Load(UpgradeConfig("/var/lib/kubeboot-lab/nodes/kblab-cp1/patches"))
	if err != nil {
		t.Fatal(err)
	}
	u := docs.Upgrade
	if u == nil {
		t.Fatal("no UpgradeConfiguration decoded")
	}
	for what, got := range map[string]struct {
		pull    string
		patches *config.Patches
	}{"apply": {string(u.Apply.ImagePullPolicy), u.Apply.Patches}, "node": {string(u.Node.ImagePullPolicy), u.Node.Patches}} {
		if got.pull != "Never" || got.patches == nil || got.patches.Directory != "/var/lib/kubeboot-lab/nodes/kblab-cp1/patches" {
			t.Errorf("%s: imagePullPolicy %q, patches %+v; want Never and the node's patches directory", what, got.pull, got.patches)
		}
	}
}
