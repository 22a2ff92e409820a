package nodefs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File is one file's path, mode and content.
type File struct {
	Path string
	Mode os.FileMode
	Data []byte
}

// WriteTogether replaces several node files as one change, for files that are only valid together (a
// certificate and its key): every new content is written to a temporary file next to its target first, so a
// write that fails (a full disk) leaves every target as it was; only then are they renamed into place, and if a
// rename fails the targets already replaced get their old content back. A Memory or Overlay FS takes them all at
// once.
func (f FS) WriteTogether(files ...File) error {
	if f.mem != nil {
		f.mem.writeFiles(files...)
		return nil
	}
	staged := make([]string, len(files))
	defer func() {
		for _, s := range staged {
			if s != "" {
				os.Remove(s) // no-op after a successful rename
			}
		}
	}()
	for i, file := range files {
		tmp, err := f.stage(file)
		if err != nil {
			return err
		}
		staged[i] = tmp
	}
	// Hard links keep the old contents reachable until every rename has succeeded.
	backups := make([]string, len(files))
	defer func() {
		for _, b := range backups {
			if b != "" {
				os.Remove(b)
			}
		}
	}()
	for i, file := range files {
		target := f.Path(file.Path)
		b := staged[i] + ".old"
		if err := os.Link(target, b); err == nil {
			backups[i] = b
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("write %s: keep the old content while it is replaced: %w", target, err)
		}
	}
	for i, file := range files {
		target := f.Path(file.Path)
		if err := renameFile(staged[i], target); err != nil {
			for j := range i {
				restore(f.Path(files[j].Path), backups[j])
			}
			return fmt.Errorf("write %s: %w (the files written with it were put back)", target, err)
		}
		staged[i] = ""
	}
	return nil
}

// renameFile is os.Rename; a test makes it fail.
var renameFile = os.Rename

// stage writes file's content to a temporary file in its target's directory and returns its host path.
func (f FS) stage(file File) (string, error) {
	target := f.Path(file.Path)
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create directory %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", target, err)
	}
	err = tmp.Chmod(file.Mode)
	if err == nil {
		_, err = tmp.Write(file.Data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("write %s: %w", target, err)
	}
	return tmp.Name(), nil
}

// restore puts a replaced file's old content back from its backup link, or removes it if it did not exist.
func restore(target, backup string) {
	if backup == "" {
		os.Remove(target)
		return
	}
	os.Rename(backup, target)
}
