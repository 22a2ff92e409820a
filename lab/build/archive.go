package build

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// epoch is the modification time of every tar entry and the image creation time: fixed so that
// the same inputs always give the same bytes, and thus the same digests and stamps.
var epoch = time.Unix(0, 0).UTC()

// defaultPath is the PATH of every lab image; /usr/sbin is in it for kube-proxy's iptables.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// imageSpec says what one image holds and how it starts.
type imageSpec struct {
	Ref        string // repository:tag, e.g. registry.k8s.io/pause:3.10.1
	Layers     []*layer
	Env        []string
	Entrypoint []string
	Cmd        []string
}

// The image config and manifest.json as containerd's and docker's importers read them.
type (
	imageConfigFile struct {
		Architecture string          `json:"architecture"`
		OS           string          `json:"os"`
		Created      string          `json:"created"`
		Config       containerConfig `json:"config"`
		RootFS       rootFS          `json:"rootfs"`
	}
	containerConfig struct {
		Env        []string `json:"Env,omitempty"`
		Entrypoint []string `json:"Entrypoint,omitempty"`
		Cmd        []string `json:"Cmd,omitempty"`
	}
	rootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	}
	manifestEntry struct {
		Config   string   `json:"Config"`
		RepoTags []string `json:"RepoTags"`
		Layers   []string `json:"Layers"`
	}
)

// writeLayerTar writes the layer's entries as an uncompressed tar, in path order, owned by
// root, with fixed times.
func writeLayerTar(w io.Writer, l *layer) error {
	tw := tar.NewWriter(w)
	for _, e := range l.sorted() {
		hdr := &tar.Header{
			Name:    strings.TrimPrefix(e.Path, "/"),
			Mode:    e.Mode,
			ModTime: epoch,
		}
		switch e.Kind {
		case kindDir:
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case kindSymlink:
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = e.Link
		case kindFile:
			hdr.Typeflag = tar.TypeReg
		}
		if e.Kind != kindFile {
			if err := tw.WriteHeader(hdr); err != nil {
				return fmt.Errorf("layer entry %s: %w", e.Path, err)
			}
			continue
		}
		if err := writeFileEntry(tw, hdr, e); err != nil {
			return fmt.Errorf("layer entry %s: %w", e.Path, err)
		}
	}
	return tw.Close()
}

func writeFileEntry(tw *tar.Writer, hdr *tar.Header, e layerEntry) error {
	if e.Source == "" {
		hdr.Size = int64(len(e.Data))
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(e.Data)
		return err
	}
	f, err := os.Open(e.Source)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	hdr.Size = fi.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	// A file that changes size while we copy would corrupt the archive; the tar writer
	// reports a short or long write, and we surface it.
	_, err = io.Copy(tw, f)
	return err
}

// writeDockerArchive writes spec as a docker-archive tar at dst (manifest.json, the config
// JSON and one layer.tar per layer), the format `ctr images import` and `docker load` accept.
// Layers are staged in temporary files next to dst so each is read from its source once.
func writeDockerArchive(dst string, spec imageSpec) error {
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	type staged struct {
		file   *os.File
		diffID string
		size   int64
	}
	var layers []staged
	defer func() {
		for _, s := range layers {
			s.file.Close()
			os.Remove(s.file.Name())
		}
	}()
	for i, l := range spec.Layers {
		f, err := os.CreateTemp(dir, ".layer-*.tar")
		if err != nil {
			return err
		}
		layers = append(layers, staged{file: f})
		h := sha256.New()
		cw := &countingWriter{w: io.MultiWriter(f, h)}
		if err := writeLayerTar(cw, l); err != nil {
			return fmt.Errorf("image %s layer %d: %w", spec.Ref, i, err)
		}
		layers[i].diffID = hex.EncodeToString(h.Sum(nil))
		layers[i].size = cw.n
	}

	cfg := imageConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Created:      epoch.Format(time.RFC3339),
		Config:       containerConfig{Env: spec.Env, Entrypoint: spec.Entrypoint, Cmd: spec.Cmd},
		RootFS:       rootFS{Type: "layers", DiffIDs: []string{}},
	}
	manifest := manifestEntry{RepoTags: []string{spec.Ref}}
	for _, s := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, "sha256:"+s.diffID)
		manifest.Layers = append(manifest.Layers, s.diffID+"/layer.tar")
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	cfgSum := sha256.Sum256(cfgJSON)
	manifest.Config = hex.EncodeToString(cfgSum[:]) + ".json"
	manifestJSON, err := json.Marshal([]manifestEntry{manifest})
	if err != nil {
		return err
	}

	out, err := os.CreateTemp(dir, ".image-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	tw := tar.NewWriter(out)
	for _, m := range []struct {
		name string
		data []byte
	}{{"manifest.json", manifestJSON}, {manifest.Config, cfgJSON}} {
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			out.Close()
			return err
		}
		if _, err := tw.Write(m.data); err != nil {
			out.Close()
			return err
		}
	}
	for i, s := range layers {
		hdr := &tar.Header{Name: manifest.Layers[i], Mode: 0o644, Size: s.size, ModTime: epoch, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			out.Close()
			return err
		}
		if _, err := s.file.Seek(0, io.SeekStart); err != nil {
			out.Close()
			return err
		}
		if _, err := io.Copy(tw, s.file); err != nil {
			out.Close()
			return fmt.Errorf("image %s: copy layer %d: %w", spec.Ref, i, err)
		}
	}
	if err := tw.Close(); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(0o644); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(out.Name(), dst)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
