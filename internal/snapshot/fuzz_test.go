package snapshot

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path"
	"strings"
	"testing"
	"time"
)

// tarOf returns the tar stream of an archive as write makes it (gzip taken off), a seed for FuzzReadArchive.
func tarOf(t testing.TB, c *Contents, db []byte) []byte {
	t.Helper()
	var gz bytes.Buffer
	if err := write(&gz, c, bytes.NewReader(db), int64(len(db))); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&gz)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := out.ReadFrom(zr); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// FuzzReadArchive feeds read, which parses an archive that may come from anywhere (a backup store, a copy
// between machines), with tar streams: it must never panic, it returns contents or an error and never both, a
// successful read's snapshot.db is exactly what the metadata's SHA-256 and size say, no PKI path leaves the
// certificates directory, and every failure of the archive is ErrCorrupt (or the format-version refusal).
func FuzzReadArchive(f *testing.F) {
	db := []byte("bbolt database bytes")
	sum := sha256.Sum256(db)
	good := &Contents{
		Metadata: Metadata{FormatVersion: FormatVersion, EtcdVersion: "3.7.0", Time: time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC),
			SnapshotSHA256: hex.EncodeToString(sum[:]), SnapshotSize: int64(len(db)), Files: []string{"ca.crt", "etcd/ca.key"}},
		PKI:    map[string][]byte{"ca.crt": []byte("-----BEGIN CERTIFICATE-----\n"), "etcd/ca.key": []byte("key")},
		Config: []byte("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"),
	}
	f.Add(tarOf(f, good, db))
	noDB := *good
	noDB.Metadata.SnapshotSize = 0
	f.Add(tarOf(f, &noDB, nil))
	escaping := *good
	escaping.PKI = map[string][]byte{"../../etc/shadow": []byte("x")}
	f.Add(tarOf(f, &escaping, db))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0}, 1024))

	f.Fuzz(func(t *testing.T, tarStream []byte) {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(tarStream)
		zw.Close()
		var got bytes.Buffer
		c, err := read(&gz, &got)
		if err != nil {
			if c != nil {
				t.Fatalf("read returned contents and an error: %v", err)
			}
			if !errors.Is(err, ErrCorrupt) && !strings.Contains(err.Error(), "is newer than this kubeboot reads") {
				t.Fatalf("an archive failure that is not ErrCorrupt: %v", err)
			}
			return
		}
		if c == nil {
			t.Fatal("read returned neither contents nor an error")
		}
		// What was streamed out is the last snapshot.db entry, the one the checks ran on.
		var last []byte
		tr := tar.NewReader(bytes.NewReader(tarStream))
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			if path.Clean(h.Name) == DBEntry {
				var b bytes.Buffer
				b.ReadFrom(tr)
				last = b.Bytes()
			}
		}
		s := sha256.Sum256(last)
		if hex.EncodeToString(s[:]) != c.Metadata.SnapshotSHA256 || int64(len(last)) != c.Metadata.SnapshotSize {
			t.Fatalf("accepted a snapshot.db of %d bytes that the metadata (%s, %d bytes) does not describe", len(last), c.Metadata.SnapshotSHA256, c.Metadata.SnapshotSize)
		}
		for rel := range c.PKI {
			if rel == "" || path.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
				t.Fatalf("accepted a PKI entry outside the certificates directory: %q", rel)
			}
		}
	})
}
