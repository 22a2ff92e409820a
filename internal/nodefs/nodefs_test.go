package nodefs

import (
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
