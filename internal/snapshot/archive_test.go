package snapshot

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/copycerts"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/nodefs"
)

// fakeEtcd serves a fixed database.
type fakeEtcd struct {
	db      []byte
	members []etcd.Member
}

func (f *fakeEtcd) Snapshot(_ context.Context, w io.Writer) (int64, string, error) {
	n, err := w.Write(f.db)
	return int64(n), "3.7.0", err
}

func (f *fakeEtcd) MemberList(context.Context) ([]etcd.Member, error) { return f.members, nil }

var (
	cp1 = etcd.Member{ID: 0x8e9e05c52164694d, Name: "cp1", PeerURLs: []string{"https://10.77.0.10:2380"}, ClientURLs: []string{"https://10.77.0.10:2379"}}
	cp2 = etcd.Member{ID: 0x91bc3c398fb3c146, Name: "cp2", PeerURLs: []string{"https://10.77.0.11:2380"}, ClientURLs: []string{"https://10.77.0.11:2379"}}
	cp3 = etcd.Member{ID: 0xfd422379fda50e48, Name: "cp3", PeerURLs: []string{"https://10.77.0.12:2380"}, ClientURLs: []string{"https://10.77.0.12:2379"}}
)

// fakeDB is a database's worth of bytes that compress: the archive is gzip.
var fakeDB = bytes.Repeat([]byte("etcd database page "), 4096)

func saveFake(t *testing.T, n *testNode, target string, key []byte, keep int, now time.Time) *Saved {
	t.Helper()
	s := &Saver{Node: n.fsys, CertDir: testCertDir, Files: nodefs.Host, Key: key,
		Etcd:    &fakeEtcd{db: fakeDB, members: []etcd.Member{cp1, cp2, cp3}},
		Cluster: &config.ClusterConfiguration{ClusterName: "kubernetes", KubernetesVersion: "v1.37.2", CertificatesDir: testCertDir},
		Kubelet: []byte(testKubeletConfig),
		Now:     func() time.Time { return now },
	}
	saved, err := s.Save(t.Context(), target, keep)
	if err != nil {
		t.Fatal(err)
	}
	return saved
}

const testKubeletConfig = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: 42\n"

var saveTime = time.Date(2026, 12, 3, 19, 30, 0, 0, time.UTC)

func TestSaveAndRead(t *testing.T) {
	n := newTestNode(t)
	file := filepath.Join(n.dir, "backup.tar.gz")
	saved := saveFake(t, n, file, nil, 0, saveTime)
	if saved.File != file {
		t.Errorf("file = %s, want %s", saved.File, file)
	}
	info, err := os.Stat(file)
	if err != nil || info.Mode().Perm() != 0o600 || info.Size() != saved.Size {
		t.Fatalf("archive = %v, %v; want mode 0600 and %d bytes", info, err, saved.Size)
	}
	var db bytes.Buffer
	c, err := Read(nodefs.Host, file, nil, &db)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(db.Bytes(), fakeDB) {
		t.Errorf("snapshot.db differs: %d bytes, want %d", db.Len(), len(fakeDB))
	}
	m := c.Metadata
	wantFiles := []string{"ca.crt", "ca.key", "etcd/ca.crt", "etcd/ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "sa.key", "sa.pub"}
	if m.FormatVersion != 1 || m.ClusterName != "kubernetes" || m.KubernetesVersion != "v1.37.2" || m.EtcdVersion != "3.7.0" ||
		!m.Time.Equal(saveTime) || m.SnapshotSize != int64(len(fakeDB)) || len(m.SnapshotSHA256) != 64 || m.KubebootVersion == "" ||
		m.CertificatesDir != testCertDir || !slices.Equal(m.Files, wantFiles) || len(m.Members) != 3 || m.Members[1].Name != "cp2" ||
		m.Members[1].ID != "91bc3c398fb3c146" {
		t.Errorf("metadata = %+v", m)
	}
	for _, rel := range wantFiles {
		mine, _ := n.fsys.ReadFile(filepath.Join(testCertDir, rel))
		if !bytes.Equal(c.PKI[rel], mine) {
			t.Errorf("archive's %s differs from the node's", rel)
		}
	}
	if len(c.PKI) != len(wantFiles) {
		t.Errorf("PKI holds %d files, want %d", len(c.PKI), len(wantFiles))
	}
	if !strings.Contains(string(c.Config), "kind: ClusterConfiguration") || !strings.Contains(string(c.Config), "kubernetesVersion: v1.37.2") {
		t.Errorf("config = %s", c.Config)
	}
	if string(c.Kubelet) != testKubeletConfig {
		t.Errorf("kubelet config = %q, want %q", c.Kubelet, testKubeletConfig)
	}
	if checked, err := CheckCA(c, n.fsys, testCertDir); !checked || err != nil {
		t.Errorf("CheckCA = %v, %v", checked, err)
	}
	if checked, err := CheckCA(c, nodefs.FS{Root: t.TempDir()}, testCertDir); checked || err != nil {
		t.Errorf("CheckCA on a node without a PKI = %v, %v; want not checked", checked, err)
	}
}

func TestReadRefusesCorruptArchives(t *testing.T) {
	n := newTestNode(t)
	file := filepath.Join(n.dir, "backup.tar.gz")
	saveFake(t, n, file, nil, 0, saveTime)
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	flipped := slices.Clone(good)
	flipped[len(flipped)/2] ^= 0xff
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", good[:len(good)-100], "the archive is corrupt or truncated: "},
		{"cut in half", good[:len(good)/2], "the archive is corrupt or truncated: "},
		{"a byte altered", flipped, "the archive is corrupt or truncated: "},
		{"not an archive", []byte("hello"), "the archive is corrupt or truncated: not a gzip stream: unexpected EOF"},
		{"empty", nil, "the archive is corrupt or truncated: not a gzip stream: EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "bad.tar.gz")
			if err := os.WriteFile(bad, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Read(nodefs.Host, bad, nil, io.Discard)
			if want := bad + ": " + tc.want; err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error = %v\nwant    %s...", err, want)
			}
		})
	}
	t.Run("hash mismatch", func(t *testing.T) {
		var buf bytes.Buffer
		c := &Contents{Metadata: Metadata{FormatVersion: 1, SnapshotSHA256: strings.Repeat("0", 64), SnapshotSize: 3}}
		if err := write(&buf, c, strings.NewReader("abc"), 3); err != nil {
			t.Fatal(err)
		}
		bad := filepath.Join(t.TempDir(), "bad.tar.gz")
		if err := os.WriteFile(bad, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Read(nodefs.Host, bad, nil, io.Discard)
		want := bad + ": the archive is corrupt or truncated: snapshot.db has SHA-256 ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad and 3 bytes, the metadata records " +
			strings.Repeat("0", 64) + " and 3 bytes"
		if err == nil || err.Error() != want {
			t.Fatalf("error = %v\nwant    %s", err, want)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "none.tar.gz")
		_, err := Read(nodefs.Host, missing, nil, io.Discard)
		if want := missing + ": open " + missing + ": no such file or directory"; err == nil || err.Error() != want {
			t.Fatalf("error = %v, want %s", err, want)
		}
	})
}

func TestCheckCARefusesAnotherCluster(t *testing.T) {
	n, other := newTestNode(t), newTestNode(t)
	file := filepath.Join(n.dir, "backup.tar.gz")
	saveFake(t, other, file, nil, 0, saveTime)
	c, err := Read(nodefs.Host, file, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	checked, err := CheckCA(c, n.fsys, testCertDir)
	want := "snapshot of another cluster: the archive's ca.crt is not this node's /etc/kubernetes/pki/ca.crt"
	if !checked || err == nil || err.Error() != want || !errors.Is(err, ErrOtherCluster) {
		t.Fatalf("CheckCA = %v, %v; want %s", checked, err, want)
	}
}

func TestEncryptedArchive(t *testing.T) {
	n := newTestNode(t)
	keyHex, err := copycerts.NewCertificateKey()
	if err != nil {
		t.Fatal(err)
	}
	key, err := copycerts.ParseKey(keyHex)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(n.dir, "backups")
	saved := saveFake(t, n, dir+"/", key, 0, saveTime)
	if want := filepath.Join(dir, "etcd-snapshot-20261203T193000Z.tar.gz.enc"); saved.File != want {
		t.Fatalf("file = %s, want %s", saved.File, want)
	}
	data, err := os.ReadFile(saved.File)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("PRIVATE KEY")) || bytes.Contains(data, []byte("snapshot.db")) || !isEncrypted(data) {
		t.Fatal("the encrypted archive shows its content")
	}
	var db bytes.Buffer
	c, err := Read(nodefs.Host, saved.File, key, &db)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(db.Bytes(), fakeDB) || c.Metadata.SnapshotSize != int64(len(fakeDB)) || len(c.PKI) != 8 {
		t.Errorf("decrypted archive: db %d bytes, metadata %+v", db.Len(), c.Metadata)
	}

	otherHex, _ := copycerts.NewCertificateKey()
	other, _ := copycerts.ParseKey(otherHex)
	_, err = Read(nodefs.Host, saved.File, other, io.Discard)
	if want := saved.File + ": the encryption key does not decrypt the archive (or the archive was altered)"; err == nil || err.Error() != want || !errors.Is(err, ErrWrongKey) {
		t.Errorf("wrong key: %v, want %s", err, want)
	}
	_, err = Read(nodefs.Host, saved.File, nil, io.Discard)
	if want := saved.File + ": the archive is encrypted"; err == nil || err.Error() != want || !errors.Is(err, ErrEncrypted) {
		t.Errorf("no key: %v, want %s", err, want)
	}
	if err := os.WriteFile(saved.File, data[:len(data)-10], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err = Read(nodefs.Host, saved.File, key, io.Discard); !errors.Is(err, ErrWrongKey) {
		t.Errorf("truncated encrypted archive: %v, want ErrWrongKey", err)
	}
}

func TestKeepRotatesADirectory(t *testing.T) {
	n := newTestNode(t)
	dir := filepath.Join(n.dir, "backups")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// Files that are not the rotation's stay whatever their age.
	for _, other := range []string{"notes.txt", "etcd-snapshot-manual.db", "etcd-snapshot-20200101T000000Z.tar"} {
		if err := os.WriteFile(filepath.Join(dir, other), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var all []string
	for i := range 5 {
		saved := saveFake(t, n, dir, nil, 3, saveTime.Add(time.Duration(i)*time.Hour))
		all = append(all, filepath.Base(saved.File))
		if i == 3 && !slices.Equal(saved.Removed, []string{filepath.Join(dir, "etcd-snapshot-20261203T193000Z.tar.gz")}) {
			t.Errorf("fourth save removed %v", saved.Removed)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"etcd-snapshot-20200101T000000Z.tar", "etcd-snapshot-20261203T213000Z.tar.gz", "etcd-snapshot-20261203T223000Z.tar.gz",
		"etcd-snapshot-20261203T233000Z.tar.gz", "etcd-snapshot-manual.db", "notes.txt"}
	if !slices.Equal(names, want) {
		t.Errorf("directory after 5 saves with --keep 3:\n%v\nwant\n%v", names, want)
	}

	s := &Saver{Node: n.fsys, CertDir: testCertDir, Files: nodefs.Host, Etcd: &fakeEtcd{db: fakeDB}}
	file := filepath.Join(dir, "one.tar.gz")
	_, err = s.Save(t.Context(), file, 2)
	if want := "--keep 2 rotates the archives of a directory, and " + file + " is not one: pass a directory"; err == nil || err.Error() != want {
		t.Errorf("--keep with a file: %v, want %s", err, want)
	}
}
