package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"kubeboot.dev/kubeboot/internal/config"
	"kubeboot.dev/kubeboot/internal/copycerts"
	"kubeboot.dev/kubeboot/internal/etcd"
	"kubeboot.dev/kubeboot/internal/nodefs"
	"kubeboot.dev/kubeboot/internal/uploadconfig"
	"kubeboot.dev/kubeboot/internal/version"
)

// Etcd is what a save asks of the cluster's etcd; *etcd.Client is one.
type Etcd interface {
	Snapshot(ctx context.Context, w io.Writer) (size int64, version string, err error)
	MemberList(ctx context.Context) ([]etcd.Member, error)
}

// Names of the archives a save into a directory makes: NamePrefix, the UTC time, then PlainSuffix or
// EncryptedSuffix. --keep rotates only files named so.
const (
	NamePrefix      = "etcd-snapshot-"
	PlainSuffix     = ".tar.gz"
	EncryptedSuffix = ".tar.gz.enc"
	timeFormat      = "20060102T150405Z"
)

// Saver saves archives.
type Saver struct {
	// Node is the node's filesystem, where the PKI is read under CertDir.
	Node    nodefs.FS
	CertDir string
	// Files is where archives are written (nodefs.Host for the paths users give).
	Files nodefs.FS
	Etcd  Etcd
	// Cluster is the ClusterConfiguration to save with the snapshot; nil saves none.
	Cluster *config.ClusterConfiguration
	// Kubelet is the KubeletConfiguration document to save with it (kube-system/kubelet-config's); nil saves none.
	Kubelet []byte
	// Key encrypts the archive when set (32 bytes: ParseKey).
	Key []byte
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Saved is what a save did.
type Saved struct {
	File     string
	Metadata Metadata
	// Size is the archive's size; Took the time from the start of the snapshot to the archive in place.
	Size int64
	Took time.Duration
	// Removed are older archives --keep deleted.
	Removed []string
}

// Save takes a snapshot of etcd and writes the archive to target, 0600, atomically: a temporary file beside it,
// renamed. A target that is a directory (or ends in "/") gets a new file named with the time
// (etcd-snapshot-<time>.tar.gz, .tar.gz.enc when encrypted); keep > 0 then deletes the oldest of that
// directory's archives beyond keep. keep with a target that is a file is refused.
func (s *Saver) Save(ctx context.Context, target string, keep int) (*Saved, error) {
	start := s.now()
	dir, file, err := s.target(target, start, keep)
	if err != nil {
		return nil, err
	}
	pki, files, err := readPKI(s.Node, s.CertDir)
	if err != nil {
		return nil, err
	}
	var cfg []byte
	meta := Metadata{FormatVersion: FormatVersion, Time: start.UTC().Truncate(time.Second), KubebootVersion: version.Version,
		CertificatesDir: s.CertDir, Files: files}
	if s.Cluster != nil {
		if cfg, err = uploadconfig.ClusterConfigurationYAML(*s.Cluster); err != nil {
			return nil, err
		}
		meta.ClusterName, meta.KubernetesVersion = s.Cluster.ClusterName, s.Cluster.KubernetesVersion
	}
	members, err := s.Etcd.MemberList(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		meta.Members = append(meta.Members, Member{ID: m.IDString(), Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner})
	}

	// The database goes to a temporary file first: the archive records its size and hash before its content.
	if err := s.Files.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	staged, err := os.CreateTemp(s.Files.Path(dir), ".etcd-snapshot-*.db")
	if err != nil {
		return nil, fmt.Errorf("stage the etcd snapshot in %s: %w", dir, err)
	}
	defer os.Remove(staged.Name())
	defer staged.Close()
	hash := newHash()
	size, etcdVersion, err := s.Etcd.Snapshot(ctx, io.MultiWriter(staged, hash))
	if err != nil {
		return nil, err
	}
	meta.EtcdVersion, meta.SnapshotSize, meta.SnapshotSHA256 = etcdVersion, size, hash.hex()
	if _, err := staged.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	contents := &Contents{Metadata: meta, PKI: pki, Config: cfg, Kubelet: s.Kubelet}

	var written int64
	if s.Key != nil {
		var buf bytes.Buffer
		if err := write(&buf, contents, staged, size); err != nil {
			return nil, fmt.Errorf("write %s: %w", file, err)
		}
		sealed, err := seal(buf.Bytes(), s.Key)
		if err != nil {
			return nil, fmt.Errorf("encrypt %s: %w", file, err)
		}
		if err := s.Files.WriteFile(file, sealed, 0o600); err != nil {
			return nil, err
		}
		written = int64(len(sealed))
	} else {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(write(pw, contents, staged, size)) }()
		written, err = s.Files.WriteFileFrom(file, pr, 0o600)
		pr.Close()
		if err != nil {
			return nil, err
		}
	}
	saved := &Saved{File: file, Metadata: meta, Size: written, Took: s.now().Sub(start)}
	if keep > 0 {
		if saved.Removed, err = s.rotate(dir, keep); err != nil {
			return saved, err
		}
	}
	return saved, nil
}

// target resolves the archive's directory and file.
func (s *Saver) target(target string, now time.Time, keep int) (dir, file string, err error) {
	if target == "" {
		return "", "", errors.New("no file or directory to save the snapshot to")
	}
	info, statErr := os.Stat(s.Files.Path(target))
	isDir := statErr == nil && info.IsDir() || strings.HasSuffix(target, "/")
	if !isDir {
		if keep > 0 {
			return "", "", fmt.Errorf("--keep %d rotates the archives of a directory, and %s is not one: pass a directory", keep, target)
		}
		return filepath.Dir(target), target, nil
	}
	suffix := PlainSuffix
	if s.Key != nil {
		suffix = EncryptedSuffix
	}
	dir = filepath.Clean(target)
	return dir, filepath.Join(dir, NamePrefix+now.UTC().Format(timeFormat)+suffix), nil
}

// rotate deletes the oldest archives of dir named as Save names them, beyond keep. The time in the name sorts
// them.
func (s *Saver) rotate(dir string, keep int) ([]string, error) {
	entries, err := os.ReadDir(s.Files.Path(dir))
	if err != nil {
		return nil, fmt.Errorf("rotate the archives of %s: %w", dir, err)
	}
	var ours []string
	for _, e := range entries {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasPrefix(n, NamePrefix) && (strings.HasSuffix(n, PlainSuffix) || strings.HasSuffix(n, EncryptedSuffix)) {
			ours = append(ours, n)
		}
	}
	slices.SortFunc(ours, func(a, b string) int { return strings.Compare(stamp(a), stamp(b)) })
	var removed []string
	for len(ours) > keep {
		p := filepath.Join(dir, ours[0])
		if err := s.Files.Remove(p); err != nil {
			return removed, fmt.Errorf("rotate the archives of %s: %w", dir, err)
		}
		removed, ours = append(removed, p), ours[1:]
	}
	return removed, nil
}

// stamp is the time part of an archive's name.
func stamp(name string) string {
	name = strings.TrimPrefix(name, NamePrefix)
	name = strings.TrimSuffix(name, EncryptedSuffix)
	return strings.TrimSuffix(name, PlainSuffix)
}

func (s *Saver) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// readPKI reads the files control-plane nodes share (copycerts.Files, stacked etcd) under certDir. A missing CA
// key is allowed (an external CA, as with kubeadm-certs); a missing certificate is not: without it the archive
// could not rebuild the node.
func readPKI(fsys nodefs.FS, certDir string) (map[string][]byte, []string, error) {
	out := map[string][]byte{}
	var names []string
	for _, f := range copycerts.Files(certDir, nil) {
		rel := strings.TrimPrefix(path.Clean(f.Path), path.Clean(certDir)+"/")
		data, err := fsys.ReadFile(f.Path)
		if errors.Is(err, fs.ErrNotExist) && f.Private && strings.HasSuffix(rel, "ca.key") {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read %s for the archive: %w", f.Path, err)
		}
		out[rel] = data
		names = append(names, rel)
	}
	slices.Sort(names)
	return out, names, nil
}
