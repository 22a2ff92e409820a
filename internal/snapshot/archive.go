// Package snapshot backs up and restores a kubeboot (or kubeadm) control plane: an archive holds a consistent
// snapshot of the stacked etcd, the PKI a rebuilt control-plane node needs (the cluster, front-proxy and etcd CAs
// and the service-account keys: copycerts.Files, what control-plane nodes share), the ClusterConfiguration, and
// metadata that says what the snapshot is and lets a restore check it before it stops anything.
//
// The archive is a gzip-compressed tar; with an encryption key (kubeadm's certificate-key form, 64 hex digits)
// the whole compressed archive is sealed with AES-256-GCM as copycerts seals kubeadm-certs, behind a magic line.
package snapshot

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"kubeboot.dev/kubeboot/internal/copycerts"
)

// Entry names in the archive.
const (
	MetadataEntry = "metadata.json"
	DBEntry       = "snapshot.db"
	ConfigEntry   = "kubeadm-config.yaml"
	// KubeletEntry is the KubeletConfiguration as kube-system/kubelet-config holds it (archives from before it
	// was added have none; a kubeboot that does not know it skips it).
	KubeletEntry = "kubelet-config.yaml"
	// PKIPrefix holds the PKI, each file under its path relative to the certificates directory (pki/etcd/ca.crt).
	PKIPrefix = "pki/"
)

// FormatVersion is the archive format this kubeboot writes and reads.
const FormatVersion = 1

// encryptedMagic starts an encrypted archive; a plain one starts with gzip's magic bytes.
var encryptedMagic = []byte("KUBEBOOT-ETCD-SNAPSHOT AES-256-GCM v1\n")

// Errors; check with errors.Is.
var (
	// ErrCorrupt: the archive is truncated, altered or not an archive.
	ErrCorrupt = errors.New("the archive is corrupt or truncated")
	// ErrEncrypted: the archive is encrypted and no key was given.
	ErrEncrypted = errors.New("the archive is encrypted")
	// ErrWrongKey: the key does not decrypt the archive.
	ErrWrongKey = errors.New("the encryption key does not decrypt the archive")
	// ErrOtherCluster: the archive's CA is not this node's.
	ErrOtherCluster = errors.New("snapshot of another cluster")
)

// Member is an etcd member as the metadata records it.
type Member struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs,omitempty"`
	IsLearner  bool     `json:"isLearner,omitempty"`
}

// Metadata says what an archive holds.
type Metadata struct {
	FormatVersion     int       `json:"formatVersion"`
	ClusterName       string    `json:"clusterName,omitempty"`
	KubernetesVersion string    `json:"kubernetesVersion,omitempty"`
	EtcdVersion       string    `json:"etcdVersion"`
	Members           []Member  `json:"members"`
	Time              time.Time `json:"time"`
	// SnapshotSHA256 is the hex SHA-256 of snapshot.db, SnapshotSize its size in bytes.
	SnapshotSHA256  string `json:"snapshotSHA256"`
	SnapshotSize    int64  `json:"snapshotSize"`
	KubebootVersion string `json:"kubebootVersion"`
	// CertificatesDir is where the PKI came from on the node that saved it.
	CertificatesDir string `json:"certificatesDir"`
	// Files are the PKI files in the archive, relative to the certificates directory.
	Files []string `json:"files"`
}

// Contents is an archive apart from its snapshot.db, which is streamed.
type Contents struct {
	Metadata Metadata
	// PKI maps a path relative to the certificates directory ("etcd/ca.crt") to the file's content.
	PKI map[string][]byte
	// Config is the ClusterConfiguration as kube-system/kubeadm-config holds it; nil when none was saved.
	Config []byte
	// Kubelet is the KubeletConfiguration as kube-system/kubelet-config holds it; nil when none was saved.
	Kubelet []byte
}

// write writes the archive to w: metadata, PKI, configuration, then size bytes of the database from db. Pure
// but for the streams.
func write(w io.Writer, c *Contents, db io.Reader, size int64) error {
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	meta, err := json.MarshalIndent(c.Metadata, "", "  ")
	if err != nil {
		return err
	}
	mtime := c.Metadata.Time
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), ModTime: mtime, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := add(MetadataEntry, append(meta, '\n')); err != nil {
		return err
	}
	for _, name := range sortedKeys(c.PKI) {
		if err := add(PKIPrefix+name, c.PKI[name]); err != nil {
			return err
		}
	}
	if c.Config != nil {
		if err := add(ConfigEntry, c.Config); err != nil {
			return err
		}
	}
	if c.Kubelet != nil {
		if err := add(KubeletEntry, c.Kubelet); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: DBEntry, Mode: 0o600, Size: size, ModTime: mtime, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if n, err := io.Copy(tw, db); err != nil {
		return err
	} else if n != size {
		return fmt.Errorf("%s: copied %d bytes, expected %d", DBEntry, n, size)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// read reads an archive from r, streaming snapshot.db to db, and checks that snapshot.db is there and matches
// the SHA-256 and size the metadata records. Every failure of the archive itself wraps ErrCorrupt.
func read(r io.Reader, db io.Writer) (*Contents, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: not a gzip stream: %v", ErrCorrupt, err)
	}
	tr := tar.NewReader(zr)
	c := &Contents{PKI: map[string][]byte{}}
	var sawMeta, sawDB bool
	var sum string
	var size int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		switch name := path.Clean(h.Name); {
		case name == DBEntry:
			hash := sha256.New()
			n, err := io.Copy(io.MultiWriter(hash, db), tr)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, DBEntry, err)
			}
			sawDB, sum, size = true, hex.EncodeToString(hash.Sum(nil)), n
		case name == MetadataEntry:
			b, err := readSmall(tr, name)
			if err != nil {
				return nil, err
			}
			if err := json.Unmarshal(b, &c.Metadata); err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
			}
			sawMeta = true
		case name == ConfigEntry:
			if c.Config, err = readSmall(tr, name); err != nil {
				return nil, err
			}
		case name == KubeletEntry:
			if c.Kubelet, err = readSmall(tr, name); err != nil {
				return nil, err
			}
		case strings.HasPrefix(name, PKIPrefix):
			rel := strings.TrimPrefix(name, PKIPrefix)
			if rel == "" || strings.HasPrefix(rel, "../") || path.IsAbs(rel) {
				return nil, fmt.Errorf("%w: entry %q", ErrCorrupt, h.Name)
			}
			if c.PKI[rel], err = readSmall(tr, name); err != nil {
				return nil, err
			}
		}
	}
	// Reading to the end makes gzip check its CRC and length: a truncated or altered stream fails here.
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	switch {
	case !sawMeta:
		return nil, fmt.Errorf("%w: no %s", ErrCorrupt, MetadataEntry)
	case !sawDB:
		return nil, fmt.Errorf("%w: no %s", ErrCorrupt, DBEntry)
	case c.Metadata.FormatVersion > FormatVersion:
		return nil, fmt.Errorf("archive format %d is newer than this kubeboot reads (%d): use a newer kubeboot", c.Metadata.FormatVersion, FormatVersion)
	case sum != c.Metadata.SnapshotSHA256 || size != c.Metadata.SnapshotSize:
		return nil, fmt.Errorf("%w: %s has SHA-256 %s and %d bytes, the metadata records %s and %d bytes",
			ErrCorrupt, DBEntry, sum, size, orNone(c.Metadata.SnapshotSHA256), c.Metadata.SnapshotSize)
	}
	return c, nil
}

// maxSmall bounds the entries read into memory: certificates, keys, configuration, metadata.
const maxSmall = 16 << 20

func readSmall(r io.Reader, name string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSmall+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	if len(b) > maxSmall {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrCorrupt, name, maxSmall)
	}
	return b, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// seal encrypts a whole archive with key (32 bytes): the magic line, then copycerts' nonce-prefixed AES-GCM.
func seal(plain, key []byte) ([]byte, error) {
	sealed, err := copycerts.Encrypt(plain, key)
	if err != nil {
		return nil, err
	}
	return append(slices.Clone(encryptedMagic), sealed...), nil
}

// open returns the plain archive of data: data itself when it is not encrypted, else what key decrypts. An
// encrypted archive without a key is ErrEncrypted, a key that does not fit (or altered data: GCM cannot tell
// them apart) ErrWrongKey.
func open(data, key []byte) ([]byte, error) {
	sealed, ok := bytes.CutPrefix(data, encryptedMagic)
	if !ok {
		return data, nil
	}
	if key == nil {
		return nil, ErrEncrypted
	}
	plain, err := copycerts.Decrypt(sealed, key)
	if errors.Is(err, copycerts.ErrWrongKey) {
		return nil, fmt.Errorf("%w (or the archive was altered)", ErrWrongKey)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return plain, nil
}

// isEncrypted reports whether the start of an archive is the encrypted form's.
func isEncrypted(head []byte) bool { return bytes.HasPrefix(head, encryptedMagic) }
