package build

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
)

func TestLayerPut(t *testing.T) {
	tests := []struct {
		name    string
		build   func(l *layer) error
		wantErr string
	}{
		{
			name: "identical entries twice",
			build: func(l *layer) error {
				if err := l.addSymlink("/lib", "usr/lib"); err != nil {
					return err
				}
				return l.addSymlink("/lib", "usr/lib")
			},
		},
		{
			name: "symlink over a file",
			build: func(l *layer) error {
				if err := l.addData("/etc/x", []byte("a"), 0o644); err != nil {
					return err
				}
				return l.addSymlink("/etc/x", "y")
			},
			wantErr: "image path /etc/x: already a file, cannot also add a symlink",
		},
		{
			name: "file under a symlink",
			build: func(l *layer) error {
				if err := l.addSymlink("/lib", "usr/lib"); err != nil {
					return err
				}
				return l.addData("/lib/libc.so.6", nil, 0o644)
			},
			wantErr: "image path /lib/libc.so.6: parent /lib is a symlink, not a dir",
		},
		{
			name:    "relative path",
			build:   func(l *layer) error { return l.addDir("tmp", 0o755) },
			wantErr: `image path "tmp" is not absolute`,
		},
		{
			name:    "root",
			build:   func(l *layer) error { return l.addDir("/", 0o755) },
			wantErr: `image path "/" names the root`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.build(newLayer())
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestAddHostPathFollowsSymlinks(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// root/lib -> usr/lib (as merged /usr), usr/lib/libx.so -> libx.so.1 (as a soname link),
	// usr/lib/libx.so.1 -> /ABS/usr/lib/real/libx.so.1.2 (an absolute link).
	must(os.MkdirAll(filepath.Join(root, "usr/lib/real"), 0o755))
	must(os.WriteFile(filepath.Join(root, "usr/lib/real/libx.so.1.2"), []byte("elf"), 0o644))
	must(os.Symlink("usr/lib", filepath.Join(root, "lib")))
	must(os.Symlink("libx.so.1", filepath.Join(root, "usr/lib/libx.so")))
	must(os.Symlink(filepath.Join(root, "usr/lib/real/libx.so.1.2"), filepath.Join(root, "usr/lib/libx.so.1")))

	l := newLayer()
	must(l.addHostPath(filepath.Join(root, "lib/libx.so")))

	got := map[string]string{}
	for _, e := range l.sorted() {
		if rel, err := filepath.Rel(root, e.Path); err == nil && rel != "." && !filepath.IsAbs(rel) && rel[0] != '.' {
			got[rel] = e.Kind.String() + " " + e.Link + e.Source
		}
	}
	want := map[string]string{
		"lib":                      "symlink usr/lib",
		"usr":                      "dir ",
		"usr/lib":                  "dir ",
		"usr/lib/libx.so":          "symlink libx.so.1",
		"usr/lib/libx.so.1":        "symlink " + filepath.Join(root, "usr/lib/real/libx.so.1.2"),
		"usr/lib/real":             "dir ",
		"usr/lib/real/libx.so.1.2": "file " + filepath.Join(root, "usr/lib/real/libx.so.1.2"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entries under the test root:\n got %v\nwant %v", got, want)
	}

	t.Run("loop", func(t *testing.T) {
		must(os.Symlink("b", filepath.Join(root, "a")))
		must(os.Symlink("a", filepath.Join(root, "b")))
		err := newLayer().addHostPath(filepath.Join(root, "a"))
		want := "host path " + filepath.Join(root, "a") + ": too many levels of symbolic links"
		if err == nil || err.Error() != want {
			t.Fatalf("err = %v, want %q", err, want)
		}
	})
}

func TestParseLdd(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    []string
		wantErr error
	}{
		{
			name: "cgo go binary",
			out: "\tlinux-vdso.so.1 (0x00007ffc4b1f2000)\n" +
				"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f1b0c000000)\n" +
				"\t/lib64/ld-linux-x86-64.so.2 (0x00007f1b0c3f0000)\n",
			want: []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"},
		},
		{
			name:    "missing library",
			out:     "\tlibxtables.so.12 => not found\n",
			wantErr: errLibNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseLdd(tt.out)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIsDynamic(t *testing.T) {
	tests := []struct {
		name string
		path string
		want bool
	}{
		{"executable with a dynamic linker", "/bin/sh", true},
		{"shared object without an interpreter", sharedObject(t), true},
		{"static executable", staticBinary(t), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := isDynamic(tt.path)
			if err != nil || got != tt.want {
				t.Fatalf("isDynamic(%s) = %v, %v; want %v, nil", tt.path, got, err, tt.want)
			}
		})
	}
	t.Run("not ELF", func(t *testing.T) {
		script := filepath.Join(t.TempDir(), "script")
		if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := isDynamic(script); err == nil {
			t.Fatalf("isDynamic(script) succeeded, want an ELF error")
		}
	})
}

// sharedObject finds a shared library that itself needs others (libm needs libc).
func sharedObject(t *testing.T) string {
	t.Helper()
	m, _ := filepath.Glob("/usr/lib/*/libm.so.6")
	if len(m) == 0 {
		t.Fatal("no /usr/lib/*/libm.so.6 on this machine")
	}
	return m[0]
}

// staticBinary builds a tiny static Go program: the same kind as etcd, CoreDNS and pause.
func staticBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeModule(t, dir, map[string]string{"go.mod": "module s\n\ngo 1.24\n", "main.go": "package main\n\nfunc main() {}\n"})
	out := filepath.Join(dir, "s")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build static binary: %v\n%s", err, b)
	}
	return out
}
