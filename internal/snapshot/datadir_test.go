package snapshot

import (
	"errors"
	"os"
	"testing"
	"time"

	"kubeboot.dev/kubeboot/internal/nodefs"
)

func oldEtcdDir(t *testing.T) nodefs.FS {
	t.Helper()
	fsys := nodefs.FS{Root: t.TempDir()}
	for p, data := range map[string]string{"/var/lib/etcd/member/snap/db": "old data", "/var/lib/etcd/member/wal/0.wal": "old wal"} {
		if err := fsys.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return fsys
}

// A data directory that is not a mount point is renamed beside itself.
func TestMoveAsideRenames(t *testing.T) {
	fsys := oldEtcdDir(t)
	old, err := moveAside(fsys, "/var/lib/etcd", "before-restore-X")
	if err != nil {
		t.Fatal(err)
	}
	if old != "/var/lib/etcd.before-restore-X" || fsys.Exists("/var/lib/etcd") || !fsys.Exists(old+"/member/wal/0.wal") {
		t.Fatalf("moved to %q; /var/lib/etcd exists: %v", old, fsys.Exists("/var/lib/etcd"))
	}
	if old, err := moveAside(fsys, "/var/lib/etcd", "again"); old != "" || err != nil {
		t.Fatalf("an absent data directory: %q, %v", old, err)
	}
}

// A mount point cannot be renamed (the lab's nodes, and etcd on its own disk): its entries move into a private
// directory inside it, and the snapshot is restored so that etcd finds "member" where it looks.
func TestRestoreIntoAMountPoint(t *testing.T) {
	fsys := oldEtcdDir(t)
	old, err := moveEntriesInside(fsys, "/var/lib/etcd", "before-restore-X")
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(fsys.Path("/var/lib/etcd"))
	if old != "/var/lib/etcd/before-restore-X" || len(entries) != 1 || !fsys.Exists(old+"/member/snap/db") {
		t.Fatalf("moved to %q; /var/lib/etcd holds %v", old, entries)
	}
	if fi, err := os.Stat(fsys.Path(old)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v, %v; want mode 0700", old, fi, err)
	}

	restore := func(db string, dir DataDir) error {
		if got, _ := os.ReadDir(dir.Path); len(got) != 0 {
			t.Fatalf("restore into %s, which holds %v", dir.Path, got)
		}
		return os.WriteFile(dir.Path+"/member", []byte(db), 0o600)
	}
	// etcdutl makes the directory it restores into.
	mkdirRestore := func(db string, dir DataDir) error {
		if err := os.MkdirAll(dir.Path, 0o700); err != nil {
			return err
		}
		return restore(db, dir)
	}
	if err := restoreInto(fsys, mkdirRestore, "snapshot.db", DataDir{Path: "/var/lib/etcd", Name: "cp1"}, "X"); err != nil {
		t.Fatal(err)
	}
	got, _ := fsys.ReadFile("/var/lib/etcd/member")
	entries, _ = os.ReadDir(fsys.Path("/var/lib/etcd"))
	if string(got) != "snapshot.db" || len(entries) != 2 || !fsys.Exists(old+"/member/wal/0.wal") {
		t.Fatalf("member %q; /var/lib/etcd holds %v", got, entries)
	}

	// A failed restore leaves the old data where moveAside put it and nothing of its own.
	fsys = oldEtcdDir(t)
	if _, err := moveEntriesInside(fsys, "/var/lib/etcd", "before-restore-X"); err != nil {
		t.Fatal(err)
	}
	broken := errors.New("snapshot corrupt")
	err = restoreInto(fsys, func(db string, dir DataDir) error {
		_ = mkdirRestore(db, dir)
		return broken
	}, "snapshot.db", DataDir{Path: "/var/lib/etcd"}, "X")
	entries, _ = os.ReadDir(fsys.Path("/var/lib/etcd"))
	if !errors.Is(err, broken) || len(entries) != 1 || entries[0].Name() != "before-restore-X" {
		t.Fatalf("err %v; /var/lib/etcd holds %v", err, entries)
	}
}

// An empty or absent data directory is restored into directly.
func TestRestoreIntoAnEmptyDirectory(t *testing.T) {
	fsys := nodefs.FS{Root: t.TempDir()}
	var into string
	restore := func(_ string, dir DataDir) error { into = dir.Path; return nil }
	if err := restoreInto(fsys, restore, "db", DataDir{Path: "/var/lib/etcd"}, "X"); err != nil || into != fsys.Path("/var/lib/etcd") {
		t.Fatalf("absent: restored into %q: %v", into, err)
	}
	if err := fsys.MkdirAll("/var/lib/etcd", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := restoreInto(fsys, restore, "db", DataDir{Path: "/var/lib/etcd"}, "X"); err != nil || into != fsys.Path("/var/lib/etcd") {
		t.Fatalf("empty: restored into %q: %v", into, err)
	}
}

func TestRestoredClusterToken(t *testing.T) {
	at := time.Date(2026, 12, 7, 16, 39, 2, 0, time.FixedZone("CET", 3600))
	for manifest, want := range map[string]string{
		"":      "etcd-cluster-restored-20261207T153902Z", // kubeadm's manifests set none: etcd's default
		"prod1": "prod1-restored-20261207T153902Z",
	} {
		if got := RestoredClusterToken(manifest, at); got != want {
			t.Errorf("RestoredClusterToken(%q) = %q, want %q", manifest, got, want)
		}
	}
}
