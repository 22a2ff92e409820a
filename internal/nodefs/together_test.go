package nodefs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteTogether(t *testing.T) {
	fsys := FS{Root: t.TempDir()}
	for _, p := range []string{"/pki/a.key", "/pki/a.crt"} {
		if err := fsys.WriteFile(p, []byte("old "+p), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := fsys.WriteTogether(File{"/pki/a.key", 0o600, []byte("new key")}, File{"/pki/a.crt", 0o644, []byte("new crt")}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"/pki/a.key": "new key", "/pki/a.crt": "new crt"} {
		if b, _ := fsys.ReadFile(p); string(b) != want {
			t.Errorf("%s = %q, want %q", p, b, want)
		}
	}
	if fi, err := os.Stat(fsys.Path("/pki/a.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("a.key mode %v (%v), want 0600", fi.Mode(), err)
	}
	if entries, _ := os.ReadDir(fsys.Path("/pki")); len(entries) != 2 {
		t.Errorf("temporary files left: %v", entries)
	}
}

// TestWriteTogetherFailureKeepsTheOldPair: when the second file cannot be written, the first keeps its old
// content and no temporary file is left.
func TestWriteTogetherFailureKeepsTheOldPair(t *testing.T) {
	fsys := FS{Root: t.TempDir()}
	if err := fsys.WriteFile("/pki/a.key", []byte("old key"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A directory where the certificate's parent should be makes its write fail after the key's was staged.
	if err := os.WriteFile(fsys.Path("/pki/sub"), []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := fsys.WriteTogether(File{"/pki/a.key", 0o600, []byte("new key")}, File{"/pki/sub/a.crt", 0o644, []byte("new crt")})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(fsys.Root, "pki/sub")) {
		t.Fatalf("error %v, want one naming %s", err, filepath.Join(fsys.Root, "pki/sub"))
	}
	if b, _ := fsys.ReadFile("/pki/a.key"); string(b) != "old key" {
		t.Errorf("a.key = %q after the failed pair write, want the old key", b)
	}
	if entries, _ := os.ReadDir(fsys.Path("/pki")); len(entries) != 2 {
		t.Errorf("files in /pki: %v, want a.key and sub only", entries)
	}
}

// TestWriteTogetherRenameFailurePutsBack: a rename that fails after the first files were replaced puts them
// back, and a file that did not exist before is removed again.
func TestWriteTogetherRenameFailurePutsBack(t *testing.T) {
	fsys := FS{Root: t.TempDir()}
	if err := fsys.WriteFile("/pki/a.key", []byte("old key"), 0o600); err != nil {
		t.Fatal(err)
	}
	renames := 0
	renameFile = func(from, to string) error {
		if renames++; renames == 3 {
			return &os.LinkError{Op: "rename", Old: from, New: to, Err: os.ErrPermission}
		}
		return os.Rename(from, to)
	}
	t.Cleanup(func() { renameFile = os.Rename })
	err := fsys.WriteTogether(File{"/pki/new.key", 0o600, []byte("n")}, File{"/pki/a.key", 0o600, []byte("new key")}, File{"/pki/a.crt", 0o644, []byte("new crt")})
	if err == nil || !strings.Contains(err.Error(), "(the files written with it were put back)") {
		t.Fatalf("error %v", err)
	}
	if b, _ := fsys.ReadFile("/pki/a.key"); string(b) != "old key" {
		t.Errorf("a.key = %q, want the old key put back", b)
	}
	if fsys.Exists("/pki/new.key") || fsys.Exists("/pki/a.crt") {
		t.Error("a file that did not exist before is left")
	}
	if entries, _ := os.ReadDir(fsys.Path("/pki")); len(entries) != 1 {
		t.Errorf("files in /pki: %v, want a.key only", entries)
	}
}
