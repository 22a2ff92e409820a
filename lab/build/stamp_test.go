package build

import (
	"os"
	"path/filepath"
	"testing"
)

func writeModule(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBuildStamp(t *testing.T) {
	baseFiles := map[string]string{
		"go.mod":           "module x\n",
		"go.sum":           "x v1 h1:abc\n",
		"cmd/a/main.go":    "package main\n",
		"cmd/b/main.go":    "package main\n",
		"README.md":        "docs\n",
		"cmd/a/notes.txt":  "not go\n",
		"testdata/x.input": "ignored\n",
	}
	tool := &goTool{env: "go1.26.8 linux amd64 1 gcc"}
	stampOf := func(t *testing.T, edit func(dir string, b *goBuild, g *goTool)) string {
		t.Helper()
		dir := t.TempDir()
		writeModule(t, dir, baseFiles)
		b := goBuild{name: "k8s", dir: dir, pkgs: []string{"./cmd/..."}, outputs: []string{"a", "b"}, ldflags: "-X v=1"}
		g := *tool
		if edit != nil {
			edit(dir, &b, &g)
		}
		s, err := b.stamp(&g)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := stampOf(t, nil)
	if again := stampOf(t, nil); again != base {
		t.Fatalf("same inputs in another directory: stamp %s, want %s", again, base)
	}
	tests := []struct {
		name    string
		edit    func(dir string, b *goBuild, g *goTool)
		changes bool
	}{
		{"go.mod", func(dir string, _ *goBuild, _ *goTool) {
			writeModule(t, dir, map[string]string{"go.mod": "module y\n"})
		}, true},
		{"go.sum", func(dir string, _ *goBuild, _ *goTool) { writeModule(t, dir, map[string]string{"go.sum": ""}) }, true},
		{"go.sum removed", func(dir string, _ *goBuild, _ *goTool) { os.Remove(filepath.Join(dir, "go.sum")) }, true},
		{"a main", func(dir string, _ *goBuild, _ *goTool) {
			writeModule(t, dir, map[string]string{"cmd/b/main.go": "package main\nfunc main(){}\n"})
		}, true},
		{"new go file", func(dir string, _ *goBuild, _ *goTool) {
			writeModule(t, dir, map[string]string{"cmd/c/main.go": "package main\n"})
		}, true},
		{"ldflags (version)", func(_ string, b *goBuild, _ *goTool) { b.ldflags = "-X v=2" }, true},
		{"go version", func(_ string, _ *goBuild, g *goTool) { g.env = "go1.27.0 linux amd64 1 gcc" }, true},
		{"cgo off", func(_ string, b *goBuild, _ *goTool) { b.static = true }, true},
		{"outputs", func(_ string, b *goBuild, _ *goTool) { b.outputs = []string{"a"} }, true},
		{"build tags", func(_ string, b *goBuild, _ *goTool) { b.tags = "no_btrfs" }, true},
		{"packages", func(_ string, b *goBuild, _ *goTool) { b.pkgs = []string{"./cmd/a"} }, true},
		{"non-go files", func(dir string, _ *goBuild, _ *goTool) {
			writeModule(t, dir, map[string]string{"README.md": "other\n", "cmd/a/notes.txt": "x"})
		}, false},
		{"mtime only", func(dir string, _ *goBuild, _ *goTool) {
			writeModule(t, dir, map[string]string{"cmd/a/main.go": "package main\n"})
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := stampOf(t, tt.edit)
			if changed := got != base; changed != tt.changes {
				t.Errorf("stamp changed = %v, want %v", changed, tt.changes)
			}
		})
	}
}

func TestUpToDate(t *testing.T) {
	tests := []struct {
		name   string
		stamp  string // "" = no stamp file
		output string // "file", "dir" or "" (absent)
		want   bool
	}{
		{"matching stamp and output", "sum1", "file", true},
		{"no stamp", "", "file", false},
		{"other stamp", "sum0", "file", false},
		{"output missing", "sum1", "", false},
		{"output is a directory", "sum1", "dir", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			stampFile := filepath.Join(dir, "stamps", "build-x")
			out := filepath.Join(dir, "bin", "x")
			if tt.stamp != "" {
				if err := writeStamp(stampFile, tt.stamp); err != nil {
					t.Fatal(err)
				}
			}
			switch tt.output {
			case "file":
				writeModule(t, dir, map[string]string{"bin/x": "elf"})
			case "dir":
				if err := os.MkdirAll(out, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			got, err := upToDate(stampFile, "sum1", []string{out})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("upToDate = %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("cleared stamp", func(t *testing.T) {
		dir := t.TempDir()
		stampFile := filepath.Join(dir, "s")
		if err := writeStamp(stampFile, "sum1"); err != nil {
			t.Fatal(err)
		}
		if err := clearStamp(stampFile); err != nil {
			t.Fatal(err)
		}
		if err := clearStamp(stampFile); err != nil {
			t.Fatalf("clearing an absent stamp: %v", err)
		}
		if got, _ := upToDate(stampFile, "sum1", nil); got {
			t.Errorf("upToDate after clearStamp = true, want false")
		}
	})
}

func TestImageStamp(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(spec *imageSpec, src string)
		changes bool
	}{
		{"nothing", func(*imageSpec, string) {}, false},
		{"binary rewritten with the same content", func(_ *imageSpec, src string) { os.WriteFile(src, []byte("#!binary\n"), 0o755) }, false},
		{"binary content", func(_ *imageSpec, src string) { os.WriteFile(src, []byte("other"), 0o755) }, true},
		{"binary mode", func(_ *imageSpec, src string) { os.Chmod(src, 0o700) }, false}, // mode is taken when the spec is built
		{"tag", func(s *imageSpec, _ string) { s.Ref = "registry.example/tool:v2" }, true},
		{"entrypoint", func(s *imageSpec, _ string) { s.Entrypoint = nil }, true},
		{"env", func(s *imageSpec, _ string) { s.Env = append(s.Env, "A=b") }, true},
		{"generated file", func(s *imageSpec, _ string) {
			e := s.Layers[0].entries["/etc/passwd"]
			e.Data = []byte("x")
			s.Layers[0].entries["/etc/passwd"] = e
		}, true},
		{"symlink target", func(s *imageSpec, _ string) {
			e := s.Layers[1].entries["/usr/local/bin/alias"]
			e.Link = "other"
			s.Layers[1].entries["/usr/local/bin/alias"] = e
		}, true},
		{"entry moved to another layer", func(s *imageSpec, _ string) {
			e := s.Layers[0].entries["/etc/passwd"]
			delete(s.Layers[0].entries, "/etc/passwd")
			s.Layers[1].entries["/etc/passwd"] = e
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := testSpec(t)
			before, err := imageStamp(spec, digestCache{})
			if err != nil {
				t.Fatal(err)
			}
			tt.edit(&spec, spec.Layers[1].entries["/usr/local/bin/tool"].Source)
			after, err := imageStamp(spec, digestCache{})
			if err != nil {
				t.Fatal(err)
			}
			if changed := after != before; changed != tt.changes {
				t.Errorf("stamp changed = %v, want %v", changed, tt.changes)
			}
		})
	}
}
