package localendpoint

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"kubeboot.dev/kubeboot/internal/nodefs"
)

// buildFixture builds a tiny Go program with CGO_ENABLED=cgo and returns its path; with cgo it imports "C", so
// that it links the C library dynamically. It skips the test when the toolchain it needs is missing.
func buildFixture(t *testing.T, cgo bool) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	dir := t.TempDir()
	src := "package main\n\nfunc main() {}\n"
	env := "CGO_ENABLED=0"
	if cgo {
		if _, err := exec.LookPath("gcc"); err != nil {
			t.Skip("no C compiler to build a dynamically linked fixture")
		}
		src = "package main\n\nimport \"C\"\n\nfunc main() {}\n"
		env = "CGO_ENABLED=1"
	}
	for name, content := range map[string]string{"go.mod": "module fixture\n\ngo 1.22\n", "main.go": src} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "fixture")
	cmd := exec.CommandContext(t.Context(), goBin, "build", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env, "GOWORK=off", "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the fixture (%s): %v\n%s", env, err, b)
	}
	return out
}

func TestCheckStatic(t *testing.T) {
	static := buildFixture(t, false)
	dynamic := buildFixture(t, true)
	script := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, file string
		wantIs     error
		want       []string // parts of the message
	}{
		{name: "CGO_ENABLED=0", file: static},
		{name: "CGO_ENABLED=1", file: dynamic, wantIs: ErrDynamic,
			want: []string{dynamic + " is dynamically linked (it needs the program interpreter /", "the libraries ", "libc.so",
				"the pause image, which has no C library; build kubeboot with CGO_ENABLED=0"}},
		{name: "not ELF", file: script, want: []string{script + " is not an ELF executable: "}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := os.Open(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			err = CheckStatic(tt.file, f)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error is not %v: %v", tt.wantIs, err)
			}
			for _, part := range tt.want {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q lacks %q", err, part)
				}
			}
		})
	}
}

func TestInstallBinary(t *testing.T) {
	static := buildFixture(t, false)
	want, err := os.ReadFile(static)
	if err != nil {
		t.Fatal(err)
	}
	fs := nodefs.FS{Root: t.TempDir()}
	for i := range 2 { // the second run replaces the first one's file
		if err := InstallBinary(fs, static, HostBinaryPath); err != nil {
			t.Fatalf("install %d: %v", i+1, err)
		}
	}
	got, err := fs.ReadFile(HostBinaryPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("the installed binary differs from its source")
	}
	st, err := os.Stat(fs.Path(HostBinaryPath))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o755 {
		t.Errorf("mode %v, want 0755", st.Mode().Perm())
	}
	entries, err := os.ReadDir(filepath.Dir(fs.Path(HostBinaryPath)))
	if err != nil || len(entries) != 1 {
		t.Errorf("the directory holds %v (%v), want only kubeboot", entries, err)
	}
}

func TestInstallBinaryRefuses(t *testing.T) {
	dynamic := buildFixture(t, true)
	fs := nodefs.FS{Root: t.TempDir()}
	err := InstallBinary(fs, dynamic, HostBinaryPath)
	if !errors.Is(err, ErrDynamic) || !strings.HasPrefix(err.Error(), "install kubeboot for the node-local API endpoint: "+dynamic+" is dynamically linked") {
		t.Errorf("error %v", err)
	}
	if fs.Exists(HostBinaryPath) {
		t.Error("a dynamically linked binary was installed")
	}
	missing := filepath.Join(t.TempDir(), "missing")
	err = InstallBinary(fs, missing, HostBinaryPath)
	if want := "install kubeboot for the node-local API endpoint: open " + missing + ": no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("error %v\nwant  %s", err, want)
	}
}
