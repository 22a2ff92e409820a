// Package nodefs is the node's filesystem seen through a root directory, so that rendering a node into a
// temporary directory (tests, the lab) uses exactly the code that writes the real /etc/kubernetes; or held in
// memory, so that key material a run only needs for a moment (--dry-run, a joining node's checks) never reaches a
// disk.
package nodefs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
)

// FS maps absolute node paths ("/etc/kubernetes/pki/ca.crt") under Root. Root "" or "/" is the real filesystem.
// An FS made by Memory or Overlay keeps what is written through it in memory instead.
type FS struct {
	Root string
	// mem holds the files of a Memory or Overlay FS; nil for a directory.
	mem *memory
}

// Host is the real root filesystem.
var Host = FS{Root: "/"}

// Path returns where the node path p lives on the machine. An Overlay answers with its base's path, which does
// not see what the overlay holds; a Memory FS has no place on the machine and answers "". Code that reaches files
// by their path (os.Open, a kubeconfig loaded by client-go) therefore only sees a directory's files.
func (f FS) Path(p string) string {
	if f.mem != nil {
		if f.mem.base == nil {
			return ""
		}
		return f.mem.base.Path(p)
	}
	if !filepath.IsAbs(p) {
		// Relative paths are the caller's own (e.g. a --config file); they are not re-rooted.
		return p
	}
	if f.Root == "" || f.Root == "/" {
		return filepath.Clean(p)
	}
	return filepath.Join(f.Root, p)
}

// InMemory reports whether f is a Memory or Overlay FS, whose writes never reach a disk. Code that must write
// through a library working on host paths (client-go's certificate store) refuses such an FS instead of writing
// beside it.
func (f FS) InMemory() bool { return f.mem != nil }

// ReadFile reads the node path p.
func (f FS) ReadFile(p string) ([]byte, error) {
	if f.mem != nil {
		return f.mem.readFile(p)
	}
	return os.ReadFile(f.Path(p))
}

// Exists reports whether the node path p exists.
func (f FS) Exists(p string) bool {
	if f.mem != nil {
		return f.mem.exists(p)
	}
	_, err := os.Lstat(f.Path(p))
	return err == nil
}

// MkdirPrivate creates the node directory p and its parents like MkdirAll, and takes away any permission of
// group and others p itself has (an existing p made by someone else, looser, included).
func (f FS) MkdirPrivate(p string, perm os.FileMode) error {
	// Missing parents are made as WriteFile makes them: only p is private.
	if err := f.MkdirAll(path.Dir(p), 0o755); err != nil {
		return err
	}
	if err := f.MkdirAll(p, perm); err != nil || f.mem != nil {
		return err
	}
	fi, err := os.Stat(f.Path(p))
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return os.Chmod(f.Path(p), fi.Mode().Perm()&0o700)
	}
	return nil
}

// MkdirAll creates the node directory p and its parents.
func (f FS) MkdirAll(p string, perm os.FileMode) error {
	if f.mem != nil {
		f.mem.mkdirAll(p)
		return nil
	}
	return os.MkdirAll(f.Path(p), perm)
}

// WriteFile writes data to the node path p atomically (temporary file + rename in the same directory), creating
// parent directories 0755, so a crash never leaves a half-written certificate or manifest behind.
func (f FS) WriteFile(p string, data []byte, perm os.FileMode) error {
	if f.mem != nil {
		f.mem.writeFile(p, data, perm)
		return nil
	}
	target := f.Path(p)
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", target, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", target, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", target, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", target, err)
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return fmt.Errorf("write %s: %w", target, err)
	}
	return nil
}

// Remove removes the node path p; a missing path is not an error.
func (f FS) Remove(p string) error {
	if f.mem != nil {
		f.mem.remove(p, false)
		return nil
	}
	if err := os.Remove(f.Path(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// RemoveAll removes the node path p and everything below it.
func (f FS) RemoveAll(p string) error {
	if f.mem != nil {
		f.mem.remove(p, true)
		return nil
	}
	return os.RemoveAll(f.Path(p))
}

// List returns the node paths of all regular files under the node directory p, sorted.
func (f FS) List(p string) ([]string, error) {
	if f.mem != nil {
		return f.mem.list(p)
	}
	base := f.Path(p)
	var out []string
	err := filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(base, path)
			if err != nil {
				return err
			}
			out = append(out, filepath.Join(p, rel))
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	sort.Strings(out)
	return out, err
}

// ErrInMemory is returned by the operations only a directory supports.
var ErrInMemory = errors.New("not supported by a filesystem held in memory")

// Rename moves the node path oldPath (a file or a directory) to newPath, on the same filesystem. It does not
// replace an existing directory. A Memory or Overlay FS does not support it (ErrInMemory): it moves what is on a
// disk, such as an etcd data directory moved aside.
func (f FS) Rename(oldPath, newPath string) error {
	if f.mem != nil {
		return fmt.Errorf("rename %s: %w", oldPath, ErrInMemory)
	}
	return os.Rename(f.Path(oldPath), f.Path(newPath))
}

// WriteFileFrom is WriteFile for content too large to hold in memory: it copies r to the node path p atomically
// (temporary file in the same directory, synced, then renamed), creating parent directories 0755, and returns the
// number of bytes written. A failed copy leaves nothing behind.
func (f FS) WriteFileFrom(p string, r io.Reader, perm os.FileMode) (int64, error) {
	if f.mem != nil {
		data, err := io.ReadAll(r)
		if err != nil {
			return 0, fmt.Errorf("write %s: %w", p, err)
		}
		f.mem.writeFile(p, data, perm)
		return int64(len(data)), nil
	}
	target := f.Path(p)
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("create directory %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", target, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return 0, fmt.Errorf("write %s: %w", target, err)
	}
	n, err := io.Copy(tmp, r)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("write %s: %w", target, err)
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return n, fmt.Errorf("write %s: %w", target, err)
	}
	return n, nil
}
