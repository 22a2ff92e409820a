package build

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
)

// readTar returns a tar's entries in order, with contents.
func readTar(t *testing.T, r io.Reader) ([]*tar.Header, map[string][]byte) {
	t.Helper()
	var hdrs []*tar.Header
	data := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return hdrs, data
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read tar entry %s: %v", h.Name, err)
		}
		hdrs = append(hdrs, h)
		data[h.Name] = b
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func testSpec(t *testing.T) imageSpec {
	t.Helper()
	src := filepath.Join(t.TempDir(), "tool")
	if err := os.WriteFile(src, []byte("#!binary\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	base := newLayer()
	for _, err := range []error{
		base.addDir("/tmp", 0o1777),
		base.addData("/etc/passwd", []byte("root:x:0:0::/root:/bin/sh\n"), 0o644),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	top := newLayer()
	for _, err := range []error{
		top.addFile("/usr/local/bin/tool", src),
		top.addSymlink("/usr/local/bin/alias", "tool"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return imageSpec{
		Ref:        "registry.example/tool:v1",
		Layers:     []*layer{base, top},
		Env:        []string{defaultPath},
		Entrypoint: []string{"/usr/local/bin/tool"},
		Cmd:        []string{"--help"},
	}
}

func TestWriteDockerArchive(t *testing.T) {
	spec := testSpec(t)
	dst := filepath.Join(t.TempDir(), "img.tar")
	if err := writeDockerArchive(dst, spec); err != nil {
		t.Fatalf("writeDockerArchive: %v", err)
	}
	f, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hdrs, files := readTar(t, f)

	var manifest []manifestEntry
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(manifest) != 1 {
		t.Fatalf("manifest.json has %d entries, want 1", len(manifest))
	}
	m := manifest[0]
	if !reflect.DeepEqual(m.RepoTags, []string{spec.Ref}) {
		t.Errorf("RepoTags = %v, want [%s]", m.RepoTags, spec.Ref)
	}
	cfgBytes, ok := files[m.Config]
	if !ok {
		t.Fatalf("config %s named by manifest.json is not in the archive", m.Config)
	}
	if want := sha(cfgBytes) + ".json"; m.Config != want {
		t.Errorf("config file name = %s, want its digest %s", m.Config, want)
	}
	var cfg imageConfigFile
	if err := json.Unmarshal(cfgBytes, &cfg); err != nil {
		t.Fatalf("config: %v", err)
	}
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH || cfg.RootFS.Type != "layers" {
		t.Errorf("config os/arch/rootfs.type = %s/%s/%s", cfg.OS, cfg.Architecture, cfg.RootFS.Type)
	}
	wantCC := containerConfig{Env: spec.Env, Entrypoint: spec.Entrypoint, Cmd: spec.Cmd}
	if !reflect.DeepEqual(cfg.Config, wantCC) {
		t.Errorf("config.config = %+v, want %+v", cfg.Config, wantCC)
	}
	if len(m.Layers) != 2 || len(cfg.RootFS.DiffIDs) != 2 {
		t.Fatalf("manifest has %d layers, config %d diff_ids; want 2 and 2", len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	for i, name := range m.Layers {
		layerBytes, ok := files[name]
		if !ok {
			t.Fatalf("layer %s named by manifest.json is not in the archive", name)
		}
		if got, want := cfg.RootFS.DiffIDs[i], "sha256:"+sha(layerBytes); got != want {
			t.Errorf("diff_ids[%d] = %s, want sha256 of the layer %s", i, got, want)
		}
	}

	for _, h := range hdrs {
		if !h.ModTime.Equal(epoch) || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("archive entry %s: mtime %v uid %d gid %d, want epoch, 0, 0", h.Name, h.ModTime, h.Uid, h.Gid)
		}
	}

	type entry struct {
		name string
		typ  byte
		mode int64
		link string
		data string
	}
	wantLayers := [][]entry{
		{
			{"etc/", tar.TypeDir, 0o755, "", ""},
			{"etc/passwd", tar.TypeReg, 0o644, "", "root:x:0:0::/root:/bin/sh\n"},
			{"tmp/", tar.TypeDir, 0o1777, "", ""},
		},
		{
			{"usr/", tar.TypeDir, 0o755, "", ""},
			{"usr/local/", tar.TypeDir, 0o755, "", ""},
			{"usr/local/bin/", tar.TypeDir, 0o755, "", ""},
			{"usr/local/bin/alias", tar.TypeSymlink, 0o777, "tool", ""},
			{"usr/local/bin/tool", tar.TypeReg, 0o755, "", "#!binary\n"},
		},
	}
	for i, name := range m.Layers {
		lh, ld := readTar(t, bytes.NewReader(files[name]))
		var got []entry
		for _, h := range lh {
			if !h.ModTime.Equal(epoch) {
				t.Errorf("layer %d entry %s: mtime %v, want epoch", i, h.Name, h.ModTime)
			}
			got = append(got, entry{h.Name, h.Typeflag, h.Mode, h.Linkname, string(ld[h.Name])})
		}
		if !reflect.DeepEqual(got, wantLayers[i]) {
			t.Errorf("layer %d entries:\n got %+v\nwant %+v", i, got, wantLayers[i])
		}
	}

	// Same inputs, same bytes: stamps and content digests depend on it.
	again := filepath.Join(t.TempDir(), "again.tar")
	if err := writeDockerArchive(again, spec); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(dst)
	b, _ := os.ReadFile(again)
	if !bytes.Equal(a, b) {
		t.Errorf("two writes of the same spec differ (%d vs %d bytes)", len(a), len(b))
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dst), ".*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func TestWriteDockerArchiveMissingSource(t *testing.T) {
	l := newLayer()
	src := filepath.Join(t.TempDir(), "gone")
	if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.addFile("/gone", src); err != nil {
		t.Fatal(err)
	}
	os.Remove(src)
	dst := filepath.Join(t.TempDir(), "img.tar")
	err := writeDockerArchive(dst, imageSpec{Ref: "x:1", Layers: []*layer{l}})
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want one wrapping ErrNotExist", err)
	}
	if _, statErr := os.Stat(dst); !errors.Is(statErr, os.ErrNotExist) {
		t.Errorf("a failed write left %s behind", dst)
	}
}
