package snapshot

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"

	"kubeboot.dev/kubeboot/internal/nodefs"
)

type hasher struct{ hash.Hash }

func newHash() hasher        { return hasher{sha256.New()} }
func (h hasher) hex() string { return hex.EncodeToString(h.Sum(nil)) }

// Read reads the archive file from files, decrypting it with key when it is encrypted, streams its snapshot.db
// to db (io.Discard to verify only), and checks the database against the metadata's SHA-256 and size. Errors name
// the file; a truncated or altered archive wraps ErrCorrupt, an encrypted one without a key ErrEncrypted, a key
// that does not decrypt it ErrWrongKey.
func Read(files nodefs.FS, file string, key []byte, db io.Writer) (*Contents, error) {
	c, err := readFile(files, file, key, db)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return c, nil
}

func readFile(files nodefs.FS, file string, key []byte, db io.Writer) (*Contents, error) {
	f, err := os.Open(files.Path(file))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	head, _ := br.Peek(len(encryptedMagic))
	if !isEncrypted(head) {
		return read(br, db)
	}
	// copycerts' AES-GCM seals the whole archive at once: the plain archive is held in memory.
	data, err := io.ReadAll(br)
	if err != nil {
		return nil, err
	}
	plain, err := open(data, key)
	if err != nil {
		return nil, err
	}
	return read(bytes.NewReader(plain), db)
}

// CheckCA compares the archive's cluster CA and etcd CA with those of the node under certDir: a snapshot of
// another cluster would give this node's etcd members and API servers a CA that nothing here trusts. A node
// without a cluster CA is not compared (checked false): a machine being rebuilt. A difference wraps
// ErrOtherCluster.
func CheckCA(c *Contents, node nodefs.FS, certDir string) (checked bool, err error) {
	for _, rel := range []string{"ca.crt", "etcd/ca.crt"} {
		p := path.Join(certDir, rel)
		mine, err := node.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			if rel == "ca.crt" {
				return false, nil
			}
			continue
		}
		if err != nil {
			return false, err
		}
		theirs, ok := c.PKI[rel]
		if !ok {
			return true, fmt.Errorf("%w: the archive has no %s to compare with this node's %s", ErrOtherCluster, rel, p)
		}
		if !bytes.Equal(bytes.TrimSpace(mine), bytes.TrimSpace(theirs)) {
			return true, fmt.Errorf("%w: the archive's %s is not this node's %s", ErrOtherCluster, rel, p)
		}
	}
	return true, nil
}
