package build

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

type entryKind int

const (
	kindDir entryKind = iota
	kindFile
	kindSymlink
)

func (k entryKind) String() string {
	switch k {
	case kindDir:
		return "dir"
	case kindFile:
		return "file"
	default:
		return "symlink"
	}
}

// layerEntry is one path of an image layer. A file's content comes from Source (a host file)
// or Data (generated), never both.
type layerEntry struct {
	Path   string // absolute, clean, slash-separated path inside the image
	Kind   entryKind
	Mode   int64
	Source string
	Data   []byte
	Link   string
}

// layer is the file tree of one image layer, built in memory and written in path order so the
// tar is byte-for-byte reproducible.
type layer struct {
	entries map[string]layerEntry
}

func newLayer() *layer { return &layer{entries: map[string]layerEntry{}} }

// sorted returns the entries in lexical path order, which also puts every directory before its
// children (a parent's path is a prefix of its child's).
func (l *layer) sorted() []layerEntry {
	out := make([]layerEntry, 0, len(l.entries))
	for _, e := range l.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func cleanImagePath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("image path %q is not absolute", p)
	}
	c := path.Clean(p)
	if c == "/" {
		return "", fmt.Errorf("image path %q names the root", p)
	}
	return c, nil
}

// put adds e, accepting an identical existing entry and refusing a different one: two images
// parts claiming the same path differently is a bug in the image spec.
func (l *layer) put(e layerEntry) error {
	p, err := cleanImagePath(e.Path)
	if err != nil {
		return err
	}
	e.Path = p
	if err := l.parents(p); err != nil {
		return err
	}
	if old, ok := l.entries[p]; ok {
		if old.Kind == e.Kind && old.Mode == e.Mode && old.Source == e.Source && old.Link == e.Link && bytes.Equal(old.Data, e.Data) {
			return nil
		}
		return fmt.Errorf("image path %s: already a %s, cannot also add a %s", p, old.Kind, e.Kind)
	}
	l.entries[p] = e
	return nil
}

func (l *layer) parents(p string) error {
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		old, ok := l.entries[d]
		if !ok {
			l.entries[d] = layerEntry{Path: d, Kind: kindDir, Mode: 0o755}
			continue
		}
		if old.Kind != kindDir {
			return fmt.Errorf("image path %s: parent %s is a %s, not a dir", p, d, old.Kind)
		}
	}
	return nil
}

func (l *layer) addDir(p string, mode int64) error {
	return l.put(layerEntry{Path: p, Kind: kindDir, Mode: mode})
}

func (l *layer) addData(p string, data []byte, mode int64) error {
	return l.put(layerEntry{Path: p, Kind: kindFile, Mode: mode, Data: data})
}

func (l *layer) addSymlink(p, target string) error {
	return l.put(layerEntry{Path: p, Kind: kindSymlink, Mode: 0o777, Link: target})
}

// addFile copies the host file src (following symlinks) to p in the image.
func (l *layer) addFile(p, src string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("image file %s: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("image file %s: source %s is not a regular file", p, src)
	}
	return l.put(layerEntry{Path: p, Kind: kindFile, Mode: int64(fi.Mode().Perm()), Source: src})
}

// maxSymlinks bounds symlink resolution, as the kernel does, so a loop is an error, not a hang.
const maxSymlinks = 40

// addHostPath puts the host path hostPath into the image at the same path, reproducing every
// symlink met on the way (in the directories above it and at the path itself) together with
// its target. A library that ldd shows as /lib/x86_64-linux-gnu/libc.so.6 on a merged-/usr
// Debian thus lands as the symlink /lib -> usr/lib plus the real file under /usr/lib, and
// the dynamic linker finds it by either name.
func (l *layer) addHostPath(hostPath string) error {
	budget := maxSymlinks
	return l.mirror(filepath.Clean(hostPath), &budget)
}

func (l *layer) mirror(p string, budget *int) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("host path %q is not absolute", p)
	}
	dir, err := l.mirrorDir(filepath.Dir(p), budget)
	if err != nil {
		return err
	}
	full := filepath.Join(dir, filepath.Base(p))
	fi, err := os.Lstat(full)
	if err != nil {
		return fmt.Errorf("host path %s: %w", p, err)
	}
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		return l.followLink(full, budget, func(target string) error { return l.mirror(target, budget) })
	case fi.Mode().IsRegular():
		return l.put(layerEntry{Path: full, Kind: kindFile, Mode: int64(fi.Mode().Perm()), Source: full})
	case fi.IsDir():
		return l.addDir(full, 0o755)
	default:
		return fmt.Errorf("host path %s: unsupported file type %s", full, fi.Mode().Type())
	}
}

// mirrorDir makes dir exist in the image as the host has it and returns the host path it
// resolves to.
func (l *layer) mirrorDir(dir string, budget *int) (string, error) {
	cur := "/"
	for _, name := range strings.Split(strings.TrimPrefix(dir, "/"), "/") {
		if name == "" {
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		if err != nil {
			return "", fmt.Errorf("host path %s: %w", dir, err)
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			err = l.followLink(next, budget, func(target string) error {
				resolved, err := l.mirrorDir(target, budget)
				cur = resolved
				return err
			})
			if err != nil {
				return "", err
			}
		case fi.IsDir():
			if err := l.addDir(next, 0o755); err != nil {
				return "", err
			}
			cur = next
		default:
			return "", fmt.Errorf("host path %s: %s is not a directory", dir, next)
		}
	}
	return cur, nil
}

// followLink records the symlink link in the image and continues with its target.
func (l *layer) followLink(link string, budget *int, next func(target string) error) error {
	*budget--
	if *budget < 0 {
		return fmt.Errorf("host path %s: too many levels of symbolic links", link)
	}
	target, err := os.Readlink(link)
	if err != nil {
		return fmt.Errorf("host path %s: %w", link, err)
	}
	if err := l.addSymlink(link, target); err != nil {
		return err
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(link), target)
	}
	return next(filepath.Clean(target))
}

// isDynamic reports whether the ELF file at p needs shared libraries: an executable with a
// dynamic linker, or a shared object (iptables' extensions) with DT_NEEDED entries. Go binaries
// built with CGO_ENABLED=0 are neither, and ldd would only fail on them.
func isDynamic(p string) (bool, error) {
	f, err := elf.Open(p)
	if err != nil {
		return false, fmt.Errorf("read ELF %s: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return true, nil
		}
	}
	needed, err := f.ImportedLibraries()
	if err != nil {
		return false, fmt.Errorf("read ELF %s: %w", p, err)
	}
	return len(needed) > 0, nil
}

// sharedLibraries returns the host paths ldd lists for the ELF file p, or nothing if p is static.
func sharedLibraries(ctx context.Context, p string) ([]string, error) {
	dyn, err := isDynamic(p)
	if err != nil || !dyn {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ldd", p)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("ldd %s: %w: %s", p, err, strings.TrimSpace(stderr.String()))
	}
	libs, err := parseLdd(stdout.String())
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", p, err)
	}
	return libs, nil
}

var errLibNotFound = errors.New("library not found")

// parseLdd extracts library paths from ldd's output. Lines look like
// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)", "/lib64/ld-linux-x86-64.so.2 (0x...)"
// or "linux-vdso.so.1 (0x...)"; the last is provided by the kernel and has no file.
func parseLdd(out string) ([]string, error) {
	var libs []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if name, target, ok := strings.Cut(line, "=>"); ok {
			target = strings.TrimSpace(target)
			if strings.HasPrefix(target, "not found") {
				return nil, fmt.Errorf("%s: %w", strings.TrimSpace(name), errLibNotFound)
			}
			line = target
		}
		p, _, _ := strings.Cut(line, " ")
		if strings.HasPrefix(p, "/") {
			libs = append(libs, p)
		}
	}
	return libs, nil
}

// addWithLibraries puts the host binary src at p and every library it needs at its host path.
func (l *layer) addWithLibraries(ctx context.Context, p, src string) error {
	if err := l.addFile(p, src); err != nil {
		return err
	}
	return l.addLibrariesOf(ctx, src)
}

func (l *layer) addLibrariesOf(ctx context.Context, src string) error {
	libs, err := sharedLibraries(ctx, src)
	if err != nil {
		return err
	}
	for _, lib := range libs {
		if err := l.addHostPath(lib); err != nil {
			return fmt.Errorf("library of %s: %w", src, err)
		}
	}
	return nil
}
