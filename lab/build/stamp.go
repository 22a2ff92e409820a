package build

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// stampFormat is mixed into every stamp so that changing how outputs are produced (not only
// their inputs) invalidates old stamps.
const stampFormat = "kubeboot-lab-build/1"

// stamper accumulates the inputs of one build step into a single digest. Every item is
// length-prefixed and named, so moving bytes from one input to the next changes the digest.
type stamper struct {
	h hash.Hash
}

func newStamper(kind string) *stamper {
	s := &stamper{h: sha256.New()}
	s.addString("format", stampFormat)
	s.addString("kind", kind)
	return s
}

func (s *stamper) addString(name, value string) {
	fmt.Fprintf(s.h, "%d:%s=%d:%s\n", len(name), name, len(value), value)
}

// addFile mixes in a file's name and the sha256 of its content.
func (s *stamper) addFile(name, path string) error {
	sum, err := fileDigest(path)
	if err != nil {
		return err
	}
	s.addString(name, sum)
	return nil
}

// addTree mixes in every regular file under dir whose name ends in one of exts, in lexical
// order, named by its path relative to dir.
func (s *stamper) addTree(dir string, exts ...string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || !hasSuffix(d.Name(), exts) {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		return s.addFile(filepath.ToSlash(rel), path)
	})
}

func hasSuffix(name string, exts []string) bool {
	for _, e := range exts {
		if strings.HasSuffix(name, e) {
			return true
		}
	}
	return false
}

func (s *stamper) sum() string { return hex.EncodeToString(s.h.Sum(nil)) }

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// upToDate reports whether the stamp file holds want and every output exists as a regular file.
func upToDate(stampFile, want string, outputs []string) (bool, error) {
	got, err := os.ReadFile(stampFile)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read stamp: %w", err)
	}
	if strings.TrimSpace(string(got)) != want {
		return false, nil
	}
	for _, o := range outputs {
		fi, err := os.Stat(o)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("check output: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return false, nil
		}
	}
	return true, nil
}

// writeStamp records sum atomically, so a crash never leaves a half-written stamp that matches.
func writeStamp(stampFile, sum string) error {
	return writeFileAtomic(stampFile, []byte(sum+"\n"), 0o644)
}

// clearStamp removes a stamp before its outputs are rewritten: if that rewrite is interrupted,
// a stale stamp would otherwise vouch for a mix of old and new outputs.
func clearStamp(stampFile string) error {
	if err := os.Remove(stampFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("clear stamp: %w", err)
	}
	return nil
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
