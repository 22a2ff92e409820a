// Package keyleak finds key material where it must not be: in a command's output, or in files outside the
// certificates directory. Only tests import it.
package keyleak

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// markers are what key material looks like in a file or in output: a PEM private key (PKCS#1, PKCS#8 and EC
// alike end their type with "PRIVATE KEY") and a kubeconfig's embedded client key.
var markers = [][]byte{[]byte("PRIVATE KEY-----"), []byte("client-key-data")}

// In reports whether b holds key material.
func In(b []byte) bool {
	for _, m := range markers {
		if bytes.Contains(b, m) {
			return true
		}
	}
	return false
}

// Files lists the files under dir that hold key material, skipping the trees under skip (absolute paths). A
// missing dir holds none.
func Files(dir string, skip ...string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil && os.IsNotExist(err):
			return nil
		case err != nil:
			return err
		}
		for _, s := range skip {
			if p == s {
				return filepath.SkipDir
			}
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if In(b) {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// Watch is an io.Writer for a command's output that, at every write, looks for key material in what was written
// and in the files under Dirs, so it also sees files that exist only while the command runs.
type Watch struct {
	Dirs []string
	// Skip are trees under Dirs where key material belongs (the real certificates directory).
	Skip []string

	mu    sync.Mutex
	out   bytes.Buffer
	found map[string]bool
}

func (w *Watch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.found == nil {
		w.found = map[string]bool{}
	}
	w.out.Write(p)
	if In(p) {
		w.found["the output"] = true
	}
	for _, d := range w.Dirs {
		files, err := Files(d, w.Skip...)
		if err != nil {
			w.found[fmt.Sprintf("%s (unreadable: %v)", d, err)] = true
		}
		for _, f := range files {
			w.found[f] = true
		}
	}
	return len(p), nil
}

// Found lists where key material was seen, sorted.
func (w *Watch) Found() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.found))
	for f := range w.found {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// String is everything written.
func (w *Watch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.String()
}

// Check also looks once more, after the command: what it left behind.
func (w *Watch) Check() []string {
	_, _ = w.Write(nil)
	return w.Found()
}

// MinEcho is the length from which a piece of input repeated in a message counts as a leak: shorter pieces turn
// up in ordinary words and numbers by chance.
const MinEcho = 8

// Echoes reports whether msg repeats secret, a credential passed in as input, when secret is at least MinEcho
// bytes long and not already part of vocabulary (text the message may contain whatever the input, e.g. an
// example token in a hint). Fuzz tests use it to check that errors never carry what they were given.
func Echoes(msg, secret string, vocabulary ...string) bool {
	if len(secret) < MinEcho || !strings.Contains(msg, secret) {
		return false
	}
	for _, v := range vocabulary {
		if strings.Contains(v, secret) {
			return false
		}
	}
	return true
}
