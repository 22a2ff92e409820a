package snapshot

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/pki"
	"kubeboot.dev/kubeboot/internal/testutil/labbin"
)

const testCertDir = "/etc/kubernetes/pki"

// testNode is a node root with a kubeadm PKI made by internal/pki.
type testNode struct {
	dir  string
	fsys nodefs.FS
	tls  *tls.Config
}

func newTestNode(t *testing.T) *testNode {
	t.Helper()
	dir := t.TempDir()
	fsys := nodefs.FS{Root: filepath.Join(dir, "root")}
	cfg := &config.Init{}
	cfg.Init.NodeRegistration.Name = "node"
	cfg.Init.LocalAPIEndpoint.AdvertiseAddress = "127.0.0.1"
	cfg.Cluster.Networking.ServiceSubnet = "10.96.0.0/12"
	cfg.Cluster.CertificatesDir = testCertDir
	cfg.Cluster.Etcd.Local = &config.LocalEtcd{DataDir: "/var/lib/etcd"}
	cfg.Cluster.EncryptionAlgorithm = config.EncryptionAlgorithmECDSAP256
	if _, err := pki.EnsureAll(t.Context(), fsys, cfg.ClusterPart(), cfg.NodePart(), pki.SystemSource()); err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := etcd.ClientTLS(fsys, testCertDir)
	if err != nil {
		t.Fatal(err)
	}
	return &testNode{dir: dir, fsys: fsys, tls: tlsCfg}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// realEtcd is one etcd process of a given binary, on 127.0.0.1 with kubeadm's TLS flags.
type realEtcd struct {
	name, clientURL, peerURL, dataDir, logFile string
	cmd                                        *exec.Cmd
}

func newRealEtcd(t *testing.T, n *testNode, name, dataDir string) *realEtcd {
	return &realEtcd{
		name:      name,
		clientURL: fmt.Sprintf("https://127.0.0.1:%d", freePort(t)),
		peerURL:   fmt.Sprintf("https://127.0.0.1:%d", freePort(t)),
		dataDir:   dataDir,
		logFile:   filepath.Join(n.dir, name+".log"),
	}
}

// start runs binary for m; initialCluster "" means m alone, state new. It is killed when the test ends.
func (m *realEtcd) start(t *testing.T, n *testNode, binary, initialCluster string) {
	t.Helper()
	state := "existing"
	if initialCluster == "" {
		initialCluster, state = m.name+"="+m.peerURL, "new"
	}
	pkiDir := n.fsys.Path(testCertDir)
	log, err := os.OpenFile(m.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	m.cmd = exec.Command(binary,
		"--name="+m.name,
		"--data-dir="+m.dataDir,
		"--listen-client-urls="+m.clientURL,
		"--advertise-client-urls="+m.clientURL,
		"--listen-peer-urls="+m.peerURL,
		"--initial-advertise-peer-urls="+m.peerURL,
		"--initial-cluster="+initialCluster,
		"--initial-cluster-state="+state,
		"--cert-file="+pkiDir+"/etcd/server.crt",
		"--key-file="+pkiDir+"/etcd/server.key",
		"--trusted-ca-file="+pkiDir+"/etcd/ca.crt",
		"--client-cert-auth=true",
		"--peer-cert-file="+pkiDir+"/etcd/peer.crt",
		"--peer-key-file="+pkiDir+"/etcd/peer.key",
		"--peer-trusted-ca-file="+pkiDir+"/etcd/ca.crt",
		"--peer-client-cert-auth=true",
		"--heartbeat-interval=50",
		"--election-timeout=500",
	)
	m.cmd.Stdout, m.cmd.Stderr = log, log
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.stop)
}

func (m *realEtcd) stop() {
	if !m.running() {
		return
	}
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
}

func (m *realEtcd) running() bool {
	return m.cmd != nil && m.cmd.Process != nil && m.cmd.ProcessState == nil
}

func (m *realEtcd) logTail() string {
	data, _ := os.ReadFile(m.logFile)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// kv is a plain etcd client of m, for the test's own reads and writes.
func (m *realEtcd) kv(t *testing.T, n *testNode) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{m.clientURL}, TLS: n.tls, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		_, err := c.Get(ctx, "health")
		cancel()
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd %s does not answer after 20s: %v\n%s", m.name, err, m.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (m *realEtcd) client(t *testing.T, n *testNode) *etcd.Client {
	t.Helper()
	c, err := etcd.New(etcd.Options{Endpoints: []string{m.clientURL}, TLS: n.tls})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func put(t *testing.T, c *clientv3.Client, n int, prefix string) {
	t.Helper()
	for i := range n {
		if _, err := c.Put(t.Context(), fmt.Sprintf("%s%04d", prefix, i), strings.Repeat("v", 100)); err != nil {
			t.Fatal(err)
		}
	}
}

func count(t *testing.T, c *clientv3.Client, prefix string) int64 {
	t.Helper()
	resp, err := c.Get(t.Context(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// TestSaveRestoreRealEtcd saves an archive of a real etcd of each release, verifies it, restores it into a new
// data directory with etcdutl (the version kubeboot links, 3.7) and runs that release's etcd on it: the keys
// written before the save are there, those written after are not, and the member is the one restored.
func TestSaveRestoreRealEtcd(t *testing.T) {
	for _, rel := range []struct{ name, version, wantVersion string }{{"default release", "", "3.7.0"}, {"v1.36 (etcd 3.6)", "v1.36.3", "3.6.8"}} {
		t.Run(rel.name, func(t *testing.T) {
			binary := labbin.Require(t, rel.version, "etcd")
			n := newTestNode(t)
			ctx := t.Context()
			old := newRealEtcd(t, n, "cp1", filepath.Join(n.dir, "old"))
			old.start(t, n, binary, "")
			kv := old.kv(t, n)
			put(t, kv, 500, "/registry/configmaps/default/cm-")

			out := filepath.Join(n.dir, "backups")
			s := &Saver{Node: n.fsys, CertDir: testCertDir, Files: nodefs.Host, Etcd: old.client(t, n),
				Cluster: &config.ClusterConfiguration{ClusterName: "kubernetes", KubernetesVersion: "v1.37.2"}}
			if err := os.Mkdir(out, 0o700); err != nil {
				t.Fatal(err)
			}
			saved, err := s.Save(ctx, out, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("saved %s: %d bytes (db %d) in %v", saved.File, saved.Size, saved.Metadata.SnapshotSize, saved.Took)
			info, err := os.Stat(saved.File)
			if err != nil || info.Mode().Perm() != 0o600 {
				t.Fatalf("archive %v, %v; want mode 0600", info, err)
			}
			if m := saved.Metadata; len(m.Members) != 1 || m.Members[0].Name != "cp1" || m.EtcdVersion != rel.wantVersion || m.ClusterName != "kubernetes" {
				t.Errorf("metadata = %+v", m)
			}
			put(t, kv, 10, "/registry/later/")

			db := filepath.Join(n.dir, "snapshot.db")
			f, err := os.Create(db)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Read(nodefs.Host, saved.File, nil, f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if checked, err := CheckCA(c, n.fsys, testCertDir); !checked || err != nil {
				t.Fatalf("CheckCA on the same node = %v, %v", checked, err)
			}
			old.stop()

			restored := newRealEtcd(t, n, "cp1", filepath.Join(n.dir, "restored"))
			if err := RestoreDataDir(db, DataDir{Path: restored.dataDir, Name: restored.name, PeerURL: restored.peerURL}); err != nil {
				t.Fatal(err)
			}
			restored.start(t, n, binary, "")
			kv2 := restored.kv(t, n)
			if got := count(t, kv2, "/registry/configmaps/"); got != 500 {
				t.Errorf("restored etcd has %d configmaps, want 500", got)
			}
			if got := count(t, kv2, "/registry/later/"); got != 0 {
				t.Errorf("restored etcd has %d keys written after the save, want 0", got)
			}
			// The revision moved on past everything the old cluster served, and what lies behind is compacted: a
			// watch from an old resource version fails instead of missing changes.
			resp, err := kv2.Get(ctx, "/registry/configmaps/", clientv3.WithPrefix(), clientv3.WithCountOnly())
			if err != nil || resp.Header.GetRevision() < RevisionBump {
				t.Errorf("revision after the restore = %v, %v; want more than %d", resp, err, RevisionBump)
			}
			if _, err := kv2.Get(ctx, "/registry/configmaps/", clientv3.WithPrefix(), clientv3.WithRev(500)); err == nil || !strings.Contains(err.Error(), "compacted") {
				t.Errorf("read at an old revision: %v, want compacted", err)
			}
			members, err := restored.client(t, n).MemberList(ctx)
			if err != nil || len(members) != 1 || members[0].Name != "cp1" || members[0].PeerURL() != restored.peerURL {
				t.Fatalf("restored members = %+v, %v", members, err)
			}
			st, err := restored.client(t, n).Status(ctx)
			if err != nil || len(st) != 1 || !st[0].Healthy {
				t.Fatalf("restored status = %+v, %v", st, err)
			}
			t.Logf("etcd %s serves the restored data directory", st[0].Version)
			// An error line under load (a slow fsync, a late heartbeat) is not the data directory's fault: it is
			// shown; a fatal or panic line fails the test.
			log, _ := os.ReadFile(restored.logFile)
			for _, l := range strings.Split(string(log), "\n") {
				switch {
				case strings.Contains(l, `"level":"fatal"`), strings.Contains(l, `"level":"panic"`):
					t.Errorf("the restored member logged: %s", l)
				case strings.Contains(l, `"level":"error"`):
					t.Logf("the restored member logged: %s", l)
				}
			}
			if _, err := kv2.Put(ctx, "/registry/after-restore", "x"); err != nil {
				t.Fatalf("write to the restored member: %v", err)
			}
		})
	}
}
