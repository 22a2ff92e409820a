// Package nodelock keeps kubeboot commands that change a node from running at once on one machine: each holds an
// exclusive flock(2) on /var/lib/kubeboot/node.lock while it runs. The kernel drops the lock when its holder
// exits however it ends, so a lock is never left behind and the file itself is never removed (removing it would
// let a waiter lock a file nobody else sees).
package nodelock

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"kubeboot.dev/kubeboot/internal/hint"
	"kubeboot.dev/kubeboot/internal/nodefs"
)

// Path is the node path of the lock file.
const Path = "/var/lib/kubeboot/node.lock"

// ErrHeld is returned by Acquire when another kubeboot holds the lock.
var ErrHeld = errors.New("another kubeboot is changing this node")

// Acquire takes the node lock of fsys for command (e.g. "kubeboot init") without waiting, and writes who holds
// it into the file. release unlocks it; it is safe to call once, with defer.
func Acquire(fsys nodefs.FS, command string) (release func(), err error) {
	where := fsys.Path(Path)
	if where == "" {
		// A Memory FS has no place on the machine, so there is nothing on it another process could change.
		return func() {}, nil
	}
	if err := fsys.MkdirPrivate(path.Dir(Path), 0o700); err != nil {
		return nil, fmt.Errorf("node lock: create the directory of %s: %w", Path, err)
	}
	// No O_TRUNC: the holder's line must survive until this process has the lock.
	f, err := os.OpenFile(where, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("node lock: open %s: %w", Path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder := readHolder(f)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, hint.With(fmt.Errorf("%w: %s (%s)", ErrHeld, holder, Path),
				"wait for it to finish; kubeboot takes this lock only while it runs, so no lock is left behind by a process that ended")
		}
		return nil, fmt.Errorf("node lock: lock %s: %w", Path, err)
	}
	if err := f.Chmod(0o600); err != nil { // a file left looser by someone else
		f.Close()
		return nil, fmt.Errorf("node lock: make %s private: %w", Path, err)
	}
	line := fmt.Sprintf("pid %d, %q, since %s\n", os.Getpid(), command, time.Now().UTC().Format(time.RFC3339))
	if err := writeHolder(f, line); err != nil {
		f.Close() // closing the only descriptor drops the lock
		return nil, fmt.Errorf("node lock: write the holder into %s: %w", Path, err)
	}
	return func() { f.Close() }, nil
}

// readHolder is the holder's line, or a stand-in while the holder has not written it yet.
func readHolder(f *os.File) string {
	b := make([]byte, 512)
	n, _ := f.ReadAt(b, 0)
	if s := strings.TrimSpace(string(b[:n])); s != "" {
		return s
	}
	return "holder not yet recorded"
}

func writeHolder(f *os.File, line string) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(line), 0)
	return err
}
