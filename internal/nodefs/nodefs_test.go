package nodefs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRootedPaths(t *testing.T) {
	root := t.TempDir()
	fs := FS{Root: root}
	if got := fs.Path("/etc/kubernetes/admin.conf"); got != filepath.Join(root, "etc/kubernetes/admin.conf") {
		t.Fatalf("Path = %s", got)
	}
	if got := Host.Path("/etc/kubernetes/../kubernetes/admin.conf"); got != "/etc/kubernetes/admin.conf" {
		t.Fatalf("host Path = %s", got)
	}
	if got := fs.Path("relative.yaml"); got != "relative.yaml" {
		t.Fatalf("relative paths are not re-rooted: %s", got)
	}
}

func TestWriteFileIsAtomicWithMode(t *testing.T) {
	fs := FS{Root: t.TempDir()}
	if err := fs.WriteFile("/etc/kubernetes/pki/ca.key", []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(fs.Path("/etc/kubernetes/pki/ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
	// Overwrite keeps the new mode and leaves no temporary files behind.
	if err := fs.WriteFile("/etc/kubernetes/pki/ca.key", []byte("secret2"), 0o640); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(fs.Path("/etc/kubernetes/pki"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "ca.key" {
		t.Fatalf("directory holds %v", entries)
	}
	b, err := fs.ReadFile("/etc/kubernetes/pki/ca.key")
	if err != nil || string(b) != "secret2" {
		t.Fatalf("read %q, %v", b, err)
	}
}

func TestListRemoveExists(t *testing.T) {
	fs := FS{Root: t.TempDir()}
	for _, p := range []string{"/etc/kubernetes/b.conf", "/etc/kubernetes/a.conf", "/etc/kubernetes/pki/ca.crt"} {
		if err := fs.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := fs.List("/etc/kubernetes")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "/etc/kubernetes/a.conf,/etc/kubernetes/b.conf,/etc/kubernetes/pki/ca.crt" {
		t.Fatalf("List = %v", got)
	}
	if none, err := fs.List("/var/lib/missing"); err != nil || none != nil {
		t.Fatalf("List of a missing dir = %v, %v", none, err)
	}
	if err := fs.Remove("/etc/kubernetes/a.conf"); err != nil || fs.Exists("/etc/kubernetes/a.conf") {
		t.Fatalf("Remove: %v", err)
	}
	if err := fs.Remove("/etc/kubernetes/a.conf"); err != nil {
		t.Fatalf("removing a missing file: %v", err)
	}
}

// failingReader fails after some data, as a snapshot stream that breaks off.
type failingReader struct{ sent bool }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.sent {
		return 0, errors.New("stream broke")
	}
	f.sent = true
	return copy(p, "partial"), nil
}

func TestWriteFileFrom(t *testing.T) {
	fs := FS{Root: t.TempDir()}
	n, err := fs.WriteFileFrom("/backups/a.tar.gz", strings.NewReader("archive"), 0o600)
	if err != nil || n != 7 {
		t.Fatalf("WriteFileFrom = %d, %v", n, err)
	}
	st, err := os.Stat(fs.Path("/backups/a.tar.gz"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("stat = %v, %v", st, err)
	}
	// A stream that breaks off leaves neither the file nor a temporary one.
	_, err = fs.WriteFileFrom("/backups/b.tar.gz", &failingReader{}, 0o600)
	if err == nil || !strings.HasSuffix(err.Error(), "stream broke") {
		t.Fatalf("error = %v", err)
	}
	entries, _ := os.ReadDir(fs.Path("/backups"))
	if len(entries) != 1 || entries[0].Name() != "a.tar.gz" {
		t.Errorf("entries = %v", entries)
	}

	mem := Memory()
	if _, err := mem.WriteFileFrom("/x", strings.NewReader("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := mem.ReadFile("/x"); string(b) != "data" {
		t.Errorf("memory read %q", b)
	}
}

func TestRename(t *testing.T) {
	fs := FS{Root: t.TempDir()}
	if err := fs.WriteFile("/var/lib/etcd/member/snap/db", []byte("db"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := fs.Rename("/var/lib/etcd", "/var/lib/etcd.old"); err != nil {
		t.Fatal(err)
	}
	if fs.Exists("/var/lib/etcd") || !fs.Exists("/var/lib/etcd.old/member/snap/db") {
		t.Error("the directory did not move")
	}
	if err := Memory().Rename("/a", "/b"); !errors.Is(err, ErrInMemory) {
		t.Errorf("Memory().Rename = %v, want ErrInMemory", err)
	}
}

func TestMkdirPrivate(t *testing.T) {
	fsys := FS{Root: t.TempDir()}
	if err := os.MkdirAll(fsys.Path("/etc/kubernetes/pki"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"/etc/kubernetes/pki", "/etc/kubernetes/pki/etcd"} {
		if err := fsys.MkdirPrivate(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(fsys.Path(d)); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v (%v), want 0700", d, fi.Mode().Perm(), err)
		}
	}
	if fi, _ := os.Stat(fsys.Path("/etc/kubernetes")); fi.Mode().Perm() != 0o755 {
		t.Errorf("the parent's mode changed: %v", fi.Mode().Perm())
	}
}
