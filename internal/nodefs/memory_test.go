package nodefs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestMemoryTouchesNoDisk(t *testing.T) {
	m := Memory()
	if err := m.WriteFile("/etc/kubernetes/pki/ca.key", []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := m.ReadFile("/etc/kubernetes/pki/../pki/ca.key"); err != nil || string(b) != "secret" {
		t.Fatalf("read %q, %v", b, err)
	}
	for _, p := range []string{"/etc/kubernetes/pki/ca.key", "/etc/kubernetes/pki", "/etc"} {
		if !m.Exists(p) {
			t.Errorf("%s does not exist", p)
		}
	}
	if m.Path("/etc/kubernetes/pki/ca.key") != "" {
		t.Error("a memory FS has a path on the machine")
	}
	// The host's files are not seen.
	if _, err := m.ReadFile("/etc/hostname"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read the host's /etc/hostname through a memory FS: %v", err)
	}
	if m.Exists("/etc/hostname") {
		t.Error("the host's /etc/hostname exists in a memory FS")
	}
	got := m.Held()
	if len(got) != 1 || got[0].Path != "/etc/kubernetes/pki/ca.key" || got[0].Mode != 0o600 || string(got[0].Data) != "secret" {
		t.Fatalf("Held = %+v", got)
	}
	if err := m.RemoveAll("/etc/kubernetes"); err != nil || m.Exists("/etc/kubernetes/pki/ca.key") || len(m.Held()) != 0 {
		t.Fatalf("RemoveAll left %+v (%v)", m.Held(), err)
	}
}

func TestOverlayReadsBaseAndWritesMemory(t *testing.T) {
	root := t.TempDir()
	base := FS{Root: root}
	for _, p := range []string{"/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/admin.conf", "/etc/kubernetes/manifests/etcd.yaml"} {
		if err := base.WriteFile(p, []byte("base "+p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o := Overlay(base)
	if b, err := o.ReadFile("/etc/kubernetes/pki/ca.crt"); err != nil || string(b) != "base /etc/kubernetes/pki/ca.crt" {
		t.Fatalf("read through the overlay: %q, %v", b, err)
	}
	if err := o.WriteFile("/etc/kubernetes/pki/ca.key", []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := o.WriteFile("/etc/kubernetes/admin.conf", []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := o.Remove("/etc/kubernetes/manifests/etcd.yaml"); err != nil {
		t.Fatal(err)
	}
	if b, _ := o.ReadFile("/etc/kubernetes/admin.conf"); string(b) != "new" {
		t.Errorf("the overlay reads %q, not what was written through it", b)
	}
	if o.Exists("/etc/kubernetes/manifests/etcd.yaml") {
		t.Error("a file removed through the overlay still exists")
	}
	list, err := o.List("/etc/kubernetes")
	if want := []string{"/etc/kubernetes/admin.conf", "/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/pki/ca.key"}; err != nil || !slices.Equal(list, want) {
		t.Errorf("List = %q, %v; want %q", list, err, want)
	}
	if o.Path("/etc/kubernetes/admin.conf") != base.Path("/etc/kubernetes/admin.conf") {
		t.Error("the overlay's Path is not its base's")
	}
	// The base is untouched.
	var onDisk []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			onDisk = append(onDisk, p[len(root):]+"="+string(b))
		}
		return err
	})
	want := []string{"/etc/kubernetes/admin.conf=base /etc/kubernetes/admin.conf", "/etc/kubernetes/manifests/etcd.yaml=base /etc/kubernetes/manifests/etcd.yaml",
		"/etc/kubernetes/pki/ca.crt=base /etc/kubernetes/pki/ca.crt"}
	if err != nil || !slices.Equal(onDisk, want) {
		t.Errorf("the base holds %q, %v; want %q", onDisk, err, want)
	}
	held := o.Held()
	if len(held) != 2 || held[0].Path != "/etc/kubernetes/admin.conf" || held[1].Path != "/etc/kubernetes/pki/ca.key" {
		t.Errorf("Held = %+v", held)
	}
}

func TestOverlayWritesTogetherInMemory(t *testing.T) {
	base := FS{Root: t.TempDir()}
	o := Overlay(base)
	if err := o.WriteTogether(File{Path: "/etc/kubernetes/pki/ca.key", Mode: 0o600, Data: []byte("key")},
		File{Path: "/etc/kubernetes/pki/ca.crt", Mode: 0o644, Data: []byte("crt")}); err != nil {
		t.Fatal(err)
	}
	if held := o.Held(); len(held) != 2 || held[0].Path != "/etc/kubernetes/pki/ca.crt" || held[1].Mode != 0o600 {
		t.Errorf("Held = %+v", held)
	}
	if base.Exists("/etc/kubernetes/pki/ca.key") {
		t.Error("WriteTogether through an overlay wrote to its base")
	}
}

func TestInMemory(t *testing.T) {
	for _, tt := range []struct {
		name string
		fs   FS
		want bool
	}{
		{"host", Host, false},
		{"directory", FS{Root: t.TempDir()}, false},
		{"memory", Memory(), true},
		{"overlay", Overlay(FS{Root: t.TempDir()}), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.fs.InMemory(); got != tt.want {
				t.Errorf("InMemory() = %v, want %v", got, tt.want)
			}
		})
	}
}
