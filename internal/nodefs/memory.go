package nodefs

import (
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
)

// Memory is an FS held in memory alone: nothing is read from or written to a disk, and everything is gone with
// the process. A joining control-plane node issues the etcd client certificate it needs for a moment into one.
func Memory() FS {
	return FS{mem: &memory{files: map[string]File{}, dirs: map[string]bool{}, removed: map[string]bool{}}}
}

// Overlay is base with every change kept in memory: reads see what was written or removed through the overlay
// first, then base, which is never changed. A dry run works on one, so it decides exactly as a real run would
// (existing certificates are reused) while the keys it generates stay in memory.
func Overlay(base FS) FS {
	o := Memory()
	o.mem.base = &base
	return o
}

// Held returns the files written through a Memory or Overlay FS and still there, sorted by path; nil for a
// directory. A dry run reports them as what it would write.
func (f FS) Held() []File {
	if f.mem == nil {
		return nil
	}
	m := f.mem
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]File, 0, len(m.files))
	for _, file := range m.files {
		file.Data = slices.Clone(file.Data)
		out = append(out, file)
	}
	slices.SortFunc(out, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// memory is the content of a Memory or Overlay FS; keys are cleaned node paths.
type memory struct {
	// base is read where memory holds nothing: the disk under an Overlay, nil for Memory.
	base *FS

	mu    sync.Mutex
	files map[string]File
	dirs  map[string]bool
	// removed are paths removed through the overlay: base's files at or below them are hidden.
	removed map[string]bool
}

func clean(p string) string { return path.Clean(p) }

// below reports whether p is dir or inside it.
func below(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// hidden reports whether p, or a directory above it, was removed through the overlay. Callers hold mu.
func (m *memory) hidden(p string) bool {
	for q := p; ; q = path.Dir(q) {
		if m.removed[q] {
			return true
		}
		if q == path.Dir(q) {
			return false
		}
	}
}

func (m *memory) readFile(p string) ([]byte, error) {
	p = clean(p)
	m.mu.Lock()
	file, ok := m.files[p]
	hidden := m.hidden(p)
	m.mu.Unlock()
	switch {
	case ok:
		return slices.Clone(file.Data), nil
	case m.base != nil && !hidden:
		return m.base.ReadFile(p)
	}
	return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
}

func (m *memory) exists(p string) bool {
	p = clean(p)
	m.mu.Lock()
	if _, ok := m.files[p]; ok || m.dirs[p] {
		m.mu.Unlock()
		return true
	}
	hidden := m.hidden(p)
	m.mu.Unlock()
	return m.base != nil && !hidden && m.base.Exists(p)
}

func (m *memory) mkdirAll(p string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.addDirs(clean(p))
}

// addDirs records dir and its parents. Callers hold mu.
func (m *memory) addDirs(dir string) {
	for q := dir; ; q = path.Dir(q) {
		m.dirs[q] = true
		delete(m.removed, q)
		if q == path.Dir(q) {
			return
		}
	}
}

func (m *memory) writeFile(p string, data []byte, perm os.FileMode) {
	m.writeFiles(File{Path: p, Mode: perm, Data: data})
}

// writeFiles writes every file at once: no reader sees some of them written and not the others.
func (m *memory) writeFiles(files ...File) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range files {
		p := clean(f.Path)
		m.addDirs(path.Dir(p))
		delete(m.removed, p)
		m.files[p] = File{Path: p, Mode: f.Mode.Perm(), Data: slices.Clone(f.Data)}
	}
}

// remove forgets p (and with all, everything below it); under an Overlay it also hides base's files there.
func (m *memory) remove(p string, all bool) {
	p = clean(p)
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.files, p)
	delete(m.dirs, p)
	if all {
		for q := range m.files {
			if below(q, p) {
				delete(m.files, q)
			}
		}
		for q := range m.dirs {
			if below(q, p) {
				delete(m.dirs, q)
			}
		}
	}
	if m.base != nil {
		m.removed[p] = true
	}
}

func (m *memory) list(dir string) ([]string, error) {
	dir = clean(dir)
	var fromBase []string
	if m.base != nil {
		var err error
		if fromBase, err = m.base.List(dir); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, p := range fromBase {
		if _, ok := m.files[p]; !ok && !m.hidden(p) {
			out = append(out, p)
		}
	}
	for p := range m.files {
		if below(p, dir) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out, nil
}
