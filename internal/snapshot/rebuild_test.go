package snapshot

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"maps"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	certutil "k8s.io/client-go/util/cert"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/cri"
	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/initflow"
	"kubeboot.dev/kubeboot/internal/nodeenv"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/staticpod"
)

// recordingInit is the machine's init system: it records the kubelet's restart.
type recordingInit struct{ restarted []string }

func (r *recordingInit) Restart(_ context.Context, s string) error {
	r.restarted = append(r.restarted, s)
	return nil
}
func (r *recordingInit) Name() string { return "recording" }

// rebuildMachine is an empty machine and an archive of another node's cluster (cp1 of three members).
type rebuildMachine struct {
	source  *testNode
	fsys    nodefs.FS
	archive string
	fx      *effects
	initSys *recordingInit
	// initErr fails the configuration's resolution, as a bad --config does.
	initErr error
}

func newRebuildMachine(t *testing.T) *rebuildMachine {
	t.Helper()
	src := newTestNode(t)
	archive := filepath.Join(src.dir, "backup.tar.gz")
	saveFake(t, src, archive, nil, 0, saveTime)
	fsys := nodefs.FS{Root: filepath.Join(t.TempDir(), "machine")}
	if err := os.MkdirAll(fsys.Root, 0o755); err != nil {
		t.Fatal(err)
	}
	return &rebuildMachine{source: src, fsys: fsys, archive: archive, fx: &effects{t: t, fsys: fsys, free: 1 << 40}, initSys: &recordingInit{}}
}

// init builds init's data as the CLI does: the archive's documents, this machine's name and address, every
// preflight error ignored (the test machine is no node), and a wait for the control plane that gives up at once.
func (m *rebuildMachine) init(out *bytes.Buffer) InitFunc {
	return func(c *Contents) (*initflow.Data, error) {
		if m.initErr != nil {
			return nil, m.initErr
		}
		addr := "10.77.0.10"
		initCfg := "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: cp1\nlocalAPIEndpoint:\n  advertiseAddress: " + addr +
			"\ntimeouts:\n  controlPlaneComponentHealthCheck: 1s\n"
		file := bytes.Join([][]byte{c.Config, c.Kubelet, []byte(initCfg)}, []byte("\n---\n"))
		flags := config.InitFlags{IgnorePreflightErrors: []string{"all"}}
		env := config.Environment{Hostname: func() (string, error) { return "cp1", nil }, AdvertiseAddress: func() (net.IP, error) { return net.ParseIP(addr), nil }, Random: rand.Reader}
		cfg, _, err := config.ResolveInit(file, flags, env)
		if err != nil {
			return nil, err
		}
		env2 := nodeenv.Host(m.fsys, out)
		env2.InitSystem = m.initSys
		env2.DialRuntime = func(context.Context, string) (cri.Runtime, error) {
			return nil, errors.New("no container runtime in this test")
		}
		return &initflow.Data{Env: env2, Cfg: cfg, Clients: noAPIServer{}, Hostname: "cp1"}, nil
	}
}

// noAPIServer are API clients whose every request is refused, as no API server runs in these tests (and none may
// be reached from them): a rebuild's mark-control-plane asks until wait-control-plane gives up.
type noAPIServer struct{}

func (noAPIServer) Admin() (kubernetes.Interface, error)      { return refusingClientset(), nil }
func (noAPIServer) SuperAdmin() (kubernetes.Interface, error) { return refusingClientset(), nil }

func refusingClientset() *fake.Clientset {
	c := fake.NewClientset()
	c.PrependReactor("*", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	})
	return c
}

func (m *rebuildMachine) restorer(out *bytes.Buffer) *Restorer {
	return &Restorer{Node: m.fsys, Files: nodefs.Host, Peers: m.fx, Disk: m.fx, RestoreDataDir: m.fx.restoreDataDir,
		Init: m.init(out), Out: out, Interval: time.Millisecond, Timeout: time.Second}
}

func TestFreshMachine(t *testing.T) {
	for _, f := range []string{staticpod.Path(staticpod.EtcdName), StoppedManifest, config.KubeletKubeconfigFile, config.AdminKubeconfigFile} {
		fsys := nodefs.FS{Root: t.TempDir()}
		if !FreshMachine(fsys) {
			t.Fatal("an empty machine is not fresh")
		}
		if err := fsys.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if FreshMachine(fsys) {
			t.Errorf("a machine with %s is fresh", f)
		}
	}
}

// TestRebuildWritesAControlPlaneOfTheArchive runs a rebuild on an empty machine up to the wait for the control
// plane, which no kubelet answers here: the PKI is the archive's, the leaf certificates are signed by its CAs,
// the data directory is restored for the member init's manifest runs, and the kubelet was started.
func TestRebuildWritesAControlPlaneOfTheArchive(t *testing.T) {
	m := newRebuildMachine(t)
	var out bytes.Buffer
	_, err := m.restorer(&out).Restore(t.Context(), m.archive)
	if err == nil || !strings.Contains(err.Error(), "phase rebuild/control-plane: phase wait-control-plane") {
		t.Fatalf("err = %v, want the wait for the control plane to fail\n%s", err, out.String())
	}
	if h := hint.Of(err); !strings.Contains(h, "kubeboot reset") {
		t.Errorf("hint = %q, want how to go back (kubeboot reset)", h)
	}
	for _, rel := range []string{"ca.crt", "ca.key", "etcd/ca.crt", "front-proxy-ca.key", "sa.key", "sa.pub"} {
		mine, err := m.fsys.ReadFile(path.Join(testCertDir, rel))
		theirs, _ := m.source.fsys.ReadFile(path.Join(testCertDir, rel))
		if err != nil || !bytes.Equal(mine, theirs) {
			t.Errorf("%s is not the archive's: %v", rel, err)
		}
	}
	for _, p := range []string{testCertDir, path.Join(testCertDir, "etcd")} {
		if info, err := os.Stat(m.fsys.Path(p)); err != nil || info.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v; want a directory 0700", p, info, err)
		}
	}
	if info, err := os.Stat(m.fsys.Path(path.Join(testCertDir, "ca.key"))); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("ca.key: %v, %v; want 0600", info, err)
	}
	caPEM, _ := m.source.fsys.ReadFile(path.Join(testCertDir, "ca.crt"))
	etcdCAPEM, _ := m.source.fsys.ReadFile(path.Join(testCertDir, "etcd/ca.crt"))
	for leaf, ca := range map[string][]byte{"apiserver.crt": caPEM, "apiserver-kubelet-client.crt": caPEM, "etcd/server.crt": etcdCAPEM, "apiserver-etcd-client.crt": etcdCAPEM} {
		if err := signedBy(m.fsys, path.Join(testCertDir, leaf), ca); err != nil {
			t.Errorf("%s: %v", leaf, err)
		}
	}
	// A new cluster token, so that no member of the old cluster can take the rebuilt one back (RestoredClusterToken).
	wantRestore := regexp.MustCompile(`^restore into /var/lib/etcd as cp1=https://10.77.0.10:2380 token "etcd-cluster-restored-\d{8}T\d{6}Z"$`)
	var restores []string
	for _, l := range m.fx.log {
		if strings.HasPrefix(l, "restore into") {
			restores = append(restores, l)
		}
	}
	if len(restores) != 1 || !wantRestore.MatchString(restores[0]) {
		t.Errorf("restores = %q, want one matching %s", restores, wantRestore)
	}
	member, _, err := LocalMember(m.fsys)
	if err != nil || member.Name != "cp1" || member.DataDir != "/var/lib/etcd" || member.PeerURLs[0] != cp1Peer {
		t.Errorf("etcd manifest's member = %+v, %v; want cp1 at %s on /var/lib/etcd", member, err, cp1Peer)
	}
	for _, f := range []string{staticpod.Path(staticpod.APIServerName), staticpod.Path(staticpod.ControllerManagerName), staticpod.Path(staticpod.SchedulerName),
		config.AdminKubeconfigFile, config.KubeletKubeconfigFile, "/var/lib/kubelet/config.yaml"} {
		if !m.fsys.Exists(f) {
			t.Errorf("%s was not written", f)
		}
	}
	// The archive's KubeletConfiguration is the kubelet's.
	if kc, _ := m.fsys.ReadFile("/var/lib/kubelet/config.yaml"); !strings.Contains(string(kc), "maxPods: 42") {
		t.Errorf("/var/lib/kubelet/config.yaml is not the archive's KubeletConfiguration:\n%s", kc)
	}
	if len(m.initSys.restarted) != 1 || m.initSys.restarted[0] != "kubelet" {
		t.Errorf("restarted = %q, want the kubelet", m.initSys.restarted)
	}
	for _, want := range []string{"rebuilding one from", "installed 8 files of the archive's PKI", "restored the snapshot into /var/lib/etcd"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func signedBy(fsys nodefs.FS, file string, caPEM []byte) error {
	b, err := fsys.ReadFile(file)
	if err != nil {
		return err
	}
	certs, err := certutil.ParseCertsPEM(b)
	if err != nil {
		return err
	}
	cas, err := certutil.ParseCertsPEM(caPEM)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cas[0])
	_, err = certs[0].Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

// TestRebuildRefusesLeavingTheMachineUntouched: each refusal comes before the machine changes.
func TestRebuildRefusesLeavingTheMachineUntouched(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, m *rebuildMachine)
		wantErr error
		want    string
	}{
		{name: "an archive without a ClusterConfiguration", prepare: func(t *testing.T, m *rebuildMachine) {
			s := &Saver{Node: m.source.fsys, CertDir: testCertDir, Files: nodefs.Host, Etcd: &fakeEtcd{db: fakeDB}, Now: func() time.Time { return saveTime }}
			if _, err := s.Save(t.Context(), m.archive, 0); err != nil {
				t.Fatal(err)
			}
		}, want: "holds no ClusterConfiguration"},
		{name: "a truncated archive", prepare: func(t *testing.T, m *rebuildMachine) {
			b, _ := os.ReadFile(m.archive)
			if err := os.WriteFile(m.archive, b[:len(b)/2], 0o600); err != nil {
				t.Fatal(err)
			}
		}, wantErr: ErrCorrupt},
		{name: "a bad configuration for this machine", prepare: func(t *testing.T, m *rebuildMachine) {
			m.initErr = errors.New("invalid configuration in --config init.yaml: nodeRegistration.name: must be a DNS subdomain")
		}, want: "nodeRegistration.name"},
		{name: "another cluster's CA on the machine", prepare: func(t *testing.T, m *rebuildMachine) {
			other := newTestNode(t)
			for _, rel := range []string{"ca.crt", "ca.key"} {
				b, _ := other.fsys.ReadFile(path.Join(testCertDir, rel))
				if err := m.fsys.WriteFile(path.Join(testCertDir, rel), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}, wantErr: ErrOtherCluster},
		{name: "another member of the old cluster runs", prepare: func(t *testing.T, m *rebuildMachine) {
			m.fx.reach = map[string]error{"https://10.77.0.12:2379": nil}
		}, wantErr: ErrSplitBrain, want: "cp3 (https://10.77.0.12:2379)"},
		{name: "an old data directory", prepare: func(t *testing.T, m *rebuildMachine) {
			if err := m.fsys.WriteFile("/var/lib/etcd/member/snap/db", []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, want: "/var/lib/etcd is not empty"},
		{name: "an empty subdirectory in the data directory", prepare: func(t *testing.T, m *rebuildMachine) {
			if err := m.fsys.MkdirAll("/var/lib/etcd/member", 0o700); err != nil {
				t.Fatal(err)
			}
		}, want: "/var/lib/etcd is not empty"},
		{name: "no disk space", prepare: func(t *testing.T, m *rebuildMachine) { m.fx.free = 1000 }, wantErr: ErrNoSpace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newRebuildMachine(t)
			tt.prepare(t, m)
			before := tree(t, m.fsys.Root)
			var out bytes.Buffer
			_, err := m.restorer(&out).Restore(t.Context(), m.archive)
			if err == nil {
				t.Fatalf("rebuild succeeded, want a refusal\n%s", out.String())
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), "refusing to restore, nothing was changed") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want a refusal naming %q", err, tt.want)
			}
			if after := tree(t, m.fsys.Root); !maps.Equal(before, after) {
				t.Errorf("the machine changed: %d files before, %d after", len(before), len(after))
			}
			if len(m.initSys.restarted) != 0 {
				t.Errorf("the kubelet was restarted")
			}
		})
	}
}
